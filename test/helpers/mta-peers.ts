/*
 * test/helpers/mta-peers.ts — SMTP servers for the relay client's tests,
 * and a harness that builds a RelayAgent and its tasks.
 *
 *  - startScriptedServer(): a tiny server of our own that records every
 *    byte it receives and answers as a test tells it (refused recipients,
 *    hostile multi-line replies, a connection dropped after the final dot);
 *  - startSmtpSink(): Postfix's smtp-sink (Debian package postfix), which
 *    can be told to reject (-f) or defer (-r) commands and dumps messages;
 *  - startAiosmtpd(): Python's aiosmtpd (Debian python3-aiosmtpd) requiring
 *    STARTTLS (or smtps) and AUTH, with a certificate made by makeCert().
 * All listen on loopback addresses other than 127.0.0.1 (which Postern
 * counts as its own), on a port the test chooses, since MX routing sends
 * every MX host to the same port.
 */
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import type { Action, Config } from '../../src/config/model.js';
import type { DeliveryTask } from '../../src/delivery/agent.js';
import { Resolver } from '../../src/dns/resolver.js';
import { MailLog } from '../../src/log/maillog.js';
import { RelayAgent, type CredentialsLookup, type RelayAgentOptions } from '../../src/mta/agent.js';
import type { RelayTuningInput } from '../../src/mta/options.js';
import type { SelfNames } from '../../src/mta/route.js';
import type { Envelope, EnvelopeRecipient } from '../../src/mail/envelope.js';
import { Stats } from '../../src/stats.js';
import { python, requireTool } from './tools.js';

/* ------------------------------------------------------------ ports */

/** A port free on every one of these loopback addresses (MX hosts share the port). */
export async function freePort(addresses: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (const a of addresses) {
      ok = await new Promise<boolean>((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen(port, a, () => s.close(() => resolve(true)));
      });
      if (!ok) break;
    }
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** Resolves once something accepts connections on address:port (throws after timeoutMs). */
export async function waitListening(address: string, port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: address, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${address}:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/* ------------------------------------------------- scripted server */

export interface ScriptedMessage {
  readonly mail: string;
  readonly rcpts: string[];
  /** DATA content exactly as received, terminator included (or the BDAT payloads joined). */
  raw: Buffer;
  readonly via: 'DATA' | 'BDAT';
}

export interface ScriptedConnection {
  /** Every byte received on this connection. */
  received: Buffer;
  readonly commands: string[];
  readonly messages: ScriptedMessage[];
}

export interface ScriptedOptions {
  readonly address: string;
  readonly port: number;
  readonly greeting?: string;
  /** EHLO extension lines; null: EHLO is refused (502), HELO works. */
  readonly ehlo?: readonly string[] | null;
  readonly mail?: (arg: string) => string;
  readonly rcpt?: (arg: string) => string;
  readonly data?: () => string;
  /** The reply after the final dot / BDAT LAST; 'drop' closes the connection without a reply, '' never answers. */
  readonly afterData?: (m: ScriptedMessage, n: number) => string | 'drop';
  /**
   * With STARTTLS among the EHLO lines: 'garbage' answers 220 and then
   * sends clear text where the TLS handshake should be; 'inject' sends a
   * second reply in the same write as the 220 (a response injection).
   */
  readonly starttls?: 'garbage' | 'inject';
  /** The reply to RSET (default 250); the options object is read at every command, so a test may change it. */
  rset?: () => string;
}

export interface ScriptedServer {
  readonly port: number;
  readonly connections: ScriptedConnection[];
  messages(): ScriptedMessage[];
  close(): Promise<void>;
}

const DEFAULT_EHLO = ['PIPELINING', '8BITMIME', 'SIZE 10000000', 'ENHANCEDSTATUSCODES'];

export async function startScriptedServer(o: ScriptedOptions): Promise<ScriptedServer> {
  const connections: ScriptedConnection[] = [];
  const sockets = new Set<net.Socket>();
  let delivered = 0;
  // noDelay: the latency test measures the client; a server with Nagle on would stall it.
  const server = net.createServer({ noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const c: ScriptedConnection = { received: Buffer.alloc(0), commands: [], messages: [] };
    connections.push(c);
    let buf = Buffer.alloc(0);
    let mode: 'line' | 'data' | 'bdat' = 'line';
    let bdatLeft = 0;
    let bdatLast = false;
    let current: ScriptedMessage | null = null;
    const send = (s: string): void => {
      if (!sock.destroyed) sock.write(s.endsWith('\r\n') ? s : `${s}\r\n`);
    };
    const finish = (m: ScriptedMessage): void => {
      c.messages.push(m);
      const r = o.afterData?.(m, delivered++) ?? '250 2.0.0 Ok: queued';
      if (r === 'drop') sock.destroy();
      else if (r !== '') send(r);
      current = null;
    };
    send(o.greeting ?? '220 scripted.test ESMTP scripted');
    sock.on('data', (chunk: Buffer) => {
      c.received = Buffer.concat([c.received, chunk]);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (mode === 'data') {
          const atStart = buf.subarray(0, 3).toString('latin1') === '.\r\n' && (current?.raw.length ?? 0) === 0;
          const i = atStart ? 0 : buf.indexOf('\r\n.\r\n');
          if (i < 0) return;
          const end = atStart ? 3 : i + 5;
          const m = current as ScriptedMessage;
          m.raw = Buffer.concat([m.raw, buf.subarray(0, end)]);
          buf = buf.subarray(end);
          mode = 'line';
          finish(m);
          continue;
        }
        if (mode === 'bdat') {
          if (buf.length < bdatLeft) {
            if (current) current.raw = Buffer.concat([current.raw, buf]);
            bdatLeft -= buf.length;
            buf = Buffer.alloc(0);
            return;
          }
          if (current) current.raw = Buffer.concat([current.raw, buf.subarray(0, bdatLeft)]);
          buf = buf.subarray(bdatLeft);
          mode = 'line';
          if (current === null) send('503 5.5.1 no valid recipients');
          else if (bdatLast) finish(current);
          else send('250 2.0.0 chunk ok');
          continue;
        }
        const lf = buf.indexOf('\n');
        if (lf < 0) return;
        const line = buf.subarray(0, lf).toString('utf8').replace(/\r$/, '');
        buf = buf.subarray(lf + 1);
        c.commands.push(line);
        const verb = line.split(' ')[0]?.toUpperCase() ?? '';
        const arg = line.slice(verb.length + 1);
        switch (verb) {
          case 'EHLO':
            if (o.ehlo === null) send('502 5.5.2 Error: command not recognized');
            else send(['scripted.test hello', ...(o.ehlo ?? DEFAULT_EHLO)].map((l, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${l}`).join('\r\n'));
            break;
          case 'HELO':
            send('250 scripted.test');
            break;
          case 'MAIL': {
            const r = o.mail?.(arg) ?? '250 2.1.0 Ok';
            if (r.startsWith('2')) current = { mail: arg, rcpts: [], raw: Buffer.alloc(0), via: 'DATA' };
            send(r);
            break;
          }
          case 'RCPT': {
            if (current === null) {
              send('503 5.5.1 Error: need MAIL command');
              break;
            }
            const r = o.rcpt?.(arg) ?? '250 2.1.5 Ok';
            if (r.startsWith('2')) current.rcpts.push(arg);
            send(r);
            break;
          }
          case 'DATA':
            if (current === null || current.rcpts.length === 0) {
              send('554 5.5.1 Error: no valid recipients');
              break;
            }
            {
              const r = o.data?.() ?? '354 End data with <CR><LF>.<CR><LF>';
              send(r);
              if (r.startsWith('354')) mode = 'data';
            }
            break;
          case 'BDAT': {
            const m = /^(\d+)( LAST)?$/i.exec(arg);
            bdatLeft = Number(m?.[1] ?? 0);
            bdatLast = m?.[2] !== undefined;
            if (current !== null && current.rcpts.length === 0) current = null;
            if (current !== null && current.via === 'DATA' && current.raw.length === 0) current = { ...current, via: 'BDAT' };
            mode = 'bdat';
            break;
          }
          case 'RSET':
            current = null;
            send(o.rset?.() ?? '250 2.0.0 Ok');
            break;
          case 'STARTTLS':
            if (o.starttls === 'inject') send('220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected');
            else {
              send('220 2.0.0 Ready to start TLS');
              sock.end('this is not a TLS handshake\r\n');
            }
            break;
          case 'NOOP':
            send('250 2.0.0 Ok');
            break;
          case 'QUIT':
            send('221 2.0.0 Bye');
            sock.end();
            break;
          default:
            send('502 5.5.2 Error: command not recognized');
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.address, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    messages: () => connections.flatMap((c) => c.messages),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/* ----------------------------------------------------------- smtp-sink */

export interface Sink {
  /** Dumped messages (smtp-sink's X-* headers, then the message, LF line ends). */
  messages(): string[];
  close(): Promise<void>;
}

/** Postfix's smtp-sink on address:port with extra options (-f RCPT, -r DATA, -N …). */
export async function startSmtpSink(address: string, port: number, args: readonly string[] = []): Promise<Sink> {
  const bin = requireTool('smtp-sink');
  const dir = mkdtempSync(join(tmpdir(), 'postern-sink-'));
  chmodSync(dir, 0o777);
  const root = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const p = spawn(bin, [...root, ...args, '-d', `${dir}/%M.`, `${address}:${port}`, '10'], { stdio: 'ignore' });
  await waitListening(address, port);
  return {
    messages: () =>
      readdirSync(dir)
        .sort()
        .map((f) => readFileSync(join(dir, f), 'latin1')),
    close: async () => {
      await stop(p);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function stop(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 2000).unref();
  });
}

/* ----------------------------------------------------------- certificates */

export interface Cert {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly pem: string;
}

/** A self-signed certificate for these names and addresses (openssl). */
export function makeCert(cn: string, names: readonly string[], ips: readonly string[]): Cert {
  const dir = mkdtempSync(join(tmpdir(), 'postern-cert-'));
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)].join(',');
  const r = spawnSync(requireTool('openssl'), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), pem: readFileSync(join(dir, 'cert.pem'), 'utf8') };
}

/* ----------------------------------------------------------- aiosmtpd */

const AIOSMTPD = String.raw`
import json, os, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, cert, key, host, port, outdir, user, password, auth, exclude = sys.argv[1:11]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
count = [0]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith('refuse'):
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown' % address
        if address.startswith('later'):
            return '450 4.2.1 <%s>: Mailbox busy, try again later' % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        count[0] += 1
        n = count[0]
        auth = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        rec = {'mail_from': envelope.mail_from, 'mail_options': envelope.mail_options,
               'rcpt_tos': envelope.rcpt_tos, 'rcpt_options': envelope.rcpt_options,
               'content': envelope.original_content.decode('latin1'), 'auth': auth,
               'tls': session.ssl is not None, 'helo': session.host_name}
        with open(os.path.join(outdir, '%04d.json' % n), 'w') as f:
            json.dump(rec, f)
        return '250 2.0.0 OK queued as %04d' % n

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

kw = dict(hostname=host, port=int(port), authenticator=authenticator, auth_required=(auth == 'required'),
          auth_require_tls=(mode == 'starttls'), enable_SMTPUTF8=True, auth_exclude_mechanism=[m for m in exclude.split(',') if m])
# aiosmtpd does not count implicit TLS (smtps) as TLS for auth_require_tls: the whole connection is TLS anyway.
if mode == 'smtps':
    controller = Controller(Handler(), ssl_context=ctx, **kw)
elif mode == 'plain':
    # No TLS at all: a smarthost that offers none (auth-over-plaintext).
    controller = Controller(Handler(), **kw)
else:
    controller = Controller(Handler(), tls_context=ctx, require_starttls=True, **kw)
controller.start()
print('ready', flush=True)
sys.stdin.read()
controller.stop()
`;

export interface AiosmtpdRecord {
  readonly mail_from: string;
  readonly mail_options: string[];
  readonly rcpt_tos: string[];
  readonly rcpt_options: string[][];
  readonly content: string;
  readonly auth: string | null;
  readonly tls: boolean;
  readonly helo: string;
}

export interface Aiosmtpd {
  messages(): AiosmtpdRecord[];
  close(): Promise<void>;
}

export interface AiosmtpdOptions {
  /** plain: no TLS offered, AUTH accepted in clear. */
  readonly mode: 'starttls' | 'smtps' | 'plain';
  readonly cert: Cert;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** AUTH required before MAIL (default true). */
  readonly authRequired?: boolean;
  /** AUTH mechanisms not offered ("LOGIN", "PLAIN"). */
  readonly exclude?: readonly string[];
}

export async function startAiosmtpd(o: AiosmtpdOptions): Promise<Aiosmtpd> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-aiosmtpd-'));
  const script = join(dir, 'server.py');
  writeFileSync(script, AIOSMTPD);
  const out = join(dir, 'out');
  spawnSync('mkdir', [out]);
  const p = spawn(python(), [script, o.mode, o.cert.cert, o.cert.key, o.address, String(o.port), out, o.user, o.password, o.authRequired === false ? 'none' : 'required', (o.exclude ?? []).join(',')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`aiosmtpd did not start: ${stderr}`)), 15_000);
    p.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`aiosmtpd exited (${code}): ${stderr}`));
    });
  });
  return {
    messages: () =>
      readdirSync(out)
        .sort()
        .map((f) => JSON.parse(readFileSync(join(out, f), 'utf8')) as AiosmtpdRecord),
    close: async () => {
      p.stdin?.end();
      await stop(p);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/* ----------------------------------------------------------- the agent */

export function configFrom(text: string): Config {
  const r = loadConfigText(text, 'test.conf', { cwd: tmpdir(), hostname: 'mail.postern.test' });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (r.config === undefined || errors.length > 0) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.config;
}

export function actionOf(config: Config, name: string): Action {
  const a = config.actions.get(name);
  if (a === undefined) throw new Error(`no action ${name}`);
  return a;
}

/** Our names: the configured hostname and localhost; our addresses: 127.0.0.1 and ::1 (tests use other 127/8 addresses as remote hosts). */
export const TEST_SELF: SelfNames = {
  isLocalDomain: (d) => ['mail.postern.test', 'localhost'].includes(d.toLowerCase()) || d === '[127.0.0.1]',
  isOwnAddress: (ip) => ip === '127.0.0.1' || ip === '::1',
};

export interface Harness {
  readonly agent: RelayAgent;
  readonly logs: string[];
  readonly stats: Stats;
}

export function makeAgent(o: { config: Config; dnsServer?: string; tuning?: RelayTuningInput; credentials?: CredentialsLookup; self?: SelfNames; signer?: RelayAgentOptions['signer'] }): Harness {
  const logs: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  const stats = new Stats();
  const resolver = new Resolver({ servers: o.dnsServer !== undefined ? [o.dnsServer] : [], timeoutMs: 1000 });
  const agent = new RelayAgent({
    config: o.config,
    log,
    stats,
    resolver,
    local: o.self ?? TEST_SELF,
    credentials: o.credentials ?? (() => undefined),
    ...(o.signer ? { signer: o.signer } : {}),
    tuning: { timeouts: { connect: 3000, greeting: 5000, command: 5000, dataInit: 5000, dataBlock: 5000, dataDone: 5000, rset: 2000, quit: 1000 }, ...o.tuning },
  });
  return { agent, logs, stats };
}

let msgCounter = 0;

export interface TaskInput {
  readonly action: Action;
  readonly sender?: string;
  readonly rcpts: readonly (string | Partial<EnvelopeRecipient> & { address: string })[];
  readonly body: string | Buffer;
  readonly env?: Partial<Envelope>;
  readonly signal?: AbortSignal;
}

export function makeTask(t: TaskInput): DeliveryTask {
  const msgid = (0x10000000 + ++msgCounter).toString(16);
  const body = typeof t.body === 'string' ? Buffer.from(t.body, 'utf8') : t.body;
  const recipients: EnvelopeRecipient[] = t.rcpts.map((r, i) => ({
    evpid: `${msgid}${(i + 1).toString(16).padStart(8, '0')}`,
    action: t.action.name,
    ...(typeof r === 'string' ? { address: r } : r),
  }));
  const envelope: Envelope = {
    version: 1,
    msgid,
    sender: t.sender ?? 'alice@origin.test',
    recipients,
    body: '8BITMIME',
    smtputf8: false,
    arrival: Date.now(),
    client: { address: '127.0.0.1', port: 1, proto: 'ESMTP', listener: '127.0.0.1:25' },
    size: body.length,
    ...t.env,
  };
  return {
    envelope,
    recipients,
    action: t.action,
    attempt: 1,
    signal: t.signal ?? new AbortController().signal,
    // Small chunks, so content crosses many reads.
    openBody: () => Readable.from(chunksOf(body, 7000)),
  };
}

function chunksOf(b: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
}

export const MESSAGE = 'Received: from client.test by mail.postern.test\r\nFrom: alice@origin.test\r\nTo: bob@dest.test\r\nSubject: relay test\r\n\r\nHello.\r\n';
