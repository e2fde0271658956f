/*
 * mta/tx-steps.ts — the steps of one outbound transaction, one function
 * per state of the machine (transaction.ts has the map and the driver):
 * each does its part on the wire and names the next step, or ends with the
 * result. The pipelined group leaves in one write (pipeline); the last
 * content leaves with the final dot (content) or as BDAT LAST (bdat).
 */
import { BodyError, batches, nextBatch, type Batch } from './batches.js';
import { DATA_TERMINATOR } from './encoder.js';
import type { ServerReply } from './reply-parser.js';
import { saidVerdict } from './session.js';
import type { Done, Next, StepName, Tx } from './tx-state.js';

/** Open the content; with pipelined BDAT, read its first chunk (it goes in the group). */
async function prepare(tx: Tx): Promise<Next> {
  tx.body = batches(tx.p.openBody(), tx.enc, tx.useBdat ? tx.p.tuning.bdatChunk : tx.p.tuning.dataBatch);
  if (tx.useBdat && tx.pipelining) tx.first = await nextBatch(tx.body);
  if (tx.p.rsetFirst === true && !tx.rsetInGroup) return 'rset';
  return tx.pipelining ? 'pipeline' : 'mail';
}

/** A cached session proves it is still there with an RSET of its own. */
async function rset(tx: Tx): Promise<Next> {
  if (!(await tx.session.rset())) return staleSession(tx);
  return tx.pipelining ? 'pipeline' : 'mail';
}

/** RFC 2920: [RSET,] MAIL, every RCPT and DATA (or the first BDAT chunk) in one write. */
async function pipeline(tx: Tx): Promise<Next> {
  const { first } = tx;
  const group: (string | Buffer)[] = [...(tx.rsetInGroup ? ['RSET\r\n'] : []), `${tx.mail}\r\n`, ...tx.rcptLines.map((l) => `${l}\r\n`)];
  if (first !== undefined) group.push(bdatCommand(first), first.data);
  else group.push('DATA\r\n');
  tx.session.trace(`>>> ${tx.mail} … ${tx.rcptLines.length} RCPT, ${first !== undefined ? `BDAT ${first.data.length}${first.last ? ' LAST' : ''}` : 'DATA'} (pipelined)`);
  if (first?.last === true) tx.dotSent = true;
  await tx.session.conn.write(group, tx.timeouts.command, 'MAIL, RCPT and DATA');
  return tx.rsetInGroup ? 'rsetReply' : 'mailReply';
}

/** The RSET of the group: anything but 250 drops the session (the rest of the group is answered too; nothing is delivered). */
async function rsetReply(tx: Tx): Promise<Next> {
  tx.stage = 'RSET';
  const r = await tx.read(tx.timeouts.rset, 'RSET');
  if (r.code !== 250) return staleSession(tx);
  tx.stage = 'MAIL FROM';
  return 'mailReply';
}

/** The reply to the group's MAIL (read before anything is decided: a refused MAIL answers for everyone). */
async function mailReply(tx: Tx): Promise<Next> {
  tx.mailReply = await tx.read(tx.timeouts.command, 'MAIL FROM');
  return 'rcptReplies';
}

/** One reply per RCPT, in order; after a refused MAIL they are read and ignored. */
async function rcptReplies(tx: Tx): Promise<Next> {
  const mailOk = (tx.mailReply?.code ?? 0) < 300;
  for (const rcpt of tx.rcpts) {
    tx.stage = 'RCPT TO';
    const r = await tx.read(tx.timeouts.command, 'RCPT TO');
    if (!mailOk) continue;
    if (r.code >= 200 && r.code < 300) tx.accepted.push(rcpt);
    else tx.outcomes.push({ rcpt, ...saidVerdict(tx.session.target, r, 'RCPT TO'), reply: r });
  }
  return 'dataReply';
}

/** The reply to the group's DATA or first BDAT chunk, and where it leads. */
async function dataReply(tx: Tx): Promise<Next> {
  const { first } = tx;
  tx.stage = first !== undefined ? 'BDAT' : 'DATA';
  const d = await tx.read(first !== undefined && first.last ? tx.timeouts.dataDone : tx.timeouts.dataInit, tx.stage);
  tx.dataReply = d;
  const m = tx.mailReply;
  if (m !== undefined && m.code >= 300) {
    await endEmptyData(tx, d);
    return mailRefused(tx, m);
  }
  if (tx.accepted.length === 0) {
    // RFC 2920 §3.1: if DATA was accepted anyway, send an empty message's end.
    await endEmptyData(tx, d);
    return noRecipients(tx);
  }
  if (first === undefined) return d.code === 354 ? 'content' : dataRefused(tx, d, 'DATA');
  if (first.last) return 'bdatLastReply';
  if (d.code < 200 || d.code >= 300) return dataRefused(tx, d, 'BDAT');
  return 'bdat';
}

/** Without PIPELINING: MAIL and its reply. */
async function mail(tx: Tx): Promise<Next> {
  const m = await tx.session.command(tx.mail, tx.timeouts.command, 'MAIL FROM');
  return m.code >= 300 ? mailRefused(tx, m) : 'rcpt';
}

/** Without PIPELINING: each RCPT and its reply. */
async function rcpt(tx: Tx): Promise<Next> {
  tx.stage = 'RCPT TO';
  for (const [i, rcpt] of tx.rcpts.entries()) {
    const r = await tx.session.command(tx.rcptLines[i] ?? '', tx.timeouts.command, 'RCPT TO');
    if (r.code >= 200 && r.code < 300) tx.accepted.push(rcpt);
    else tx.outcomes.push({ rcpt, ...saidVerdict(tx.session.target, r, 'RCPT TO'), reply: r });
  }
  if (tx.accepted.length === 0) return noRecipients(tx);
  if (tx.useBdat) {
    tx.stage = 'BDAT';
    return 'bdat';
  }
  return 'data';
}

/** Without PIPELINING: DATA and its reply. */
async function data(tx: Tx): Promise<Next> {
  tx.stage = 'DATA';
  const d = await tx.session.command('DATA', tx.timeouts.dataInit, 'DATA');
  return d.code === 354 ? 'content' : dataRefused(tx, d, 'DATA');
}

/** DATA content after 354: batches, the last one written with the terminator. */
async function content(tx: Tx): Promise<Next> {
  tx.stage = 'message content';
  for (;;) {
    const b = await nextBatch(body(tx));
    if (b.last) {
      tx.dotSent = true;
      tx.session.trace(`>>> (${tx.enc.size} bytes of content) .`);
      await tx.session.conn.write([b.data, DATA_TERMINATOR], tx.timeouts.dataBlock, 'message content');
      return 'final';
    }
    await tx.session.conn.write(b.data, tx.timeouts.dataBlock, 'message content');
  }
}

/** BDAT chunks (the first one already sent when pipelined), each waiting for its reply; LAST gets the final reply. */
async function bdat(tx: Tx): Promise<Next> {
  for (;;) {
    tx.stage = 'BDAT';
    const b = await nextBatch(body(tx));
    if (b.last) tx.dotSent = true;
    tx.session.trace(`>>> ${bdatCommand(b).trim()}`);
    await tx.session.conn.write([bdatCommand(b), b.data], tx.timeouts.dataBlock, 'BDAT chunk');
    if (b.last) return 'final';
    const r = await tx.read(tx.timeouts.dataBlock, 'BDAT');
    if (r.code < 200 || r.code >= 300) return dataRefused(tx, r, 'BDAT');
  }
}

/** After the content: the final reply (one per accepted recipient with LMTP). */
async function final(tx: Tx): Promise<Next> {
  tx.stage = 'end of data';
  const wait = tx.lmtp ? tx.accepted.map((r) => [r]) : [tx.accepted];
  for (const list of wait) {
    const r = await tx.read(tx.timeouts.dataDone, 'end of data');
    if (r.code >= 200 && r.code < 300) tx.ok(r, list);
    else tx.all(saidVerdict(tx.session.target, r, 'end of DATA'), list, r);
  }
  tx.session.messages++;
  return tx.done();
}

/** The pipelined BDAT LAST carried the whole message: its reply is the final one (LMTP: the first of one per accepted recipient). */
async function bdatLastReply(tx: Tx): Promise<Next> {
  const d = tx.dataReply;
  if (d === undefined) throw new Error('BDAT LAST without its reply');
  if (tx.lmtp) {
    const replies = [d];
    for (let k = 1; k < tx.accepted.length; k++) replies.push(await tx.session.conn.read(tx.timeouts.dataDone, 'end of data'));
    replies.forEach((r, k) => {
      const rc = tx.accepted.slice(k, k + 1);
      if (r.code >= 200 && r.code < 300) tx.ok(r, rc);
      else tx.all(saidVerdict(tx.session.target, r, 'end of DATA'), rc, r);
    });
    tx.session.messages++;
  } else if (d.code >= 200 && d.code < 300) {
    tx.ok(d, tx.accepted);
    tx.session.messages++;
  } else tx.refused(d, 'BDAT');
  return tx.done();
}

/** One function per state. */
export const STEPS: Readonly<Record<StepName, (tx: Tx) => Promise<Next>>> = { prepare, rset, pipeline, rsetReply, mailReply, rcptReplies, dataReply, mail, rcpt, data, content, bdat, final, bdatLastReply };

/* ------------------------------------------------------------ endings */

/** A cached session that did not answer RSET as it should: try the recipients on a new connection. */
function staleSession(tx: Tx): Done {
  tx.session.destroy();
  return { result: { outcomes: [], undecided: tx.rcpts, failure: { status: 'tempfail', enhanced: '4.4.2', detail: `${tx.who}: RSET failed on a cached connection` }, nextHost: true } };
}

/** MAIL refused: 5xx fails every recipient, 4xx leaves them to the next host. */
async function mailRefused(tx: Tx, m: ServerReply): Promise<Done> {
  const v = saidVerdict(tx.session.target, m, 'MAIL FROM');
  await tx.session.rset();
  if (m.code >= 500) {
    tx.all(v, tx.rcpts, m);
    return tx.done();
  }
  return { result: { outcomes: tx.outcomes, undecided: tx.undecided(), failure: v, nextHost: true } };
}

/** No recipient accepted: nothing to send. */
async function noRecipients(tx: Tx): Promise<Done> {
  await tx.session.rset();
  return tx.done();
}

/** DATA or a BDAT chunk refused: the reply answers for every accepted recipient. */
async function dataRefused(tx: Tx, r: ServerReply, command: string): Promise<Done> {
  tx.refused(r, command);
  await tx.session.rset();
  return tx.done();
}

/** DATA was accepted (354) though nothing is to be sent: end an empty message and read its reply. */
async function endEmptyData(tx: Tx, d: ServerReply): Promise<void> {
  if (d.code !== 354) return;
  await tx.session.conn.write(DATA_TERMINATOR, tx.timeouts.dataBlock, 'end of data');
  await tx.session.conn.read(tx.timeouts.dataDone, 'end of data');
}

/** The BDAT command line for a chunk. */
function bdatCommand(b: Batch): string {
  return `BDAT ${b.data.length}${b.last ? ' LAST' : ''}\r\n`;
}

/** The content, opened by prepare. */
function body(tx: Tx): AsyncGenerator<Batch> {
  if (tx.body === undefined) throw new BodyError('message body not opened');
  return tx.body;
}
