/*
 * cli/install/layout.ts — where `postern install` puts things.
 *
 * Every path is an absolute path on the target system; `--root DIR`
 * (a staging root, as DESTDIR) is prefixed when files are written, never
 * when they are named inside a file (the unit and the wrappers name the
 * paths the installed system will see). Each default can be changed by a
 * flag of the same name (`--spool DIR`, `--unit-dir DIR` …).
 */
import { join } from 'node:path';

export interface Layout {
  /** Staging root ("/" for the real system). */
  readonly root: string;
  /** The unprivileged system user (and group) for the privilege separation to come. */
  readonly user: string;
  readonly config: string;
  readonly spool: string;
  readonly mailDir: string;
  /** The wrappers: one small sh script per command, with the interpreter's absolute path. */
  readonly libexec: string;
  readonly unitDir: string;
  readonly manDir: string;
  /** What install did, for uninstall. */
  readonly stateDir: string;
  /** The command names and the path of their link on the system. */
  readonly links: readonly { readonly name: string; readonly path: string }[];
  /** The interpreter and the package's bin/postern.js the wrappers run. */
  readonly node: string;
  readonly postern: string;
}

export const DEFAULT_LAYOUT = {
  user: '_postern',
  config: '/etc/mail/smtpd.conf',
  spool: '/var/spool/postern',
  mailDir: '/var/mail',
  libexec: '/usr/local/libexec/postern',
  unitDir: '/etc/systemd/system',
  manDir: '/usr/local/share/man',
  stateDir: '/var/lib/postern',
} as const;

/** The MTA names, where Debian's MTAs and OpenSMTPD put them. */
export const LINKS: readonly { readonly name: string; readonly path: string }[] = [
  { name: 'sendmail', path: '/usr/sbin/sendmail' },
  { name: 'mailq', path: '/usr/bin/mailq' },
  { name: 'newaliases', path: '/usr/bin/newaliases' },
  { name: 'smtpctl', path: '/usr/sbin/smtpctl' },
  { name: 'makemap', path: '/usr/sbin/makemap' },
  { name: 'smtpd', path: '/usr/sbin/smtpd' },
];

/** The commands a wrapper is written for (the linked ones and `postern`). */
export const WRAPPED = ['postern', ...LINKS.map((l) => l.name)] as const;

export const UNIT_NAME = 'postern.service';

/** A path of the target system, under the staging root. */
export function staged(l: Layout, path: string): string {
  return l.root === '/' ? path : join(l.root, path);
}
