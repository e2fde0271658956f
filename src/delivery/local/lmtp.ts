/*
 * delivery/local/lmtp.ts — hand messages to an LMTP server (RFC 2033),
 * such as Dovecot's or Cyrus', over TCP or a Unix socket.
 *
 *   S: 220 …            C: LHLO <our name>        S: 250-… 250 PIPELINING …
 *   C: MAIL FROM:<s>    C: RCPT TO:<r1>   C: RCPT TO:<r2>   C: DATA   (one write)
 *   S: 250              S: 250            S: 550 5.1.1 …    S: 354
 *   C: …dot-stuffed…    C: .
 *   S: 250 2.0.0 r1     (one reply per ACCEPTED recipient, in RCPT order)
 *   C: MAIL FROM:<s'> … (the next message on the same connection), or QUIT
 *
 * Every recipient gets its own result: 2xx delivered, 4xx deferred, 5xx
 * bounced; a refused connection or a lost one defers whatever was not
 * answered yet (4.4.1 / 4.4.2). The recipients of one message go in one
 * transaction. When the server offers PIPELINING (RFC 2920; Dovecot and
 * Cyrus do), MAIL, the RCPTs and DATA leave in one write and their replies
 * are read in order; else one command at a time. When it offers CHUNKING
 * too (RFC 3030; Dovecot does), a message of at most BDAT_MAX whose lines
 * all end in CRLF goes as `BDAT n LAST` in that same write, its bytes
 * unchanged: one write and one round trip per message. A session whose
 * transaction ended cleanly is kept for the next message
 * (lmtp-connection.ts, `LmtpSessions`); one taken from there that turns
 * out closed before MAIL was answered — nothing can have been delivered,
 * the message is only sent after the 354 — is replaced by a new connection
 * once.
 */
import type { Readable } from 'node:stream';
import { DotStuffer, LmtpProtocolError, parseDestination, replyText, type LmtpReply } from './lmtp-wire.js';
import { Lost, openSession, type LmtpSession, type LmtpSessions } from './lmtp-connection.js';
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

function outcomeOf(where: string, r: LmtpReply, remoteMta: string | undefined): Outcome {
  const cls = Math.floor(r.code / 100);
  const status = cls === 2 ? 'ok' : cls === 4 ? 'tempfail' : 'permfail';
  const enhanced = r.enhanced ?? (cls === 2 ? '2.0.0' : cls === 4 ? '4.0.0' : '5.0.0');
  const text = oneLine(replyText(r), 400);
  const o: Outcome = { status, enhanced, detail: oneLine(`${where}: ${text}`), diagnostic: `smtp; ${text}` };
  return remoteMta ? { ...o, remoteMta } : o;
}

const WRITE_BYTES = 64 * 1024;

// eslint-disable-next-line no-control-regex
const BAD_PATH = /[\x00-\x1f\x7f<>]/;

/** A session lost (4.4.2), a server that broke the protocol or a message that could not be read (4.3.0). */
function lostOutcome(where: string, e: unknown): Outcome {
  const why = e instanceof LmtpProtocolError ? `protocol error: ${e.message}` : e instanceof Lost ? e.message : `reading the message: ${describe(e)}`;
  return { status: 'tempfail', enhanced: e instanceof Lost ? '4.4.2' : '4.3.0', detail: oneLine(`${where}: ${why}`) };
}

/** Messages up to this size go with BDAT, read whole first; larger ones stream through DATA. */
const BDAT_MAX = 256 * 1024;

/**
 * The message whole, as BDAT sends it (its bytes as they are, ending with CRLF as DATA's would), when it is at
 * most BDAT_MAX and every line ends with CRLF; else undefined, and DATA sends it (normalising line ends).
 */
async function readWhole(open: () => Readable): Promise<Buffer | undefined> {
  const body = open();
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body) {
      n += (chunk as Buffer).length;
      if (n > BDAT_MAX) return undefined;
      parts.push(chunk as Buffer);
    }
  } finally {
    body.destroy();
  }
  const b = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  let crs = 0;
  let lfs = 0;
  for (let i = b.indexOf(0x0d); i >= 0; i = b.indexOf(0x0d, i + 1)) crs++;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) {
    if (b[i - 1] !== 0x0d) return undefined;
    lfs++;
  }
  if (crs !== lfs) return undefined; // a bare CR
  return b.length === 0 || (b[b.length - 2] === 0x0d && b[b.length - 1] === 0x0a) ? b : Buffer.concat([b, Buffer.from('\r\n')]);
}

/** One transaction's state: its results, and whether the server answered MAIL (after that, a lost session is not retried). */
interface Tx {
  readonly req: LmtpRequest;
  readonly where: string;
  readonly remoteMta: string | undefined;
  readonly results: (Outcome | undefined)[];
  mailAnswered: boolean;
}

/** Deliver to an LMTP server: one Outcome per recipient, in order; never throws. `sessions`: keep and reuse connections. */
export async function deliverLmtp(req: LmtpRequest, sessions?: LmtpSessions): Promise<Outcome[]> {
  const where = `lmtp ${req.destination}`;
  const d = parseDestination(req.destination);
  const tx: Tx = { req, where, remoteMta: 'error' in d || d.kind === 'unix' ? undefined : `dns; ${d.host}`, results: req.recipients.map(() => undefined), mailAnswered: false };
  const fillRest = (o: Outcome): Outcome[] => tx.results.map((r) => r ?? o);
  if (BAD_PATH.test(req.sender)) return fillRest({ status: 'permfail', enhanced: '5.1.7', detail: `${where}: invalid sender address` });
  req.recipients.forEach((r, i) => {
    if (BAD_PATH.test(r.rcptTo)) tx.results[i] = { status: 'permfail', enhanced: '5.1.3', detail: `${where}: invalid recipient address` };
  });
  if (tx.results.every((r) => r !== undefined)) return fillRest({ status: 'tempfail', enhanced: '4.3.0', detail: `${where}: no recipient` });

  const key = `${req.destination}\n${req.lhlo}`;
  for (let fresh = sessions === undefined; ; fresh = true) {
    let session: LmtpSession | undefined = fresh ? undefined : sessions?.take(key);
    const reused = session !== undefined;
    try {
      if (!session) {
        const s = await openSession(key, req.destination, req.lhlo, { connectTimeoutMs: req.connectTimeoutMs ?? 30_000, replyTimeoutMs: req.replyTimeoutMs ?? 5 * 60_000, ...(req.signal ? { signal: req.signal } : {}) });
        if ('refused' in s) return fillRest(outcomeOf(`${where} ${s.at}`, s.refused, tx.remoteMta));
        session = s;
      }
    } catch (e) {
      return fillRest(e instanceof Lost || e instanceof LmtpProtocolError ? lostOutcome(where, e) : { status: 'tempfail', enhanced: '4.4.1', detail: oneLine(`${where}: cannot connect: ${describe(e)}`) });
    }
    const conn = session.conn;
    const onAbort = (): void => conn.fail(new Lost('delivery interrupted'));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const clean = await transaction(session, tx);
      if (clean && sessions) sessions.put(session);
      else await conn.quit();
      return fillRest({ status: 'tempfail', enhanced: '4.3.0', detail: `${where}: no reply` });
    } catch (e) {
      conn.socket.destroy();
      if (reused && e instanceof Lost && !tx.mailAnswered && !req.signal?.aborted) continue; // a stale cached session: nothing was sent that counts
      return fillRest(lostOutcome(where, e));
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** One mail transaction on an open session; true when it ended cleanly (every reply read: the session may carry the next). */
async function transaction(s: LmtpSession, tx: Tx): Promise<boolean> {
  const { req, where, remoteMta, results } = tx;
  const conn = s.conn;
  let mail = `MAIL FROM:<${req.sender}>`;
  if (req.eightBit && s.ext.has('8BITMIME')) mail += ' BODY=8BITMIME';
  if (req.smtputf8 && s.ext.has('SMTPUTF8')) mail += ' SMTPUTF8';
  const sent = req.recipients.flatMap((_, i) => (results[i] === undefined ? [i] : []));
  const rcptLine = (i: number): string => `RCPT TO:<${req.recipients[i]?.rcptTo}>`;
  const pipelining = s.ext.has('PIPELINING');
  const fail = (at: string, r: LmtpReply): boolean => {
    const o = outcomeOf(`${where} ${at}`, r, remoteMta);
    for (let i = 0; i < results.length; i++) results[i] ??= o;
    return false;
  };

  // CHUNKING (RFC 3030) with PIPELINING: a small message whose line ends are all CRLF leaves with its commands, in one write.
  const whole = pipelining && s.ext.has('CHUNKING') ? await readWhole(req.body) : undefined;
  if (whole) {
    const commands = Buffer.from(`${[mail, ...sent.map(rcptLine), `BDAT ${whole.length} LAST`].join('\r\n')}\r\n`, 'utf8');
    await conn.write(Buffer.concat([commands, whole]));
  } else if (pipelining) await conn.write(Buffer.from(`${[mail, ...sent.map(rcptLine), 'DATA'].join('\r\n')}\r\n`, 'utf8'));
  const mr = pipelining ? await conn.reply() : await conn.command(mail);
  tx.mailAnswered = true;
  if (mr.code !== 250) return fail('MAIL FROM', mr);
  const accepted: number[] = [];
  for (const i of sent) {
    const rr = pipelining ? await conn.reply() : await conn.command(rcptLine(i));
    if (rr.code === 250 || rr.code === 251) accepted.push(i);
    else results[i] = outcomeOf(`${where} ${rcptLine(i)}`, rr, remoteMta);
  }
  if (accepted.length === 0 && !pipelining) return false; // DATA not sent; QUIT
  if (whole) {
    // BDAT LAST is answered once per accepted recipient (RFC 2033 §4.2), or once when none was accepted.
    if (accepted.length > 0) for (const i of accepted) results[i] = outcomeOf(where, await conn.reply(), remoteMta);
    else await conn.reply();
    return accepted.length > 0;
  }
  const dr = pipelining ? await conn.reply() : await conn.command('DATA');
  if (accepted.length === 0) {
    if (dr.code === 354) conn.fail(new Lost('the server took DATA with no recipient')); // a session out of step is not kept
    return false;
  }
  if (dr.code !== 354) return fail('DATA', dr);
  // The content in writes of up to WRITE_BYTES (a small message and its final dot: one write).
  const stuffer = new DotStuffer();
  const body = req.body();
  let out: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of body) {
      for (const b of stuffer.push(chunk as Buffer)) {
        out.push(b);
        bytes += b.length;
      }
      if (bytes >= WRITE_BYTES) {
        await conn.writeData(Buffer.concat(out));
        out = [];
        bytes = 0;
      }
    }
    await conn.writeData(Buffer.concat([...out, ...stuffer.end()]));
  } finally {
    body.destroy();
  }
  for (const i of accepted) results[i] = outcomeOf(where, await conn.reply(), remoteMta);
  return true;
}
