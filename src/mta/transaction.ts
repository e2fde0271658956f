/*
 * mta/transaction.ts — one message over an open session: MAIL, RCPT…,
 * DATA or BDAT, and one outcome per recipient.
 *
 * Before anything is sent, the message is checked against what the server
 * offered (all permanent, for every recipient): a message larger than the
 * server's SIZE (5.3.4); a message that needs SMTPUTF8 to a server without
 * it (5.6.7, RFC 6531 §3.2 — Postern does not downgrade); BINARYMIME
 * without BINARYMIME and CHUNKING (5.6.3). 8BITMIME content to a server
 * that does not offer 8BITMIME is sent as it is, without BODY=, as Postfix
 * does when it cannot convert.
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA leave in one write
 * and the replies are read in order; with CHUNKING (RFC 3030) the first
 * BDAT chunk — the whole message when it is small — goes in that same
 * write, so a small message costs one round trip. Without PIPELINING each
 * command waits for its reply. The last content and the final "." (or the
 * last BDAT chunk and its command) are always written together.
 *
 * Outcomes:
 *  - MAIL 5xx: every recipient fails permanently; MAIL 4xx: the session is
 *    given up and the next host may take the recipients;
 *  - RCPT: each recipient on its own (2xx accepted, 4xx tempfail, 5xx
 *    permfail);
 *  - DATA/BDAT refused, or the reply after the content: applies to every
 *    accepted recipient (LMTP: one reply per accepted recipient);
 *  - the connection lost (or timed out) before the final dot was sent:
 *    nothing was delivered, the next host may take the undecided
 *    recipients; after the final dot was sent: tempfail, and no other host
 *    is tried — the message may have been delivered (at worst a
 *    duplicate, never a loss).
 */
import type { Readable } from 'node:stream';
import type { DeliveryStatus } from '../delivery/agent.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import { ClientError } from './client.js';
import { mailCommand, rcptCommand, safeValue, wantsRelayedDsn } from './commands.js';
import { has } from './ehlo.js';
import { BodyEncoder, DATA_TERMINATOR } from './encoder.js';
import type { RelayTuning } from './options.js';
import { replyText, type ServerReply } from './reply-parser.js';
import type { Verdict } from './route.js';
import { errorVerdict, peerName, saidVerdict, type ClientSession } from './session.js';

export interface RcptOutcome extends Omit<Verdict, 'status'> {
  readonly status: DeliveryStatus;
  readonly rcpt: EnvelopeRecipient;
  /** The server's reply this outcome comes from (RCPT, DATA or the final one). */
  readonly reply?: ServerReply;
  /** Accepted by a server that does not do DSN, and NOTIFY=SUCCESS was asked: send a "relayed" DSN. */
  readonly relayed?: true;
}

export interface TxResult {
  /** Recipients with a final outcome from this session. */
  readonly outcomes: readonly RcptOutcome[];
  /** The session failed before deciding these (another host may take them). */
  readonly undecided: readonly EnvelopeRecipient[];
  readonly failure?: Verdict;
  /** Other hosts may be tried for `undecided`. */
  readonly nextHost: boolean;
}

export interface TxParams {
  readonly envelope: Envelope;
  readonly recipients: readonly EnvelopeRecipient[];
  /** Reverse path to send (after `mail-from`); "" for <>. */
  readonly sender: string;
  openBody(): Readable;
  readonly tuning: RelayTuning;
  /**
   * The session comes from the pool: prove it is still there with RSET
   * first — in the same pipelined group as MAIL, RCPT and DATA when the
   * server pipelines (no extra round trip), else on its own. If it is not,
   * every recipient is left undecided for a new connection.
   */
  readonly rsetFirst?: boolean;
}

interface Batch {
  readonly data: Buffer;
  readonly last: boolean;
}

/** Encoded content in batches of about `size` bytes; the last one is flagged, so it can leave with the terminator. */
async function* batches(body: Readable, enc: BodyEncoder, size: number): AsyncGenerator<Batch> {
  let acc: Buffer[] = [];
  let accLen = 0;
  let ready: Buffer | null = null;
  for await (const chunk of body) {
    const out = enc.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    if (out.length > 0) {
      acc.push(out);
      accLen += out.length;
    }
    if (accLen >= size) {
      const b = Buffer.concat(acc, accLen);
      acc = [];
      accLen = 0;
      if (ready !== null) yield { data: ready, last: false };
      ready = b;
    }
  }
  const tail = enc.end();
  if (tail.length > 0) {
    acc.push(tail);
    accLen += tail.length;
  }
  const rest = Buffer.concat(acc, accLen);
  if (ready === null) yield { data: rest, last: true };
  else if (rest.length === 0) yield { data: ready, last: true };
  else {
    yield { data: ready, last: false };
    yield { data: rest, last: true };
  }
}

/** A body read error: the message must not be sent partly. */
class BodyError extends Error {}

async function nextBatch(it: AsyncGenerator<Batch>): Promise<Batch> {
  try {
    const r = await it.next();
    if (r.done === true) throw new BodyError('message body ended unexpectedly');
    return r.value;
  } catch (e) {
    if (e instanceof BodyError) throw e;
    throw new BodyError(`cannot read the queued message: ${(e as Error).message}`);
  }
}

export async function sendMessage(session: ClientSession, p: TxParams): Promise<TxResult> {
  const env = p.envelope;
  const caps = session.caps;
  const t = session.target;
  const who = peerName(t);
  const lmtp = session.setup.lmtp;
  const timeouts = p.tuning.timeouts;
  const outcomes: RcptOutcome[] = [];
  const all = (v: Verdict, list: readonly EnvelopeRecipient[], reply?: ServerReply): void => {
    for (const rcpt of list) outcomes.push({ ...v, rcpt, ...(reply !== undefined ? { reply } : {}) });
  };

  // What the server must support, checked before a byte is sent.
  if (caps.maxSize > 0 && env.size > caps.maxSize) {
    all({ status: 'permfail', enhanced: '5.3.4', detail: `message size ${env.size} exceeds size limit ${caps.maxSize} of server ${who}` }, p.recipients);
    return { outcomes, undecided: [], nextHost: false };
  }
  if (env.smtputf8 && !has(caps, 'SMTPUTF8')) {
    all({ status: 'permfail', enhanced: '5.6.7', detail: `message requires SMTPUTF8 (internationalized addresses or headers), but server ${who} does not support SMTPUTF8` }, p.recipients);
    return { outcomes, undecided: [], nextHost: false };
  }
  if (env.body === 'BINARYMIME' && !(has(caps, 'BINARYMIME') && has(caps, 'CHUNKING'))) {
    all({ status: 'permfail', enhanced: '5.6.3', detail: `message has binary content (BINARYMIME), but server ${who} does not support BINARYMIME with CHUNKING` }, p.recipients);
    return { outcomes, undecided: [], nextHost: false };
  }
  if (!safeValue(p.sender)) {
    all({ status: 'permfail', enhanced: '5.1.7', detail: 'invalid sender address in the queue (control characters)' }, p.recipients);
    return { outcomes, undecided: [], nextHost: false };
  }
  const rcpts: EnvelopeRecipient[] = [];
  for (const r of p.recipients) {
    if (safeValue(r.address) && (r.orcpt === undefined || safeValue(r.orcpt))) rcpts.push(r);
    else outcomes.push({ rcpt: r, status: 'permfail', enhanced: '5.1.3', detail: 'invalid recipient address in the queue (control characters)' });
  }
  if (rcpts.length === 0) return { outcomes, undecided: [], nextHost: false };

  const useBdat = (p.tuning.chunking && has(caps, 'CHUNKING')) || env.body === 'BINARYMIME';
  const pipelining = p.tuning.pipelining && has(caps, 'PIPELINING');
  const enc = new BodyEncoder({ stuff: !useBdat, raw: env.body === 'BINARYMIME' });
  const mail = mailCommand(env, caps, { sender: p.sender });
  const rcptLines = rcpts.map((r) => rcptCommand(r, caps));
  const accepted: EnvelopeRecipient[] = [];
  let dotSent = false;
  let stage = 'MAIL FROM';
  let body: AsyncGenerator<Batch> | undefined;

  const undecidedNow = (): EnvelopeRecipient[] => rcpts.filter((r) => !outcomes.some((o) => o.rcpt === r));
  const ok = (r: ServerReply, list: readonly EnvelopeRecipient[]): void => {
    for (const rcpt of list) {
      outcomes.push({
        rcpt,
        status: 'ok',
        enhanced: r.enhanced ?? '2.0.0',
        detail: `delivered to ${who}: ${replyText(r)}`,
        reply: r,
        ...(wantsRelayedDsn(rcpt, caps) ? { relayed: true as const } : {}),
      });
    }
  };
  /** After the content: the final reply (one per accepted recipient with LMTP). */
  const finalReplies = async (): Promise<void> => {
    stage = 'end of data';
    const wait = lmtp ? accepted : [accepted];
    for (const item of wait) {
      const r = await session.conn.read(timeouts.dataDone, 'end of data');
      session.trace(`<<< ${replyText(r)}`);
      const list = Array.isArray(item) ? item : [item as EnvelopeRecipient];
      if (r.code >= 200 && r.code < 300) ok(r, list);
      else all(saidVerdict(t, r, 'end of DATA'), list, r);
    }
    session.messages++;
  };

  try {
    const chunkSize = useBdat ? p.tuning.bdatChunk : p.tuning.dataBatch;
    body = batches(p.openBody(), enc, chunkSize);
    let first: Batch | undefined;
    if (useBdat && pipelining) first = await nextBatch(body);
    const bdatCommand = (b: Batch): string => `BDAT ${b.data.length}${b.last ? ' LAST' : ''}\r\n`;

    // Not with a pipelined BDAT: its first chunk may complete the message before the RSET reply is read.
    const rsetInGroup = p.rsetFirst === true && pipelining && !useBdat;
    if (p.rsetFirst === true && !rsetInGroup && !(await session.rset())) return staleSession();
    if (pipelining) {
      const group: (string | Buffer)[] = [...(rsetInGroup ? ['RSET\r\n'] : []), `${mail}\r\n`, ...rcptLines.map((l) => `${l}\r\n`)];
      if (first !== undefined) group.push(bdatCommand(first), first.data);
      else group.push('DATA\r\n');
      session.trace(`>>> ${mail} … ${rcptLines.length} RCPT, ${first !== undefined ? `BDAT ${first.data.length}${first.last ? ' LAST' : ''}` : 'DATA'} (pipelined)`);
      if (first?.last === true) dotSent = true;
      await session.conn.write(group, timeouts.command, 'MAIL, RCPT and DATA');
      if (rsetInGroup) {
        stage = 'RSET';
        const r = await session.conn.read(timeouts.rset, 'RSET');
        session.trace(`<<< ${replyText(r)}`);
        // The rest of the group is answered too, but the session is dropped: nothing is delivered.
        if (r.code !== 250) return staleSession();
        stage = 'MAIL FROM';
      }
      const m = await session.conn.read(timeouts.command, 'MAIL FROM');
      session.trace(`<<< ${replyText(m)}`);
      for (const rcpt of rcpts) {
        stage = 'RCPT TO';
        const r = await session.conn.read(timeouts.command, 'RCPT TO');
        session.trace(`<<< ${replyText(r)}`);
        if (m.code >= 300) continue;
        if (r.code >= 200 && r.code < 300) accepted.push(rcpt);
        else outcomes.push({ rcpt, ...saidVerdict(t, r, 'RCPT TO'), reply: r });
      }
      stage = first !== undefined ? 'BDAT' : 'DATA';
      const d = await session.conn.read(first !== undefined && first.last ? timeouts.dataDone : timeouts.dataInit, stage);
      session.trace(`<<< ${replyText(d)}`);
      if (m.code >= 300) {
        if (d.code === 354) {
          await session.conn.write(DATA_TERMINATOR, timeouts.dataBlock, 'end of data');
          await session.conn.read(timeouts.dataDone, 'end of data');
        }
        return await mailRefused(m);
      }
      if (accepted.length === 0) {
        // RFC 2920 §3.1: if DATA was accepted anyway, send an empty message's end.
        if (d.code === 354) {
          await session.conn.write(DATA_TERMINATOR, timeouts.dataBlock, 'end of data');
          await session.conn.read(timeouts.dataDone, 'end of data');
        }
        await session.rset();
        return { outcomes, undecided: [], nextHost: false };
      }
      if (first !== undefined) {
        if (first.last) {
          // The BDAT LAST reply is the final reply.
          if (lmtp) {
            // LMTP: one reply per accepted recipient; the first is d.
            const queue = [d];
            for (let k = 1; k < accepted.length; k++) queue.push(await session.conn.read(timeouts.dataDone, 'end of data'));
            queue.forEach((r, k) => {
              const rc = accepted[k] as EnvelopeRecipient;
              if (r.code >= 200 && r.code < 300) ok(r, [rc]);
              else all(saidVerdict(t, r, 'end of DATA'), [rc], r);
            });
            session.messages++;
          } else if (d.code >= 200 && d.code < 300) {
            ok(d, accepted);
            session.messages++;
          } else all(saidVerdict(t, d, 'BDAT'), accepted, d);
          return { outcomes, undecided: [], nextHost: false };
        }
        if (d.code < 200 || d.code >= 300) {
          all(saidVerdict(t, d, 'BDAT'), accepted, d);
          await session.rset();
          return { outcomes, undecided: [], nextHost: false };
        }
        await sendBdatRest(body, bdatCommand);
        return { outcomes, undecided: [], nextHost: false };
      }
      return await afterData(d, body);
    }

    // Without PIPELINING: one command, one reply.
    const m = await session.command(mail, timeouts.command, 'MAIL FROM');
    if (m.code >= 300) return await mailRefused(m);
    stage = 'RCPT TO';
    for (const [i, rcpt] of rcpts.entries()) {
      const r = await session.command(rcptLines[i] as string, timeouts.command, 'RCPT TO');
      if (r.code >= 200 && r.code < 300) accepted.push(rcpt);
      else outcomes.push({ rcpt, ...saidVerdict(t, r, 'RCPT TO'), reply: r });
    }
    if (accepted.length === 0) {
      await session.rset();
      return { outcomes, undecided: [], nextHost: false };
    }
    if (useBdat) {
      stage = 'BDAT';
      await sendBdatRest(body, bdatCommand);
      return { outcomes, undecided: [], nextHost: false };
    }
    stage = 'DATA';
    return await afterData(await session.command('DATA', timeouts.dataInit, 'DATA'), body);
  } catch (e) {
    if (e instanceof BodyError) {
      // Never end a message we could not read whole: drop the connection so the server discards it.
      session.destroy();
      all({ status: 'tempfail', enhanced: '4.3.0', detail: e.message }, undecidedNow());
      return { outcomes, undecided: [], nextHost: false };
    }
    if (!(e instanceof ClientError)) throw e;
    session.destroy();
    if (dotSent) {
      const v = errorVerdict(e, t, `after end of data`);
      all({ ...v, detail: `${v.detail}: the message may have been delivered (a possible duplicate; retrying)` }, undecidedNow());
      return { outcomes, undecided: [], nextHost: false, failure: v };
    }
    const v = errorVerdict(e, t, `while sending ${stage}`);
    return { outcomes: outcomes.filter((o) => o.status !== 'ok'), undecided: undecidedNow(), failure: v, nextHost: e.kind !== 'aborted' };
  } finally {
    void body?.return(undefined).catch(() => undefined);
  }

  /** A cached session that did not answer RSET as it should: try the recipients on a new connection. */
  function staleSession(): TxResult {
    session.destroy();
    return { outcomes: [], undecided: rcpts, failure: { status: 'tempfail', enhanced: '4.4.2', detail: `${who}: RSET failed on a cached connection` }, nextHost: true };
  }

  /** The reply to DATA: 354 and the content goes, else it answers for every accepted recipient. */
  async function afterData(d: ServerReply, content: AsyncGenerator<Batch>): Promise<TxResult> {
    if (d.code !== 354) {
      all(saidVerdict(t, d, 'DATA'), accepted, d);
      await session.rset();
    } else await sendData(content);
    return { outcomes, undecided: [], nextHost: false };
  }

  async function mailRefused(m: ServerReply): Promise<TxResult> {
    const v = saidVerdict(t, m, 'MAIL FROM');
    await session.rset();
    if (m.code >= 500) {
      all(v, rcpts, m);
      return { outcomes, undecided: [], nextHost: false };
    }
    return { outcomes, undecided: undecidedNow(), failure: v, nextHost: true };
  }

  /** DATA content after 354: batches, the last one written with the terminator. */
  async function sendData(it: AsyncGenerator<Batch>): Promise<void> {
    stage = 'message content';
    for (;;) {
      const b = await nextBatch(it);
      if (b.last) {
        dotSent = true;
        session.trace(`>>> (${enc.size} bytes of content) .`);
        await session.conn.write([b.data, DATA_TERMINATOR], timeouts.dataBlock, 'message content');
        break;
      }
      await session.conn.write(b.data, timeouts.dataBlock, 'message content');
    }
    await finalReplies();
  }

  /** BDAT chunks (the first one already sent when pipelined), each waiting for its reply; LAST gets the final reply. */
  async function sendBdatRest(it: AsyncGenerator<Batch>, cmd: (b: Batch) => string): Promise<void> {
    for (;;) {
      stage = 'BDAT';
      const b = await nextBatch(it);
      if (b.last) dotSent = true;
      session.trace(`>>> ${cmd(b).trim()}`);
      await session.conn.write([cmd(b), b.data], timeouts.dataBlock, 'BDAT chunk');
      if (b.last) {
        await finalReplies();
        return;
      }
      const r = await session.conn.read(timeouts.dataBlock, 'BDAT');
      session.trace(`<<< ${replyText(r)}`);
      if (r.code < 200 || r.code >= 300) {
        all(saidVerdict(t, r, 'BDAT'), accepted, r);
        await session.rset();
        return;
      }
    }
  }
}
