/*
 * test/helpers/rsyslog.ts — a real rsyslogd (Debian's rsyslog) for one
 * test: its own configuration, a unix socket in a temporary folder in place
 * of /dev/log, facility mail written to mail.log and everything else to
 * other.log (as Debian's /etc/rsyslog.conf files them), rate limiting off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from './tools.js';

export interface Rsyslog {
  readonly socket: string;
  readonly mailLog: string;
  readonly otherLog: string;
  /** mail.log's lines so far. */
  mail(): string[];
  /** Wait until mail.log has a line matching re. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startRsyslog(dir: string): Promise<Rsyslog> {
  const rsyslogd = existsSync('/usr/sbin/rsyslogd') ? '/usr/sbin/rsyslogd' : requireTool('rsyslogd');
  const socket = join(dir, 'log.sock');
  const mailLog = join(dir, 'mail.log');
  const otherLog = join(dir, 'other.log');
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(
    conf,
    `global(workDirectory="${dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${socket}" RateLimit.Interval="0")
mail.*        action(type="omfile" file="${mailLog}" template="RSYSLOG_TraditionalFileFormat")
*.*;mail.none action(type="omfile" file="${otherLog}" template="RSYSLOG_TraditionalFileFormat")
`,
  );
  const proc: ChildProcess = spawn(rsyslogd, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  for (let i = 0; !existsSync(socket); i++) {
    if (i > 100 || proc.exitCode !== null) throw new Error(`rsyslogd did not create ${socket}: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const mail = (): string[] => (existsSync(mailLog) ? readFileSync(mailLog, 'utf8').split('\n').filter((l) => l !== '') : []);
  return {
    socket,
    mailLog,
    otherLog,
    mail,
    async waitFor(re, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = mail().find((l) => re.test(l));
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`timeout waiting for ${re} in mail.log:\n${mail().join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
