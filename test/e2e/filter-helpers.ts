/*
 * test/e2e/filter-helpers.ts — what the filter tests share: a daemon whose
 * listener goes through a filter, helper processes (milters, rspamd …)
 * started in a temporary folder and stopped after, and one SMTP dialogue.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonHandle, REPO } from '../helpers/daemon.js';
import { RawClient } from '../helpers/smtp-client.js';

export const FIXTURES = join(REPO, 'test/fixtures');

/** smtpd.conf with one listener through filter `name`; `filters`: the filter statements. */
export function filterConfig(filters: string, name: string, extra = ''): string {
  return `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
${filters}
listen on 127.0.0.1 port 0 filter ${name}
${extra}
action "out" relay host "smtp://127.0.0.1:9"
match from any for domain "test.example" action "out"
`;
}

export function startFiltered(filters: string, name: string, dir: string, extra = ''): Promise<DaemonHandle> {
  return startDaemon(filterConfig(filters, name, extra), { dir });
}

/** A helper process; its output is kept for a failing test's message. */
export interface Helper {
  readonly proc: ChildProcess;
  readonly output: string[];
  stop(): Promise<void>;
}

export function startHelper(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Helper {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}), env: { ...process.env, ...opts.env } });
  const output: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Wait until `check` is true (a socket file appears, a port answers). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const socketExists = (path: string) => (): boolean => existsSync(path);

export interface SendResult {
  readonly mail: string;
  readonly rcpts: string[];
  readonly data?: string;
  readonly end?: string;
}

/** One message: every reply, stopping at the first refusal of MAIL or DATA. */
export async function send(port: number, from: string, to: readonly string[], message: string, client?: RawClient): Promise<SendResult> {
  const c = client ?? (await RawClient.open(port, '127.0.0.1'));
  try {
    if (!client) {
      await c.reply();
      c.send('EHLO client.test.example\r\n');
      await c.reply();
    }
    c.send(`MAIL FROM:<${from}>\r\n`);
    const mail = (await c.reply(40_000)).text;
    if (!mail.startsWith('250')) return { mail, rcpts: [] };
    const rcpts: string[] = [];
    for (const r of to) {
      c.send(`RCPT TO:<${r}>\r\n`);
      rcpts.push((await c.reply(40_000)).text);
    }
    if (!rcpts.some((r) => r.startsWith('250'))) return { mail, rcpts };
    c.send('DATA\r\n');
    const data = (await c.reply(40_000)).text;
    if (!data.startsWith('354')) return { mail, rcpts, data };
    c.send(`${message.replaceAll('\r\n', '\n').replaceAll('\n', '\r\n')}\r\n.\r\n`);
    const end = (await c.reply(60_000)).text;
    return { mail, rcpts, data, end };
  } finally {
    if (!client) c.close();
  }
}
