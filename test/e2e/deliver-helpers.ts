/*
 * test/e2e/deliver-helpers.ts — shared bits of the deliver-*.test.ts files:
 * the built smtpd with deliveries running, in a temporary folder that also
 * holds its tables, scripts and mailboxes; mail sent by Python's smtplib;
 * bounded polling of a destination; mailboxes read by Python's mailbox and
 * email modules (real mail readers).
 *
 * Local users are virtual (`userbase <users>`, "name uid:gid:home") with the
 * uid and gid of whoever runs the tests, so that the same tests run as root
 * (deliveries go through the deliver-as helper) and unprivileged (the
 * daemon delivers as itself). deliver-privdrop.test.ts uses real users.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { python, run } from '../helpers/tools.js';

export const UID = process.getuid?.() ?? 0;
export const GID = process.getgid?.() ?? 0;
export const IS_ROOT = UID === 0;

/** Anything with an `after` hook (a TestContext, or a suite's `after`). */
export interface Cleanup {
  after(fn: () => void | Promise<void>): void;
}

/** Daemons started in each test folder: killed before the folder is removed. */
const daemons = new Map<string, DaemonHandle[]>();

/** A test folder, removed after the test, once its daemons are dead (kept with POSTERN_KEEP=1 to look at it). */
export function testDir(t: Cleanup, prefix = 'postern-deliver-'): string {
  const dir = tempDir(prefix);
  chmodSync(dir, 0o755);
  daemons.set(dir, []);
  t.after(async () => {
    for (const d of daemons.get(dir) ?? []) {
      await d.kill();
      d.cleanup();
    }
    daemons.delete(dir);
    if (process.env.POSTERN_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Write files under dir ("$DIR" replaced by dir); a mode may be given as [text, mode]. */
export function writeFiles(dir: string, files: Record<string, string | [string, number]>): void {
  for (const [name, spec] of Object.entries(files)) {
    const [text, mode] = typeof spec === 'string' ? [spec, 0o644] : spec;
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text.replaceAll('$DIR', dir), { mode });
    chmodSync(path, mode);
  }
}

/** A userbase table line for each name: the test's own uid/gid, home under $DIR/home (created). */
export function usersTable(dir: string, names: readonly string[]): string {
  for (const n of names) mkdirSync(join(dir, 'home', n), { recursive: true, mode: 0o755 });
  return names.map((n) => `${n} ${UID}:${GID}:${join(dir, 'home', n)}\n`).join('');
}

/** The head of every configuration here: queue, mboxes and one loopback listener in $DIR. */
export const HEAD = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
`;

/** Start smtpd (deliveries running) on `config` in `dir` (a testDir()); it is killed after the test. */
export async function startSite(dir: string, config: string, args: string[] = []): Promise<DaemonHandle> {
  const list = daemons.get(dir);
  assert.ok(list, `${dir} is not a testDir()`);
  const d = await startDaemon(config, { dir, deliver: true, args });
  list.push(d);
  return d;
}

/**
 * Poll until `probe` returns something other than undefined; fails with
 * `what` (and the daemon's log) after timeoutMs.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, opts: { timeoutMs?: number; daemon?: DaemonHandle } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${opts.daemon ? `\n--- smtpd log ---\n${opts.daemon.logs.join('\n')}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Files of a folder (none if it does not exist), sorted. */
export function listDir(path: string): string[] {
  return existsSync(path) ? readdirSync(path).sort() : [];
}

/** Lines of a text file (none if it does not exist). */
export function fileLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/* ------------------------------------------------------- smtpctl */

const POSTERN = join(REPO, 'bin', 'postern.js');

/** Run `smtpctl -f <conf> ARGS…` against the daemon of `dir`; its standard output (status 0 required). */
export async function smtpctl(dir: string, ...args: string[]): Promise<string> {
  const r = await run(process.execPath, [POSTERN, 'smtpctl', '-f', join(dir, 'smtpd.conf'), ...args], { timeoutMs: 15_000 });
  assert.equal(r.status, 0, `smtpctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `smtpctl show queue --json`: the queued envelopes. */
export async function queued(dir: string): Promise<{ evpid: string; msgid: string; state: string; lastTry: number; retry: number; nextTry: number | null; error: string }[]> {
  return JSON.parse(await smtpctl(dir, '--json', 'show', 'queue')) as Awaited<ReturnType<typeof queued>>;
}

/* ------------------------------------------------------- sending */

export interface Send {
  readonly from: string;
  readonly to: readonly string[];
  /** The message, LF or CRLF line ends (sent with CRLF). */
  readonly data: string;
  readonly mailOptions?: readonly string[];
  /** RCPT options for every recipient, or per recipient (same order as `to`). */
  readonly rcptOptions?: readonly string[] | readonly (readonly string[])[];
}

export interface Sent {
  readonly mail: [number, string];
  readonly rcpts: [number, string][];
  /** The DATA reply, or null when no recipient was accepted. */
  readonly data: [number, string] | null;
  /** The queue id from "250 2.0.0 <msgid> …". */
  readonly msgid: string | undefined;
}

const SMTPLIB = String.raw`
import json, smtplib, sys
spec = json.loads(sys.argv[2])
out = {}
with smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='client.test', timeout=20) as s:
    s.ehlo()
    code, msg = s.mail(spec['from'], spec.get('mail', []))
    out['mail'] = [code, msg.decode('utf-8', 'replace')]
    out['rcpts'] = []
    ok = 0
    for i, r in enumerate(spec['to']):
        code, msg = s.rcpt(r, spec['rcpt'][i])
        out['rcpts'].append([code, msg.decode('utf-8', 'replace')])
        ok += code in (250, 251)
    out['data'] = None
    if ok:
        code, msg = s.data(spec['data'].encode('utf-8'))
        out['data'] = [code, msg.decode('utf-8', 'replace')]
    else:
        s.rset()
print(json.dumps(out))
`;

/** Send one message with Python's smtplib (ESMTP, each command's reply returned). */
export async function send(port: number, m: Send): Promise<Sent> {
  const ro = m.rcptOptions ?? [];
  const perRcpt = ro.length > 0 && Array.isArray(ro[0]);
  const rcpt = m.to.map((_, i) => (perRcpt ? ((ro as readonly (readonly string[])[])[i] ?? []) : (ro as readonly string[])));
  const spec = { from: m.from, to: m.to, data: m.data.replace(/\r?\n/g, '\r\n'), mail: m.mailOptions ?? [], rcpt };
  const r = await run(python(), ['-c', SMTPLIB, String(port), JSON.stringify(spec)], { timeoutMs: 30_000 });
  assert.equal(r.status, 0, `smtplib: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as Omit<Sent, 'msgid'>;
  const msgid = out.data ? /^2\.0\.0 ([0-9a-f]{8}) /.exec(out.data[1])?.[1] : undefined;
  return { ...out, msgid };
}

/** Send and insist that every recipient and the message were accepted; the queue id. */
export async function sendOk(port: number, m: Send): Promise<string> {
  const r = await send(port, m);
  assert.equal(r.mail[0], 250, `MAIL: ${r.mail.join(' ')}`);
  r.rcpts.forEach(([code, text], i) => assert.equal(code, 250, `RCPT ${m.to[i]}: ${code} ${text}`));
  assert.equal(r.data?.[0], 250, `DATA: ${r.data?.join(' ')}`);
  assert.ok(r.msgid, `no queue id in ${r.data?.[1]}`);
  return r.msgid;
}

/** A small RFC 5322 message (LF line ends; send() sends CRLF). */
export function message(headers: Record<string, string>, body: string): string {
  return `${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('')}\n${body}`;
}

/* ------------------------------------------------------- reading */

export interface MboxMessage {
  /** The From_ line without "From ". */
  readonly from: string;
  readonly headers: [string, string][];
  /** The body as the reader returns it (mboxrd quoting is not undone by Python's mbox). */
  readonly body: string;
  /** The body with its trailing line ends collapsed to one (Python keeps the separating blank line of the last message). */
  readonly text: string;
  header(name: string): string | undefined;
}

const READ_MBOX = String.raw`
import json, mailbox, sys
out = []
for m in mailbox.mbox(sys.argv[1], create=False):
    body = m.get_payload(decode=False) if not m.is_multipart() else m.as_string().split('\n\n', 1)[1]
    out.append({'from': m.get_from(), 'headers': [[k, str(v)] for k, v in m.items()], 'body': body})
print(json.dumps(out))
`;

/** Every message of an mbox as Python's mailbox.mbox reads it (none when the file does not exist). */
export async function readMbox(path: string): Promise<MboxMessage[]> {
  if (!existsSync(path)) return [];
  const r = await run(python(), ['-c', READ_MBOX, path]);
  assert.equal(r.status, 0, `mailbox.mbox: ${r.stderr}`);
  return (JSON.parse(r.stdout) as Omit<MboxMessage, 'header' | 'text'>[]).map((m) => ({
    ...m,
    text: m.body.replace(/\n+$/, '\n'),
    header: (name: string) => m.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
  }));
}

/** Wait until the mbox holds at least n messages (Python-parsed); returns them all. */
export async function waitForMbox(path: string, n: number, opts: { timeoutMs?: number; daemon?: DaemonHandle } = {}): Promise<MboxMessage[]> {
  return waitFor(
    `${n} message(s) in ${path}`,
    async () => {
      if (existsSync(`${path}.lock`)) return undefined; // a delivery in progress: the last message may be partial
      const ms = await readMbox(path);
      return ms.length >= n ? ms : undefined;
    },
    opts,
  );
}

/* ------------------------------------------------------- reports */

export type Fields = [string, string][];

export interface ReportPart {
  readonly type: string;
  readonly headers: Fields;
  /** text/* parts. */
  readonly text?: string;
  /** message/delivery-status: the per-message block, then one block per recipient. */
  readonly blocks?: Fields[];
  /** message/rfc822: the returned message. */
  readonly message?: { readonly headers: Fields; readonly body: string };
}

export interface Report {
  readonly from: string;
  readonly headers: Fields;
  readonly type: string;
  readonly params: Record<string, string>;
  readonly parts: ReportPart[];
}

const READ_REPORTS = String.raw`
import json, mailbox, sys
def fields(m):
    return [[k, str(v)] for k, v in m.items()]
def part(p):
    out = {'type': p.get_content_type(), 'headers': fields(p)}
    t = p.get_content_type()
    if t in ('message/delivery-status', 'message/global-delivery-status'):
        out['blocks'] = [fields(b) for b in p.get_payload()]
    elif t in ('message/rfc822', 'message/global'):
        inner = p.get_payload()[0]
        out['message'] = {'headers': fields(inner), 'body': inner.get_payload()}
    else:
        out['text'] = p.get_payload(decode=True).decode('utf-8')
    return out
out = []
for m in mailbox.mbox(sys.argv[1], create=False):
    out.append({'from': m.get_from(), 'headers': fields(m), 'type': m.get_content_type(),
                'params': {k: v for k, v in (m.get_params() or [])[1:]},
                'parts': [part(p) for p in m.get_payload()] if m.is_multipart() else []})
print(json.dumps(out))
`;

/** The messages of an mbox parsed by Python's email package as reports (multipart/report). */
export async function readReports(path: string): Promise<Report[]> {
  if (!existsSync(path)) return [];
  const r = await run(python(), ['-c', READ_REPORTS, path]);
  assert.equal(r.status, 0, `email: ${r.stderr}`);
  return JSON.parse(r.stdout) as Report[];
}

/** A field's value (first match, case-insensitive), unfolded (RFC 5322 §2.2.3). */
export function field(fs: Fields | undefined, name: string): string | undefined {
  return fs?.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1].replace(/\r?\n(?=[ \t])/g, '');
}
