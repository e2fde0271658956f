/*
 * cli/main.ts — one entry point for every command, chosen by the name it
 * was invoked under (mailwrapper style: /usr/sbin/sendmail → postern), or
 * by the first argument when invoked as `postern`:
 *
 *   smtpd  smtpctl  sendmail  send-mail  mailq  newaliases  makemap  smtpfwdd
 *   smtpserver (ZMailer's, cli/smtpserver.ts)
 *   db (the cluster's PostgreSQL queue, cli/db.ts)
 *
 * and, as `postern install` / `postern uninstall`, the service kit
 * (cli/install/). `--version` and `--help` as a command's first argument
 * are answered here for every command (cli/version.ts).
 */
import { basename } from 'node:path';
import { versionOrHelp } from './version.js';

const COMMANDS = ['smtpd', 'smtpctl', 'sendmail', 'send-mail', 'mailq', 'newaliases', 'makemap', 'smtpfwdd', 'smtpserver', 'db'] as const;

async function run(name: string, argv: string[]): Promise<void> {
  if (versionOrHelp(name, argv)) return;
  switch (name) {
    case 'smtpd':
      process.argv = [process.argv[0] ?? 'node', 'smtpd', ...argv];
      await import('./smtpd.js');
      return;
    case 'sendmail':
    case 'send-mail':
      return (await import('./sendmail.js')).sendmailMain(argv, name);
    case 'smtpserver':
      return (await import('./smtpserver.js')).smtpserverMain(argv);
    case 'mailq':
      return (await import('./sendmail.js')).sendmailMain(['-bp', ...argv], 'mailq');
    case 'smtpfwdd':
      return (await import('./smtpfwdd.js')).smtpfwddMain(argv);
    case 'newaliases':
      return (await import('./newaliases-entry.js')).newaliasesMain(argv);
    case 'makemap': {
      const m = (await import('./makemap.js')) as { main?: (a: string[], p: string) => Promise<void> | void };
      return m.main?.(argv, 'makemap');
    }
    case 'smtpctl': {
      const m = (await import('./smtpctl.js' as string)) as { main?: (a: string[], p: string) => Promise<void> | void };
      return m.main?.(argv, 'smtpctl');
    }
    case 'install':
    case 'uninstall':
      return (await import('./install/main.js')).installMain(name, argv);
    case 'db':
      return (await import('./db.js')).dbMain(argv);
    default: {
      const [sub, ...rest] = argv;
      if (sub === 'install' || sub === 'uninstall') return run(sub, rest);
      if (sub === undefined) {
        process.stderr.write(`${(await import('./version.js')).USAGES['postern']?.usage ?? ''}\n`);
        process.exit(64);
      }
      if (sub !== undefined && (COMMANDS as readonly string[]).includes(sub)) return run(sub, rest);
      process.stderr.write(`postern: unknown command "${sub ?? name}" (one of: ${COMMANDS.join(', ')})\n`);
      process.exit(1);
    }
  }
}

const invoked = basename(process.argv[1] ?? 'postern').replace(/\.js$/, '');
run(invoked, process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`${invoked}: ${e.message}\n`);
  process.exit(1);
});
