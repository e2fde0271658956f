/*
 * cli/smtpfwdd.ts — Obtuse's smtpfwdd (seed 001):
 *
 *   smtpfwdd -d SPOOL [-u user] [-g group] [-s sendmail] [-r seconds]
 *
 *   -d  the spool the Obtuse receiver writes (smtpd -c HOME -d /spool → HOME/spool)
 *   -u, -g  run as this user and group (started as root, it drops to them first)
 *   -s  the MTA's sendmail program (Postern's; default /usr/sbin/sendmail)
 *   -r  first wait before retrying a message the MTA did not take (Postern's; default 60)
 *
 * It stays in the foreground, looks into the spool every second and hands
 * each message to sendmail (daemon/obtuse/forwarder.ts). MAIL_CONFIG, when
 * set, is passed on to sendmail (Postfix's alternative configuration).
 */
import { USAGES } from './version.js';
import { existsSync, statSync } from 'node:fs';
import { getopt } from './getopt.js';
import { resolveId } from './obtuse-smtpd.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { Forwarder } from '../daemon/obtuse/forwarder.js';
import { MailLog } from '../log/maillog.js';

const USAGE = USAGES['smtpfwdd']?.usage ?? '';

function fail(msg: string): never {
  process.stderr.write(`smtpfwdd: ${msg}\n`);
  process.exit(1);
}

export async function smtpfwddMain(argv: string[]): Promise<void> {
  const opts = getopt(argv, 'd:u:g:s:r:');
  if ('error' in opts) fail(`${opts.error} (${USAGE})`);
  if (opts.operands.length > 0) fail(`unexpected argument "${opts.operands[0]}" (${USAGE})`);
  const last = (c: string): string | undefined => opts.values.get(c)?.at(-1);
  const dir = last('d');
  if (dir === undefined) fail(`-d SPOOL is required (${USAGE})`);
  if (!dir.startsWith('/') || !existsSync(dir) || !statSync(dir).isDirectory()) fail(`-d ${dir}: not an existing folder (an absolute path)`);
  const sendmail = last('s') ?? '/usr/sbin/sendmail';
  if (!sendmail.startsWith('/')) fail(`-s ${sendmail}: the sendmail program must be an absolute path`);
  const retryText = last('r') ?? '60';
  if (!/^\d{1,6}$/.test(retryText) || Number(retryText) < 1) fail(`-r ${retryText}: expected a number of seconds, at least 1`);
  const user = last('u');
  const group = last('g');
  const uid = user === undefined ? undefined : resolveId('passwd', user);
  if (user !== undefined && uid === undefined) fail(`-u ${user}: no such user`);
  const gid = group === undefined ? undefined : resolveId('group', group);
  if (group !== undefined && gid === undefined) fail(`-g ${group}: no such group`);
  if (process.getuid?.() === 0) {
    if (gid !== undefined) {
      process.setgroups?.([gid]);
      process.setgid?.(gid);
    }
    if (uid !== undefined) process.setuid?.(uid);
  } else if ((uid !== undefined && uid !== process.getuid?.()) || (gid !== undefined && gid !== process.getgid?.())) {
    fail('-u/-g: only root can become another user');
  }
  const log = new MailLog({});
  const spool = new FsSpool({ root: dir, recover: false, journal: false, log: (l) => log.info(l) });
  await spool.open().catch((e: Error) => fail(`-d ${dir}: ${e.message}`));
  const env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...(process.env.MAIL_CONFIG ? { MAIL_CONFIG: process.env.MAIL_CONFIG } : {}) };
  const fwd = new Forwarder({ spool, log, sendmail, retryMs: Number(retryText) * 1000, env });
  log.info(`smtpfwdd pid ${process.pid} uid ${process.getuid?.()}: forwarding ${dir} to ${sendmail}`);
  fwd.start();
  const stop = (): void => {
    void fwd.stop().then(async () => {
      await spool.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
