/*
 * cli/install/main.ts — `postern install` / `postern uninstall`: flags.
 *
 *   postern install   [--root DIR] [--force] [--no-start] [--no-user] [--user NAME]
 *                     [--config FILE] [--spool DIR] [--mail-dir DIR] [--libexec DIR]
 *                     [--unit-dir DIR] [--man-dir DIR] [--state-dir DIR]
 *   postern uninstall [--root DIR] [--purge] [--state-dir DIR] (and the same paths)
 *
 * --root DIR installs into a staging root (the tests use one; packagers
 * may too): every path is written under DIR, named as on the real system.
 * Must run as root (users, owners, modes).
 */
import { fileURLToPath } from 'node:url';
import { firstBlocked } from '../../daemon/privsep/spool-owner.js';
import { SystemUsers } from '../../users/system-users.js';
import { dirname, resolve } from 'node:path';
import { DEFAULT_LAYOUT, LINKS, type Layout } from './layout.js';
import { install, uninstall } from './kit.js';

const VALUED = ['root', 'user', 'config', 'spool', 'mail-dir', 'libexec', 'unit-dir', 'man-dir', 'state-dir'] as const;
const FLAGS = ['force', 'no-start', 'no-user', 'purge'] as const;

export function parseInstallArgs(argv: readonly string[]): { values: Map<string, string>; flags: Set<string> } {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    const name = m?.[1];
    if (!m || name === undefined) throw new Error(`unexpected argument "${a}"`);
    if ((FLAGS as readonly string[]).includes(name) && m[2] === undefined) flags.add(name);
    else if ((VALUED as readonly string[]).includes(name)) {
      const v = m[2] ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`--${name} needs a value`);
      values.set(name, v);
    } else throw new Error(`unknown option --${name}`);
  }
  return { values, flags };
}

export async function installMain(cmd: 'install' | 'uninstall', argv: string[]): Promise<void> {
  const { values, flags } = parseInstallArgs(argv);
  if (process.getuid?.() !== 0) throw new Error('must run as root (it creates users and sets owners)');
  const abs = (name: string, dflt: string): string => {
    const v = values.get(name) ?? dflt;
    if (!v.startsWith('/')) throw new Error(`--${name} ${v}: an absolute path is needed`);
    return v;
  };
  const bin = fileURLToPath(new URL('../../../../bin/postern.js', import.meta.url));
  const l: Layout = {
    root: resolve(values.get('root') ?? '/'),
    user: values.get('user') ?? DEFAULT_LAYOUT.user,
    config: abs('config', DEFAULT_LAYOUT.config),
    spool: abs('spool', DEFAULT_LAYOUT.spool),
    mailDir: abs('mail-dir', DEFAULT_LAYOUT.mailDir),
    libexec: abs('libexec', DEFAULT_LAYOUT.libexec),
    unitDir: abs('unit-dir', DEFAULT_LAYOUT.unitDir),
    manDir: abs('man-dir', DEFAULT_LAYOUT.manDir),
    stateDir: abs('state-dir', DEFAULT_LAYOUT.stateDir),
    links: LINKS,
    node: process.execPath,
    postern: bin,
  };
  const say = (line: string): void => void process.stdout.write(`postern ${cmd}: ${line}\n`);
  if (cmd === 'install') {
    // The SMTP side (the user) loads Postern's code after giving up root: a clone in /root (0700) cannot run.
    const pkg = dirname(dirname(bin));
    const u = new SystemUsers().lookup(l.user);
    const wall = firstBlocked(pkg, u !== undefined && !('error' in u) ? u : { uid: -1, gid: -1 });
    if (wall !== undefined && !flags.has('no-user')) throw new Error(`${pkg}: the folder ${wall} does not let ${l.user} through, and smtpd's SMTP side runs Postern's code as that user: put Postern where it will stay and everyone may read it (git clone … /opt/postern), or chmod o+x ${wall}`);
    install(l, {
      force: flags.has('force'),
      start: !flags.has('no-start'),
      createUser: !flags.has('no-user'),
      manSource: fileURLToPath(new URL('../../../../man/', import.meta.url)),
      say,
    });
  } else uninstall(l, { purge: flags.has('purge'), say });
}
