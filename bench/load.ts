/*
 * bench/load.ts — Postern's SMTP load generator.
 *
 *   node dist/bench/load.js --port N [--host 127.0.0.1] [--sessions 10]
 *        [--size 1024] [--rcpts 1] [--duration-ms 5000] [--count N]
 *        [--per-session 100] [--no-pipelining] [--domain bench.test]
 *        [--local-part rcpt] [--message-file FILE]
 *        [--source 127.0.0.2,127.0.0.3]
 *
 * SESSIONS connections run side by side. Each greets (EHLO), then sends
 * transactions until DURATION-MS have passed or COUNT transactions have
 * been started: with PIPELINING (RFC 2920) MAIL, the RCPTs and DATA leave
 * in one write, then the content and its final dot in another, so a
 * message costs two round trips; without it, one command per round trip.
 * After PER-SESSION messages (100, OpenSMTPD's and Postern's max-mails)
 * the session QUITs and reconnects, as a real client does.
 *
 * It counts transactions answered 250 after the final dot, the ones
 * refused at any step, connection errors by kind, and the latency of each
 * accepted transaction (from MAIL to the 250 after the dot). As a
 * program it prints one JSON line {"event":"start"} when it begins
 * connecting and one {"event":"result", …} at the end.
 *
 * Bounds: every reply has a timeout (a watchdog, not a timer per reply),
 * reconnections stop at the deadline, and the whole run stops at
 * duration + timeout whatever happens.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connectWithin } from './connect.js';
import { Samples, summarizeLatencies, type LatencySummary } from './stats.js';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly sessions: number;
  /** Message size in bytes, header included, before dot-stuffing (there is none to do). */
  readonly size: number;
  readonly rcpts: number;
  /** No transaction starts after this (ms from the start). */
  readonly durationMs: number;
  /** No transaction starts after this many were started (all sessions together). */
  readonly maxMessages?: number;
  /** Transactions per connection before QUIT and a new connection. */
  readonly perSession: number;
  readonly pipelining: boolean;
  /** Recipient domain. */
  readonly domain: string;
  /** Recipients are LOCALPART0@domain, LOCALPART1@domain, … (one per recipient of a message). */
  readonly localPart: string;
  readonly sender: string;
  readonly helo: string;
  /** Local addresses to connect from, round robin (empty: the kernel's choice). */
  readonly sources: readonly string[];
  /** Longest wait for one reply (and for a connection). */
  readonly replyTimeoutMs: number;
  /** A ready message to send instead of buildMessage()'s (CRLF lines, ending in ".\r\n"; e.g. a DKIM-signed one). */
  readonly messageFile?: string;
}

export const LOAD_DEFAULTS: Omit<LoadOptions, 'port'> = Object.freeze({
  host: '127.0.0.1',
  sessions: 10,
  size: 1024,
  rcpts: 1,
  durationMs: 5000,
  perSession: 100,
  pipelining: true,
  domain: 'bench.test',
  localPart: 'rcpt',
  sender: 'load@source.bench.test',
  helo: 'load.bench.test',
  sources: [],
  replyTimeoutMs: 30_000,
});

export interface LoadResult {
  /** Transactions answered 250 after the final dot. */
  readonly accepted: number;
  /** Transactions refused (4xx/5xx at MAIL, every RCPT, DATA or the dot). */
  readonly refused: number;
  /** Transactions lost to a dropped connection or a timeout. */
  readonly broken: number;
  readonly connections: number;
  /** Errors by kind ("connect ECONNREFUSED", "greeting 421", "timeout", …). */
  readonly errors: Readonly<Record<string, number>>;
  /** The first few refusal replies, for the report. */
  readonly sampleReplies: readonly string[];
  /** From the first connect to the last transaction's reply. */
  readonly elapsedMs: number;
  /** Latency of accepted transactions, ms. */
  readonly latency: LatencySummary;
  readonly options: LoadOptions;
}

/** The message: a small header and lines of 'x' up to about `size` bytes (within 2), then the final dot. */
export function buildMessage(size: number, opts: { sender: string; rcpt: string }): Buffer {
  const header =
    `From: <${opts.sender}>\r\nTo: <${opts.rcpt}>\r\nSubject: Postern benchmark\r\n` +
    `Message-ID: <bench.${size}@source.bench.test>\r\nDate: Sun, 22 Nov 2026 00:00:00 +0000\r\n\r\n`;
  const parts = [header];
  let n = header.length;
  const line = 'x'.repeat(76) + '\r\n';
  for (let guard = 0; size - n >= 3 && guard < 10_000_000; guard++) {
    const left = size - n;
    const piece = left >= line.length ? line : 'x'.repeat(left - 2) + '\r\n';
    parts.push(piece);
    n += piece.length;
  }
  return Buffer.from(parts.join('') + '.\r\n', 'latin1');
}

/** The envelope commands of a transaction, one by one and as one pipelined group ending in DATA. */
interface Envelope {
  readonly commands: readonly string[];
  readonly pipelined: string;
}

interface Reply {
  readonly code: number;
  readonly text: string;
}

class ReplyTimeout extends Error {}
class ConnectionLost extends Error {}

/** One SMTP client connection: writes commands, reads replies in order. */
class Client {
  private buf = '';
  private lines: string[] = [];
  private readonly ready: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private dead: Error | undefined;
  /** When the reply we wait for was asked for (for the watchdog); 0 when not waiting. */
  waitingSince = 0;
  /** Greeting or EHLO still to come: no transaction can start after the deadline, so the watchdog ends it then. */
  opening = true;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.fail(new ConnectionLost((e as NodeJS.ErrnoException).code ?? e.message)));
    socket.on('close', () => this.fail(new ConnectionLost('closed')));
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let start = 0;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const eol = this.buf.indexOf('\n', start);
      if (eol < 0) break;
      const line = this.buf.slice(start, eol > start && this.buf.charCodeAt(eol - 1) === 13 ? eol - 1 : eol);
      start = eol + 1;
      if (line.length >= 4 && line.charCodeAt(3) === 45 /* '-' */) {
        if (this.lines.length < 100) this.lines.push(line);
        continue;
      }
      this.lines.push(line);
      const reply = { code: Number(line.slice(0, 3)) || 0, text: this.lines.join('\n') };
      this.lines = [];
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        this.waitingSince = 0;
        w.resolve(reply);
      } else this.ready.push(reply);
    }
    this.buf = start === 0 ? this.buf : this.buf.slice(start);
    if (this.buf.length > 65_536) this.fail(new ConnectionLost('reply line too long'));
  }

  fail(e: Error): void {
    this.dead ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.waitingSince = 0;
      w.reject(e);
    }
    this.socket.destroy();
  }

  reply(): Promise<Reply> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.dead) return Promise.reject(this.dead);
    this.waitingSince = performance.now();
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }
}

function connect(host: string, port: number, localAddress: string | undefined, timeoutMs: number): Promise<net.Socket> {
  return connectWithin(host, port, localAddress, timeoutMs, (m) => new ConnectionLost(m));
}

/** Runs the load described by `input` (defaults filled in) and resolves with its counts. */
export async function runLoad(input: Partial<LoadOptions> & { port: number }, onStart?: () => void): Promise<LoadResult> {
  const o: LoadOptions = { ...LOAD_DEFAULTS, ...input };
  const message = o.messageFile !== undefined ? readFileSync(o.messageFile) : buildMessage(o.size, { sender: o.sender, rcpt: `${o.localPart}0@${o.domain}` });
  const rcptLines = Array.from({ length: o.rcpts }, (_, i) => `RCPT TO:<${o.localPart}${i}@${o.domain}>\r\n`);
  /** MAIL (with SIZE when the server offers it) and the RCPTs, one string per command. */
  const envelopeFor = (size: boolean): string[] => [`MAIL FROM:<${o.sender}>${size ? ` SIZE=${message.length - 3}` : ''}\r\n`, ...rcptLines];
  const withData = (cmds: string[]): Envelope => ({ commands: cmds, pipelined: cmds.join('') + 'DATA\r\n' });
  const envelopes = { plain: withData(envelopeFor(false)), sized: withData(envelopeFor(true)) };

  let started = 0;
  let accepted = 0;
  let refused = 0;
  let broken = 0;
  let connections = 0;
  let lastReplyAt = 0;
  const errors: Record<string, number> = {};
  const sampleReplies: string[] = [];
  const latencies = new Samples();
  const clients = new Set<Client>();
  const note = (kind: string): void => {
    errors[kind] = (errors[kind] ?? 0) + 1;
  };
  const refusal = (r: Reply, step: string): void => {
    if (sampleReplies.length < 5) sampleReplies.push(`${step}: ${r.text.slice(0, 200)}`);
    note(`${step} ${r.code}`);
  };

  const t0 = performance.now();
  const deadline = t0 + o.durationMs;
  const hardDeadline = deadline + o.replyTimeoutMs + 1000;
  const mayStart = (): boolean => performance.now() < deadline && (o.maxMessages === undefined || started < o.maxMessages);

  // The watchdog: a reply that takes longer than replyTimeoutMs (or anything past the hard deadline) ends its connection.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const c of clients) {
      if (c.opening && now > deadline) c.fail(new ConnectionLost('still opening at the end'));
      else if ((c.waitingSince > 0 && now - c.waitingSince > o.replyTimeoutMs) || now > hardDeadline) c.fail(new ReplyTimeout('timeout'));
    }
  }, 250);

  /** One transaction on an open session; false when the session must end. */
  async function transaction(c: Client, pipelining: boolean, env: Envelope): Promise<boolean> {
    started++;
    const tStart = performance.now();
    let okRcpts = 0;
    let mail: Reply;
    let data: Reply;
    if (pipelining) {
      c.write(env.pipelined);
      mail = await c.reply();
      for (let i = 0; i < o.rcpts; i++) if ((await c.reply()).code === 250) okRcpts++;
      data = await c.reply();
    } else {
      c.write(env.commands[0] as string);
      mail = await c.reply();
      if (mail.code === 250) {
        for (let i = 0; i < o.rcpts; i++) {
          c.write(env.commands[i + 1] as string);
          const r = await c.reply();
          if (r.code === 250) okRcpts++;
          else if (i === 0) refusal(r, 'RCPT');
        }
      }
      if (mail.code !== 250 || okRcpts === 0) {
        if (mail.code !== 250) refusal(mail, 'MAIL');
        refused++;
        lastReplyAt = performance.now();
        c.write('RSET\r\n');
        return (await c.reply()).code === 250;
      }
      c.write('DATA\r\n');
      data = await c.reply();
    }
    if (data.code !== 354) {
      if (mail.code !== 250) refusal(mail, 'MAIL');
      else if (okRcpts === 0) note('RCPT refused');
      else refusal(data, 'DATA');
      refused++;
      lastReplyAt = performance.now();
      c.write('RSET\r\n');
      return (await c.reply()).code === 250;
    }
    if (mail.code !== 250 || okRcpts === 0) {
      // DATA accepted without a valid envelope: end it empty; the server must refuse it.
      c.write('.\r\n');
      await c.reply();
      refused++;
      lastReplyAt = performance.now();
      return true;
    }
    c.write(message);
    const end = await c.reply();
    lastReplyAt = performance.now();
    if (end.code === 250) {
      accepted++;
      latencies.push(lastReplyAt - tStart);
      return true;
    }
    refusal(end, 'end of data');
    refused++;
    return end.code !== 421;
  }

  async function session(index: number): Promise<void> {
    let connectNo = 0;
    for (let guard = 0; guard < 1_000_000 && mayStart(); guard++) {
      const source = o.sources.length > 0 ? o.sources[(index + connectNo++) % o.sources.length] : undefined;
      let socket: net.Socket;
      try {
        // A connection still pending at the deadline (a full listen backlog: SYNs retried after 1, 3, 7 s…) is of no use.
        socket = await connect(o.host, o.port, source, Math.max(1, Math.min(o.replyTimeoutMs, deadline - performance.now())));
      } catch (e) {
        note(performance.now() < deadline ? (e as Error).message : 'connection still pending at the end');
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      connections++;
      const c = new Client(socket);
      clients.add(c);
      let inTransaction = false;
      try {
        const greeting = await c.reply();
        if (greeting.code !== 220) {
          refusal(greeting, 'greeting');
          c.fail(new ConnectionLost('greeting'));
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        c.write(`EHLO ${o.helo}\r\n`);
        const ehlo = await c.reply();
        if (ehlo.code !== 250) {
          refusal(ehlo, 'EHLO');
          c.fail(new ConnectionLost('ehlo'));
          continue;
        }
        c.opening = false;
        const pipelining = o.pipelining && /^250[- ]PIPELINING\b/im.test(ehlo.text);
        const envelope = /^250[- ]SIZE\b/im.test(ehlo.text) ? envelopes.sized : envelopes.plain;
        let n = 0;
        for (; n < o.perSession && mayStart(); n++) {
          inTransaction = true;
          const keep = await transaction(c, pipelining, envelope);
          inTransaction = false;
          if (!keep) break;
        }
        c.write('QUIT\r\n');
        let quitTimer: NodeJS.Timeout | undefined;
        await Promise.race([c.reply().catch(() => undefined), new Promise((r) => (quitTimer = setTimeout(r, 1000)))]);
        clearTimeout(quitTimer);
        c.socket.end();
      } catch (e) {
        if (inTransaction) broken++;
        const m = (e as Error).message;
        note(e instanceof ReplyTimeout ? 'timeout' : m === 'still opening at the end' ? 'session still opening at the end' : `lost ${m}`);
      } finally {
        clients.delete(c);
        c.socket.destroy();
      }
    }
  }

  onStart?.();
  await Promise.all(Array.from({ length: o.sessions }, (_, i) => session(i)));
  clearInterval(watchdog);
  return {
    accepted,
    refused,
    broken,
    connections,
    errors,
    sampleReplies,
    elapsedMs: (lastReplyAt || performance.now()) - t0,
    latency: summarizeLatencies(latencies.values()),
    options: o,
  };
}

/* --------------------------------------------------------------- CLI */

function cliOptions(argv: string[]): Partial<LoadOptions> & { port: number } {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      sessions: { type: 'string' },
      size: { type: 'string' },
      rcpts: { type: 'string' },
      'duration-ms': { type: 'string' },
      count: { type: 'string' },
      'per-session': { type: 'string' },
      'no-pipelining': { type: 'boolean' },
      domain: { type: 'string' },
      'local-part': { type: 'string' },
      'message-file': { type: 'string' },
      source: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got "${v}"`);
    return n;
  };
  const port = int(values.port, 'port');
  if (port === undefined) throw new Error('--port is required');
  const out: Partial<LoadOptions> & { port: number } = { port };
  const set = <K extends keyof LoadOptions>(k: K, v: LoadOptions[K] | undefined): void => {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  };
  set('host', values.host);
  set('sessions', int(values.sessions, 'sessions'));
  set('size', int(values.size, 'size'));
  set('rcpts', int(values.rcpts, 'rcpts'));
  set('durationMs', int(values['duration-ms'], 'duration-ms'));
  set('maxMessages', int(values.count, 'count'));
  set('perSession', int(values['per-session'], 'per-session'));
  set('replyTimeoutMs', int(values['timeout-ms'], 'timeout-ms'));
  set('domain', values.domain);
  set('localPart', values['local-part']);
  set('messageFile', values['message-file']);
  if (values['no-pipelining']) set('pipelining', false);
  if (values.source) set('sources', values.source.split(',').filter(Boolean));
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const opts = cliOptions(process.argv.slice(2));
    const result = await runLoad(opts, () => process.stdout.write('{"event":"start"}\n'));
    process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`);
  } catch (e) {
    process.stderr.write(`load: ${(e as Error).message}\n`);
    process.exitCode = 2;
  }
}
