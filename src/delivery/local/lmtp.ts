/*
 * delivery/local/lmtp.ts — hand messages to an LMTP server (RFC 2033),
 * such as Dovecot's or Cyrus', over TCP or a Unix socket.
 *
 *   S: 220 …            C: LHLO <our name>        S: 250-… 250 …
 *   C: MAIL FROM:<s>    S: 250
 *   C: RCPT TO:<r1>     S: 250        C: RCPT TO:<r2>   S: 550 5.1.1 …
 *   C: DATA             S: 354
 *   C: …dot-stuffed…    C: .
 *   S: 250 2.0.0 r1     (one reply per ACCEPTED recipient, in RCPT order)
 *   C: QUIT
 *
 * Every recipient gets its own result: 2xx delivered, 4xx deferred, 5xx
 * bounced; a refused connection or a lost one defers whatever was not
 * answered yet (4.4.1 / 4.4.2). Commands go one at a time (no pipelining:
 * a local server answers fast, and the code stays obvious).
 */
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { DotStuffer, LmtpProtocolError, parseDestination, ReplyParser, replyText, type LmtpReply } from './lmtp-wire.js';
import { describe, type Outcome } from './outcome.js';
import { oneLine } from '../agent.js';

export interface LmtpRequest {
  /** "host:port" or "/path/to/socket". */
  readonly destination: string;
  /** Our name for LHLO. */
  readonly lhlo: string;
  readonly sender: string;
  readonly recipients: readonly { readonly evpid: string; readonly rcptTo: string }[];
  readonly body: () => Readable;
  readonly eightBit: boolean;
  readonly smtputf8: boolean;
  readonly signal?: AbortSignal;
  readonly connectTimeoutMs?: number;
  /** Wait this long for any one reply (the final DATA replies included). Default 5 min. */
  readonly replyTimeoutMs?: number;
}

class Lost extends Error {}

/** One connection: write commands, await replies. */
class LmtpConnection {
  private readonly parser = new ReplyParser();
  private waiter: { resolve: (r: LmtpReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: Error | undefined;

  constructor(
    readonly socket: Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (d: Buffer) => {
      try {
        this.parser.push(d);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      this.deliver();
    });
    socket.on('error', (e) => this.fail(new Lost(describe(e))));
    socket.on('close', () => this.fail(new Lost('connection closed by the server')));
  }

  private deliver(): void {
    if (!this.waiter) return;
    const r = this.parser.take();
    if (!r) return;
    const w = this.waiter;
    this.waiter = undefined;
    clearTimeout(w.timer);
    w.resolve(r);
  }

  fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.socket.destroy();
  }

  reply(): Promise<LmtpReply> {
    const ready = this.parser.take();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Lost(`no reply within ${Math.round(this.replyTimeoutMs / 1000)} s`)), this.replyTimeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  async command(line: string): Promise<LmtpReply> {
    await this.write(Buffer.from(`${line}\r\n`, 'utf8'));
    return this.reply();
  }

  write(b: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.socket.write(b, (e) => (e ? reject(this.failure ?? new Lost(describe(e))) : resolve()));
    });
  }

  /** Respect the socket's buffer: wait when it is full. */
  async writeData(b: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(b)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          this.socket.off('drain', onDrain);
          reject(this.failure ?? new Lost('connection closed by the server'));
        };
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }
}

function outcomeOf(where: string, r: LmtpReply, remoteMta: string | undefined): Outcome {
  const cls = Math.floor(r.code / 100);
  const status = cls === 2 ? 'ok' : cls === 4 ? 'tempfail' : 'permfail';
  const enhanced = r.enhanced ?? (cls === 2 ? '2.0.0' : cls === 4 ? '4.0.0' : '5.0.0');
  const text = oneLine(replyText(r), 400);
  const o: Outcome = { status, enhanced, detail: oneLine(`${where}: ${text}`), diagnostic: `smtp; ${text}` };
  return remoteMta ? { ...o, remoteMta } : o;
}

function connectTo(destination: string, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  const d = parseDestination(destination);
  if ('error' in d) return Promise.reject(new Error(d.error));
  return new Promise((resolve, reject) => {
    const s = d.kind === 'unix' ? connect({ path: d.path }) : connect({ host: d.host, port: d.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connection timed out after ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const onAbort = (): void => {
      s.destroy();
      reject(new Error('delivery interrupted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

// eslint-disable-next-line no-control-regex
const BAD_PATH = /[\x00-\x1f\x7f<>]/;

/** Deliver to an LMTP server: one Outcome per recipient, in order; never throws. */
export async function deliverLmtp(req: LmtpRequest): Promise<Outcome[]> {
  const where = `lmtp ${req.destination}`;
  const results: (Outcome | undefined)[] = req.recipients.map(() => undefined);
  const fillRest = (o: Outcome): Outcome[] => results.map((r) => r ?? o);
  const d = parseDestination(req.destination);
  const remoteMta = 'error' in d || d.kind === 'unix' ? undefined : `dns; ${d.host}`;
  if (BAD_PATH.test(req.sender)) return fillRest({ status: 'permfail', enhanced: '5.1.7', detail: `${where}: invalid sender address` });

  let socket: Socket;
  try {
    socket = await connectTo(req.destination, req.connectTimeoutMs ?? 30_000, req.signal);
  } catch (e) {
    return fillRest({ status: 'tempfail', enhanced: '4.4.1', detail: oneLine(`${where}: cannot connect: ${describe(e)}`) });
  }
  const conn = new LmtpConnection(socket, req.replyTimeoutMs ?? 5 * 60_000);
  const onAbort = (): void => conn.fail(new Lost('delivery interrupted'));
  req.signal?.addEventListener('abort', onAbort, { once: true });
  let body: Readable | undefined;
  try {
    const greeting = await conn.reply();
    if (greeting.code !== 220) return fillRest(outcomeOf(`${where} greeting`, greeting, remoteMta));
    const lhlo = await conn.command(`LHLO ${req.lhlo}`);
    if (lhlo.code !== 250) return fillRest(outcomeOf(`${where} LHLO`, lhlo, remoteMta));
    const ext = new Set(lhlo.lines.slice(1).map((l) => (l.split(' ')[0] ?? '').toUpperCase()));
    let mail = `MAIL FROM:<${req.sender}>`;
    if (req.eightBit && ext.has('8BITMIME')) mail += ' BODY=8BITMIME';
    if (req.smtputf8 && ext.has('SMTPUTF8')) mail += ' SMTPUTF8';
    const mr = await conn.command(mail);
    if (mr.code !== 250) {
      await quit(conn);
      return fillRest(outcomeOf(`${where} MAIL FROM`, mr, remoteMta));
    }
    const accepted: number[] = [];
    for (const [i, r] of req.recipients.entries()) {
      if (BAD_PATH.test(r.rcptTo)) {
        results[i] = { status: 'permfail', enhanced: '5.1.3', detail: `${where}: invalid recipient address` };
        continue;
      }
      const rr = await conn.command(`RCPT TO:<${r.rcptTo}>`);
      if (rr.code === 250 || rr.code === 251) accepted.push(i);
      else results[i] = outcomeOf(`${where} RCPT TO:<${r.rcptTo}>`, rr, remoteMta);
    }
    if (accepted.length === 0) {
      await quit(conn);
      return fillRest({ status: 'tempfail', enhanced: '4.3.0', detail: `${where}: no recipient` });
    }
    const dr = await conn.command('DATA');
    if (dr.code !== 354) {
      await quit(conn);
      for (const i of accepted) results[i] = outcomeOf(`${where} DATA`, dr, remoteMta);
      return fillRest(outcomeOf(`${where} DATA`, dr, remoteMta));
    }
    const stuffer = new DotStuffer();
    body = req.body();
    for await (const chunk of body) await conn.writeData(Buffer.concat(stuffer.push(chunk as Buffer)));
    await conn.writeData(Buffer.concat(stuffer.end()));
    for (const i of accepted) {
      const r = await conn.reply();
      results[i] = outcomeOf(`${where}`, r, remoteMta);
    }
    await quit(conn);
    return fillRest({ status: 'tempfail', enhanced: '4.3.0', detail: `${where}: no reply` });
  } catch (e) {
    const lost = e instanceof Lost || e instanceof LmtpProtocolError;
    const why = e instanceof LmtpProtocolError ? `protocol error: ${e.message}` : lost ? e.message : `reading the message: ${describe(e)}`;
    return fillRest({ status: 'tempfail', enhanced: e instanceof Lost ? '4.4.2' : '4.3.0', detail: oneLine(`${where}: ${why}`) });
  } finally {
    req.signal?.removeEventListener('abort', onAbort);
    body?.destroy();
    socket.destroy();
  }
}

/** Say goodbye, briefly; the results are already known. */
async function quit(conn: LmtpConnection): Promise<void> {
  try {
    await Promise.race([conn.command('QUIT'), new Promise((r) => setTimeout(r, 1000).unref())]);
  } catch {
    /* the server may already be gone */
  }
}
