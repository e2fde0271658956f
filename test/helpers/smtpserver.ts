/*
 * test/helpers/smtpserver.ts — driving ZMailer's `smtpserver` front end in
 * end-to-end tests: the program (a symlink to bin/postern.js, dispatched
 * by its name), a site folder with smtpd.conf and seed 000's
 * smtpserver.conf and policy files, one-message SMTP conversations, and
 * stopping a detached daemon by its pid file.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { REPO, tempDir, basicConfig } from './daemon.js';

export const ME = userInfo().username;
const BIN = tempDir('postern-zbin-');
symlinkSync(join(REPO, 'bin/postern.js'), join(BIN, 'smtpserver'));
export const SMTPSERVER = join(BIN, 'smtpserver');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(args: string[], o: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, [SMTPSERVER, ...args], { env: { ...process.env, ...o.env }, timeout: o.timeoutMs ?? 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as unknown as { code: number }).code ?? null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    p.stdin?.end(o.input ?? '');
  });
}

/** A folder with smtpd.conf (rules and mailboxes; `smtpdExtra` appended) and the seed's smtpserver.conf (`extraParams` appended). */
export function site(extraParams = '', smtpdExtra = ''): { dir: string; env: NodeJS.ProcessEnv; conf: string } {
  const dir = tempDir('postern-zsrv-');
  writeFileSync(join(dir, 'smtpd.conf'), basicConfig().replaceAll('$DIR', dir).replace('listen on 127.0.0.1 port 0\n', '') + smtpdExtra);
  mkdirSync(join(dir, 'db'));
  for (const f of ['smtp-policy.src', 'smtp-policy.relay', 'smtp-policy.mx', 'localnames']) writeFileSync(join(dir, 'db', f), readFileSync(join(REPO, 'test/fixtures/zmailer/seed000', f), 'utf8'));
  const conf = join(dir, 'smtpserver.conf');
  writeFileSync(conf, readFileSync(join(REPO, 'test/fixtures/zmailer/seed000/smtpserver.conf'), 'utf8').replaceAll('$DIR', dir) + extraParams);
  return { dir, env: { POSTERN_CONFIG: join(dir, 'smtpd.conf') }, conf };
}

/** The test user's mbox in a site. */
export function mbox(dir: string): string {
  const f = join(dir, 'mail', ME);
  return existsSync(f) ? readFileSync(f, 'latin1') : '';
}

export async function waitForMbox(dir: string, re: RegExp): Promise<string> {
  for (let i = 0; i < 100 && !re.test(mbox(dir)); i++) await new Promise((res) => setTimeout(res, 100));
  return mbox(dir);
}

/** Send one message through a TCP port, a command after each reply; the whole conversation's replies. */
export async function smtpSend(port: number, rcpt: string, o: { from?: string; localAddress?: string; host?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: o.host ?? '127.0.0.1', ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const script = ['EHLO client.example', `MAIL FROM:<${o.from ?? 'a@b.example'}>`, `RCPT TO:<${rcpt}>`, 'DATA', 'Subject: over the wire\r\n\r\nhello\r\n.', 'QUIT'];
    let got = '';
    let sent = 0;
    c.setEncoding('latin1');
    c.on('data', (d: string) => {
      got += d;
      const replies = got.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
      while (sent < replies && sent < script.length) c.write(`${script[sent++] as string}\r\n`);
    });
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

/** A port free on `host` a moment ago (for daemons that need the number before they start). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Stop a detached smtpserver by its pid file in `spool`, and wait until it has gone. */
export async function stopSmtpserver(spool: string): Promise<void> {
  const pidFile = join(spool, '.pid.smtpserver');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((res) => setTimeout(res, 50));
}
