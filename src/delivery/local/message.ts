/*
 * delivery/local/message.ts — the message as local mailboxes store it.
 *
 * The spool keeps RFC 5322 text with CRLF line ends; Unix mailboxes and
 * MDAs want LF. LfFormatter converts CRLF to LF as the bytes stream past
 * (a lone CR is left alone) and, for mbox files, quotes From_ lines the
 * mboxrd way: a line matching /^>*From / gets one more ">", so a reader
 * that unquotes gets the line back exactly and one that does not still
 * never mistakes it for a message boundary. The output always ends with
 * a line end.
 *
 * scanHeader() reads only the header of the stored message, for the two
 * facts local delivery needs before writing: the Delivered-To: values
 * (loop detection, as OpenSMTPD's mda_check_loop) and whether a spam
 * filter marked it (X-Spam: yes / X-Spam-Flag: yes, for `maildir junk`).
 */
import { Transform, type Readable } from 'node:stream';
import { joinPieces, wholeBody } from '../../spool/whole-body.js';

const LF = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const FROM_ = Buffer.from('From ');
const EMPTY = Buffer.alloc(0);
const QUOTE = Buffer.from('>');
const NL = Buffer.from('\n');
const CR_BUF = Buffer.from('\r');

export class LfFormatter {
  private carry: Buffer = EMPTY;
  private atLineStart = true;
  private last = LF;
  private wrote = false;

  constructor(private readonly quoteFrom: boolean) {}

  /** Bytes to write for this chunk (some may be held back until the next). */
  push(chunk: Buffer): Buffer[] {
    if (!this.quoteFrom) return this.plain(chunk, false);
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = EMPTY;
    return this.run(buf, false);
  }

  /** The held-back bytes and a final line end when the message lacks one. */
  end(): Buffer[] {
    const out = this.quoteFrom ? this.run(this.carry, true) : this.plain(EMPTY, true);
    this.carry = EMPTY;
    if (this.wrote && this.last !== LF) out.push(NL);
    this.last = LF;
    return out;
  }

  private emit(out: Buffer[], b: Buffer): void {
    if (b.length === 0) return;
    out.push(b);
    this.last = b[b.length - 1] as number;
    this.wrote = true;
  }

  /**
   * Without quoting, each CR LF of the chunk loses its CR: the chunk becomes
   * one copy of itself, filled segment by segment between the CRs (an
   * indexOf and a copy per line), instead of two slices per line and a
   * concatenation of them all. A CR at the end of the chunk is held back
   * until the next byte says whether an LF follows.
   */
  private plain(chunk: Buffer, final: boolean): Buffer[] {
    const held = this.carry.length > 0; // a CR
    const n = chunk.length;
    if (n === 0 && !final) return [];
    this.carry = EMPTY;
    let end = n;
    if (!final && chunk[n - 1] === CR) {
      end = n - 1;
      this.carry = CR_BUF;
    }
    const out = Buffer.allocUnsafe(end + (held ? 1 : 0));
    let o = 0;
    if (held && !(n > 0 && chunk[0] === LF)) out[o++] = CR;
    let i = 0;
    for (;;) {
      const p = i < end ? chunk.indexOf(CR, i) : -1;
      const e = p < 0 || p >= end ? end : p;
      o += chunk.copy(out, o, i, e);
      if (e === end) break;
      if (!(p + 1 < n && chunk[p + 1] === LF)) out[o++] = CR; // a lone CR stays
      i = p + 1;
    }
    const out2: Buffer[] = [];
    this.emit(out2, o === out.length ? out : out.subarray(0, o));
    return out2;
  }

  private run(buf: Buffer, final: boolean): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.atLineStart && this.quoteFrom) {
        let j = i;
        while (j < n && buf[j] === GT) j++;
        const avail = n - j;
        const head = buf.subarray(j, j + Math.min(avail, FROM_.length));
        if (!final && avail < FROM_.length && FROM_.subarray(0, avail).equals(head)) {
          this.carry = buf.subarray(i); // cannot tell yet
          return out;
        }
        if (head.equals(FROM_)) this.emit(out, QUOTE);
      }
      this.atLineStart = false;
      const nl = buf.indexOf(LF, i);
      if (nl < 0) {
        let end = n;
        if (!final && buf[n - 1] === CR) {
          end = n - 1;
          this.carry = buf.subarray(end);
        }
        this.emit(out, buf.subarray(i, end));
        return out;
      }
      const cut = nl > i && buf[nl - 1] === CR ? nl - 1 : nl;
      this.emit(out, buf.subarray(i, cut));
      this.emit(out, NL);
      this.atLineStart = true;
      i = nl + 1;
    }
    return out;
  }
}

/** Convert a whole buffer (tests, small messages). */
export function toLf(b: Buffer, quoteFrom: boolean): Buffer {
  const f = new LfFormatter(quoteFrom);
  return Buffer.concat([...f.push(b), ...f.end()]);
}

export interface HeaderFacts {
  /** Delivered-To: values, lowercased and trimmed. */
  readonly deliveredTo: readonly string[];
  /** X-Spam: yes or X-Spam-Flag: yes. */
  readonly spam: boolean;
}

const MAX_HEADER = 1024 * 1024;

/** Parse the header part of a message (up to the first empty line). */
export function headerFacts(header: string): HeaderFacts {
  const deliveredTo: string[] = [];
  let spam = false;
  const unfolded: string[] = [];
  for (const line of header.split(/\r?\n/)) {
    if (line === '') break;
    if ((line.startsWith(' ') || line.startsWith('\t')) && unfolded.length > 0) unfolded[unfolded.length - 1] += line;
    else unfolded.push(line);
  }
  for (const h of unfolded) {
    const colon = h.indexOf(':');
    if (colon <= 0) continue;
    const name = h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    if (name === 'delivered-to') deliveredTo.push(value.toLowerCase());
    else if ((name === 'x-spam' || name === 'x-spam-flag') && value.toLowerCase() === 'yes') spam = true;
  }
  return { deliveredTo, spam };
}

/**
 * The facts of the header at the start of `all` (the first bytes of a
 * message; `complete`: all of it), or undefined when the header goes on
 * past them. A header longer than 1 MiB is read up to there.
 */
export function headerFactsIn(all: Buffer, complete: boolean): HeaderFacts | undefined {
  if (all.length >= 2 && all[0] === 0x0d && all[1] === 0x0a) return headerFacts('');
  const end = all.indexOf('\r\n\r\n');
  if (end >= 0) return headerFacts(all.subarray(0, end + 2).toString('utf8'));
  if (complete || all.length > MAX_HEADER) return headerFacts(all.subarray(0, MAX_HEADER).toString('utf8'));
  return undefined;
}

/** Read the header of a stored message (and no more than 1 MiB of it). */
export async function scanHeader(body: Readable): Promise<HeaderFacts> {
  // A body still in the spool's memory is scanned in place: no async iterator, no stream destroyed half read.
  const pieces = wholeBody(body);
  if (pieces !== undefined) {
    body.destroy();
    return headerFactsIn(joinPieces(pieces), true) as HeaderFacts;
  }
  let all: Buffer = Buffer.alloc(0);
  try {
    for await (const c of body) {
      all = all.length === 0 ? (c as Buffer) : Buffer.concat([all, c as Buffer]);
      const facts = headerFactsIn(all, false);
      if (facts !== undefined) return facts;
    }
  } finally {
    body.destroy();
  }
  return headerFactsIn(all, true) as HeaderFacts;
}

/**
 * The whole message when it has at most `max` bytes, as one Buffer (a body
 * the spool holds in memory is taken as it is, without reading a stream);
 * else its first bytes (at least `max` of them) and `whole: false`. The
 * stream is destroyed either way.
 */
export async function readUpTo(body: Readable, max: number): Promise<{ readonly bytes: Buffer; readonly whole: boolean }> {
  try {
    const held = wholeBody(body);
    if (held !== undefined) {
      const size = held.reduce((n, b) => n + b.length, 0);
      return { bytes: joinPieces(held, size), whole: size <= max };
    }
    const pieces: Buffer[] = [];
    let size = 0;
    for await (const c of body) {
      pieces.push(c as Buffer);
      size += (c as Buffer).length;
      if (size > max) return { bytes: joinPieces(pieces, size), whole: false };
    }
    return { bytes: joinPieces(pieces, size), whole: true };
  } finally {
    body.destroy();
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/g;

/**
 * The header lines local delivery adds in front of the message, as
 * OpenSMTPD's mda does: "Return-Path: <sender>" (not for <>) and
 * "Delivered-To: rcpt", LF-terminated; control characters are dropped so
 * that no envelope value can start a header of its own.
 */
export function deliveryHeaders(sender: string, rcpt: string): string {
  const s = sender.replace(CONTROL, '');
  const r = rcpt.replace(CONTROL, '');
  return `${s === '' ? '' : `Return-Path: <${s}>\n`}Delivered-To: ${r}\n`;
}

/** A stream stage: `prefix`, then the message with LF line ends (and mboxrd quoting when asked). */
export function lfStream(prefix: string, quoteFrom: boolean): Transform {
  const fmt = new LfFormatter(quoteFrom);
  let first = true;
  const head = (): Buffer[] => {
    if (!first) return [];
    first = false;
    return [Buffer.from(prefix)];
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, Buffer.concat([...head(), ...fmt.push(chunk)]));
    },
    flush(cb) {
      cb(null, Buffer.concat([...head(), ...fmt.end()]));
    },
  });
}
