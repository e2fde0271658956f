/*
 * test/e2e/http-helpers.ts — a real smtpd with its HTTP listener on
 * (`http listen on 127.0.0.1 port 0`, an admin and a read-only token), a
 * way to send it mail over SMTP, and small HTTP helpers.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicConfig, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';

export const ADMIN = 'admin-secret-0123456789abcdef';
export const READER = 'reader-secret-0123456789abcdef';

export interface HttpDaemon {
  readonly d: DaemonHandle;
  readonly dir: string;
  readonly base: string;
}

/** Start smtpd with the HTTP listener; `extra` goes into smtpd.conf; deliveries paused unless `deliver`. */
export async function startHttpDaemon(extra = '', opts: { deliver?: boolean } = {}): Promise<HttpDaemon> {
  const dir = tempDir('postern-http-');
  writeFileSync(join(dir, 'admin.token'), `${ADMIN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'reader.token'), `${READER}\n`, { mode: 0o600 });
  const http = `http listen on 127.0.0.1 port 0
http token "ops" file "$DIR/admin.token" role admin
http token "viewer" file "$DIR/reader.token" role read-only
${extra}`;
  const d = await startDaemon(basicConfig(http), { dir, ...(opts.deliver ? { deliver: true } : {}) });
  const line = await d.waitForLog(/http listener on \S+ port \d+/);
  const port = Number(/port (\d+)/.exec(line)?.[1]);
  return { d, dir, base: `http://127.0.0.1:${port}` };
}

/** One message over SMTP; the final reply's text. */
export async function sendMail(port: number, rcpt = 'root@test.example', body = 'Subject: hello\n\nhi'): Promise<string> {
  const c = await RawClient.open(port);
  try {
    await dialogue(c, `S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<${rcpt}>\nS: 250\nC: DATA\nS: 354`);
    c.send(`${body.replaceAll('\n', '\r\n')}\r\n.\r\n`);
    return (await c.reply()).text;
  } finally {
    c.close();
  }
}

/** GET or POST with a bearer token. */
export async function call(base: string, path: string, token?: string, init: RequestInit = {}): Promise<{ status: number; body: string; json: () => unknown }> {
  const r = await fetch(`${base}${path}`, { ...init, headers: { ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) } });
  const body = await r.text();
  return { status: r.status, body, json: () => JSON.parse(body) as unknown };
}
