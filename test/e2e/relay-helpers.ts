/*
 * test/e2e/relay-helpers.ts — shared by the relay-*.test.ts end-to-end tests
 * (issue 4): the real daemon relaying to real peers on loopback.
 *
 *  - fixture(): a configuration from test/fixtures/relay/ with its
 *    placeholders ($NAME) filled in; "$DIR" is left for startDaemon();
 *  - loopback(): a 127/8 address other than 127.0.0.1 (which Postern counts
 *    as its own), free on the port a test needs (25 for MX hosts);
 *  - makemap(): the real makemap CLI, as seed 002 runs it;
 *  - addUser(): a real system user (useradd, root only) whose home holds a
 *    .procmailrc filing into a maildir, for `mda "procmail -f -"`;
 *  - send(): one SMTP transaction with the raw client, every reply kept;
 *  - etrn(), countLog(), waitFor(): bounded waits and retries;
 *  - parseMail(): a message (or DSN) parsed by Python's email package;
 *  - showQueue(): `smtpctl -f FILE show queue --json` (straight from the
 *    spool when the control socket does not answer).
 * Every wait is bounded; every folder and user is removed by its test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { QueueEntry } from '../../src/control/queue-view.js';
import { REPO } from '../helpers/daemon.js';
import { RawClient, type ParsedReply } from '../helpers/smtp-client.js';
import { python, requireTool, run } from '../helpers/tools.js';

export const IS_ROOT = process.getuid?.() === 0;
export const MAKEMAP = join(REPO, 'dist/src/cli/makemap.js');
/** bin/postern.js picks the command by its first argument (`postern smtpctl …`). */
export const POSTERN = join(REPO, 'bin/postern.js');

/** test/fixtures/relay/NAME with $KEY placeholders replaced (longest keys first, so $A does not eat $AB). */
export function fixture(name: string, values: Readonly<Record<string, string | number>>): string {
  let text = readFileSync(join(REPO, 'test/fixtures/relay', name), 'utf8');
  for (const k of Object.keys(values).sort((a, b) => b.length - a.length)) text = text.replaceAll(`$${k}`, String(values[k]));
  const left = /\$(?!DIR\b)[A-Z_]+/.exec(text.replace(/^#.*$/gm, ''));
  assert.equal(left, null, `fixture ${name}: placeholder ${left?.[0]} not filled in`);
  return text;
}

/** Can something listen on address:port right now? */
function bindable(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, address, () => s.close(() => resolve(true)));
  });
}

/** A random 127/8 address (never 127.0.0.1) where `port` (0: any) is free. */
export async function loopback(port = 0): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const a = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    if (await bindable(a, port)) return a;
  }
  throw new Error(`no loopback address with port ${port} free`);
}

/** A port the kernel picks, free on this address (the peer is started on it next). */
export function kernelPort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** `makemap ARGS` (dist/src/cli/makemap.js), which must succeed. */
export async function makemap(args: readonly string[]): Promise<void> {
  const r = await run(process.execPath, [MAKEMAP, ...args], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `makemap ${args.join(' ')}: ${r.stderr}`);
}

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** Where its .procmailrc files mail (a maildir). */
  readonly maildir: string;
  remove(): void;
}

/**
 * A real user with its home in `base` and a ~/.procmailrc that files
 * everything into ~/Mail/inbox/ (a maildir) and logs to ~/procmail.log.
 * procmail reads ~/.procmailrc by itself: `mda "procmail -f -"` stays as the
 * seed wrote it. Needs root (useradd; deliveries then run as this user).
 */
export function addUser(base: string): TestUser {
  requireTool('useradd');
  requireTool('procmail');
  chmodSync(base, 0o755);
  const name = `prl${Math.random().toString(36).slice(2, 9)}`;
  const home = join(base, name);
  const r = spawnSync('useradd', ['-m', '-d', home, '-s', '/bin/sh', '-U', name], { encoding: 'utf8' });
  assert.equal(r.status, 0, `useradd: ${r.stderr}`);
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout);
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout);
  const maildir = join(home, 'Mail', 'inbox');
  mkdirSync(join(home, 'Mail'), { mode: 0o700 });
  chownSync(join(home, 'Mail'), uid, gid);
  const rc = join(home, '.procmailrc');
  writeFileSync(rc, `MAILDIR=$HOME/Mail\nDEFAULT=$MAILDIR/inbox/\nLOGFILE=$HOME/procmail.log\nVERBOSE=no\n`, { mode: 0o600 });
  chownSync(rc, uid, gid);
  return {
    name,
    uid,
    gid,
    home,
    maildir,
    remove: () => void spawnSync('userdel', ['-r', '-f', name]),
  };
}

/** The messages of a maildir's new/ folder, oldest first (file names start with the time). */
export function maildirFiles(maildir: string): string[] {
  const dir = join(maildir, 'new');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((f) => join(dir, f));
}

export interface Transaction {
  readonly greeting: ParsedReply;
  readonly mail: ParsedReply;
  readonly rcpts: ParsedReply[];
  /** The reply to the final dot; undefined when no recipient was accepted. */
  readonly data?: ParsedReply;
}

/** One transaction, one command at a time (no pipelining: each reply is read before the next command). */
export async function send(o: { port: number; host?: string; localAddress?: string; helo?: string; from: string; to: readonly string[]; data: string }): Promise<Transaction> {
  const c = await RawClient.open(o.port, o.host ?? '127.0.0.1', o.localAddress);
  try {
    const greeting = await c.reply();
    c.send(`EHLO ${o.helo ?? 'client.test'}\r\n`);
    assert.equal((await c.reply()).code, 250);
    c.send(`MAIL FROM:<${o.from}>\r\n`);
    const mail = await c.reply();
    const rcpts: ParsedReply[] = [];
    if (mail.code === 250) {
      for (const t of o.to) {
        c.send(`RCPT TO:<${t}>\r\n`);
        rcpts.push(await c.reply());
      }
    }
    let data: ParsedReply | undefined;
    if (rcpts.some((r) => r.code === 250 || r.code === 251)) {
      c.send('DATA\r\n');
      assert.equal((await c.reply()).code, 354);
      const body = o.data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      c.send(`${body}${body.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
      data = await c.reply(10_000);
    }
    c.send('QUIT\r\n');
    await c.reply().catch(() => undefined);
    return { greeting, mail, rcpts, ...(data !== undefined ? { data } : {}) };
  } finally {
    c.close();
  }
}

/** ETRN (RFC 1985) for a domain: the scheduler tries its deferred envelopes now. Returns the reply. */
export async function etrn(port: number, domain: string): Promise<ParsedReply> {
  const c = await RawClient.open(port);
  try {
    await c.reply();
    c.send('EHLO client.test\r\n');
    await c.reply();
    c.send(`ETRN ${domain}\r\n`);
    return await c.reply();
  } finally {
    c.close();
  }
}

export function countLog(logs: readonly string[], re: RegExp): number {
  return logs.filter((l) => re.test(l)).length;
}

/** Wait until `check()` is truthy (polling), at most `timeoutMs`; `what` explains a timeout. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: () => string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait for the n-th log line matching `re`; the whole log is in the error on timeout. */
export function waitLog(logs: readonly string[], re: RegExp, n = 1, timeoutMs = 15_000): Promise<string> {
  return waitFor(
    () => countLog(logs, re) >= n && (logs.filter((l) => re.test(l))[n - 1] as string),
    () => `${n} log line(s) matching ${re}; log:\n${logs.join('\n')}`,
    timeoutMs,
  );
}

export type { QueueEntry };

export interface ParsedMail {
  readonly headers: [string, string][];
  readonly contentType: string;
  readonly reportType: string | null;
  readonly subject: string | null;
  readonly from: string | null;
  readonly to: string | null;
  /** text/plain parts (decoded). */
  readonly text: string[];
  /** message/delivery-status: the per-message block, then one block per recipient. */
  readonly status: Record<string, string>[];
  /** The returned message (message/rfc822 or text/rfc822-headers) headers, if any. */
  readonly returned: [string, string][] | null;
  readonly body: string;
}

const PARSE = String.raw`
import email, json, mailbox, sys
from email import policy

def parse(raw):
    m = email.message_from_bytes(raw, policy=policy.default)
    out = {'headers': [[k, str(v)] for k, v in m.items()], 'contentType': m.get_content_type(),
           'reportType': m.get_param('report-type'), 'subject': m.get('Subject'), 'from': m.get('From'),
           'to': m.get('To'), 'text': [], 'status': [], 'returned': None, 'body': ''}
    if not m.is_multipart():
        out['body'] = m.get_content()
    for part in m.walk():
        ct = part.get_content_type()
        if ct == 'text/plain':
            out['text'].append(part.get_content())
        elif ct == 'message/delivery-status':
            for block in part.get_payload():
                out['status'].append({k: str(v) for k, v in block.items()})
        elif ct == 'message/rfc822':
            inner = part.get_payload()[0]
            out['returned'] = [[k, str(v)] for k, v in inner.items()]
        elif ct == 'text/rfc822-headers':
            inner = email.message_from_string(part.get_content(), policy=policy.default)
            out['returned'] = [[k, str(v)] for k, v in inner.items()]
    return out

if sys.argv[2] == 'mbox':
    print(json.dumps([parse(m.as_bytes()) for m in mailbox.mbox(sys.argv[1], create=False)]))
else:
    print(json.dumps(parse(open(sys.argv[1], 'rb').read())))
`;

/** A message file parsed by Python's email package (policy.default). */
export async function parseMail(path: string): Promise<ParsedMail> {
  const r = await run(python(), ['-c', PARSE, path, 'file'], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `python email: ${r.stderr}`);
  return JSON.parse(r.stdout) as ParsedMail;
}

/** Every message of an mbox (Python's mailbox.mbox), each parsed by the email package. */
export async function parseMbox(path: string): Promise<ParsedMail[]> {
  if (!existsSync(path)) return [];
  const r = await run(python(), ['-c', PARSE, path, 'mbox'], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `python mailbox: ${r.stderr}`);
  return JSON.parse(r.stdout) as ParsedMail[];
}

/** A header of a parsed message (first one, case-insensitive). */
export function header(m: ParsedMail | { headers: [string, string][] }, name: string): string | undefined {
  return m.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}

/** The per-recipient blocks of a DSN, with "type;address" fields normalised to "type; address". */
export function dsnRecipients(m: ParsedMail): Record<string, string>[] {
  return m.status.slice(1).map((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, /^(Final|Original)-Recipient$/.test(k) ? v.replace(/;\s*/, '; ') : v])));
}

/** `smtpctl -f FILE show queue --json`: through the control socket, or read from the spool when none answers. */
export async function showQueue(configFile: string): Promise<{ entries: QueueEntry[]; raw: string }> {
  const r = await run(process.execPath, [POSTERN, 'smtpctl', '-f', configFile, '--json', 'show', 'queue'], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `smtpctl show queue: ${r.stderr}`);
  return { entries: JSON.parse(r.stdout) as QueueEntry[], raw: r.stdout };
}

/** `smtpctl -f FILE ARGS…` against the running daemon's control socket; must succeed. */
export async function smtpctl(configFile: string, ...args: string[]): Promise<string> {
  const r = await run(process.execPath, [POSTERN, 'smtpctl', '-f', configFile, ...args], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `smtpctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The message of `box` that is a DSN reporting on `rcpt`. */
export function findDsn(box: readonly ParsedMail[], rcpt: string): ParsedMail | undefined {
  return box.find((m) => dsnRecipients(m).some((r) => r['Final-Recipient'] === `rfc822; ${rcpt}`));
}
