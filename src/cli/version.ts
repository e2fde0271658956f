/*
 * cli/version.ts — `--version` and `--help` for every command.
 *
 * The version is package.json's (read at run time, so a release bump needs
 * no rebuild of this file); the usage lines are the commands' own, with a
 * pointer to the man page. main.ts answers both before it dispatches, so
 * `smtpd --version`, `sendmail --help`, `postern mailq --version` all work
 * whatever option parser the command itself uses.
 */
import { readFileSync } from 'node:fs';
import { SMTPSERVER_USAGE } from './smtpserver-options.js';

const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

/** package.json's version, or "unknown" when the file cannot be read. */
export function posternVersion(): string {
  try {
    const v = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** One usage line per command, and the man page that tells more. */
export const USAGES: Readonly<Record<string, { usage: string; man?: string }>> = {
  postern: {
    usage:
      'usage: postern command [argument ...]\n' +
      '       postern install [--root DIR] [--force] [--no-start] [--no-user] [--user NAME] [--config FILE] [--spool DIR] ...\n' +
      '       postern uninstall [--root DIR] [--purge] ...\n' +
      '       postern db [-f file] migrate | status | import-spool [DIR]\n' +
      'commands: smtpd, smtpctl, sendmail, send-mail, mailq, newaliases, makemap, smtpserver, smtpfwdd, install, uninstall, db',
  },
  smtpd: { usage: 'usage: smtpd [-dFhnv] [-b address] [-D name=value] [-f file] [-P subsystem] [-T trace]', man: 'smtpd(8)' },
  smtpctl: { usage: 'usage: smtpctl [-f file] [--json] [--human] command [argument ...]', man: 'smtpctl(8)' },
  sendmail: {
    usage: 'usage: sendmail [-tiv] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] [-bm|-bp|-bi] [-q] [recipient ...]',
    man: 'sendmail(8)',
  },
  'send-mail': { usage: 'usage: send-mail [-tiv] [-f sender] [-F name] [recipient ...]', man: 'sendmail(8)' },
  mailq: { usage: 'usage: mailq [-v]', man: 'sendmail(8)' },
  newaliases: { usage: 'usage: newaliases [-h] [-f config]', man: 'sendmail(8)' },
  makemap: { usage: 'usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file', man: 'smtpctl(8)' },
  install: {
    usage:
      'usage: postern install [--root DIR] [--force] [--no-start] [--no-user] [--user NAME] [--config FILE] [--spool DIR]\n' +
      '                       [--mail-dir DIR] [--libexec DIR] [--unit-dir DIR] [--man-dir DIR] [--state-dir DIR] (docs/administration.md)',
  },
  smtpserver: { usage: SMTPSERVER_USAGE, man: 'smtpserver(8)' },
  smtpfwdd: { usage: 'usage: smtpfwdd -d spool [-u user] [-g group] [-s sendmail] [-r seconds]', man: 'docs/moving-from-obtuse.md' },
  db: { usage: 'usage: postern db [-f file] migrate | status | import-spool [DIR] (docs/cluster.md)' },
  uninstall: { usage: 'usage: postern uninstall [--root DIR] [--purge] [--state-dir DIR] (docs/administration.md)' },
};

/** Answer --version / --help when it is the command's first argument; true when answered. */
export function versionOrHelp(name: string, argv: readonly string[]): boolean {
  const first = argv[0];
  if (first === '--version') {
    process.stdout.write(`${name} (Postern) ${posternVersion()}\n`);
    return true;
  }
  if (first === '--help') {
    const u = USAGES[name] ?? USAGES['postern'];
    process.stdout.write(`${u?.usage ?? ''}\n${u?.man !== undefined ? `See ${u.man}.\n` : ''}`);
    return true;
  }
  return false;
}
