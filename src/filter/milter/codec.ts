/*
 * filter/milter/codec.ts — the milter wire protocol (libmilter, version 6),
 * MTA side, as pure functions: no sockets.
 *
 * Every packet is a 4-byte big-endian length (counting the command byte),
 * one command byte, then data; strings are NUL-terminated. The MTA sends
 * commands (SMFIC_*), the milter answers (SMFIR_*). Option negotiation
 * ('O') exchanges the protocol version, the actions the milter may take
 * (SMFIF_*) and the protocol steps it wants skipped or left unanswered
 * (SMFIP_*), and in version 6 the macros it wants at each stage.
 *
 * MilterDecoder cuts a byte stream into packets whatever the chunking
 * (tested at every split point); parseResponse() turns one into a value,
 * and says "malformed" rather than throwing.
 */

export const MILTER_VERSION = 6;
/** The largest body chunk sent (MILTER_CHUNK_SIZE). */
export const CHUNK_SIZE = 65535;
/** The largest packet taken from a milter: more is a protocol error. */
export const MAX_PACKET = 16 * 1024 * 1024;

/** Actions (SMFIF_*). */
export const ACT = {
  ADDHDRS: 0x01,
  CHGBODY: 0x02,
  ADDRCPT: 0x04,
  DELRCPT: 0x08,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
  CHGFROM: 0x40,
  ADDRCPT_PAR: 0x80,
  SETSYMLIST: 0x100,
} as const;
export const ALL_ACTIONS = 0x1ff;

/** Protocol steps (SMFIP_*). */
export const PROTO = {
  NOCONNECT: 0x1,
  NOHELO: 0x2,
  NOMAIL: 0x4,
  NORCPT: 0x8,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  SKIP: 0x400,
  RCPT_REJ: 0x800,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  HDR_LEADSPC: 0x100000,
} as const;
/** What Postern offers: every step may be skipped or left unanswered; SKIP; header values with their leading space. */
export const OFFERED_PROTOCOL = 0x1fffff & ~PROTO.RCPT_REJ;

/** Macro stages of option negotiation (SMFIM_*), and the command each belongs to. */
export const STAGES = ['C', 'H', 'M', 'R', 'T', 'E', 'N'] as const;
export type Stage = (typeof STAGES)[number];

export interface Packet {
  readonly cmd: string;
  readonly data: Buffer;
}

/** One packet on the wire. */
export function packet(cmd: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head.write(cmd, 4, 'latin1');
  return Buffer.concat([head, data]);
}

function strings(...s: readonly string[]): Buffer {
  return Buffer.concat(s.map((x) => Buffer.from(`${x}\0`, 'utf8')));
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function optneg(actions: number, protocol: number): Buffer {
  return packet('O', Buffer.concat([u32(MILTER_VERSION), u32(actions), u32(protocol)]));
}

/** SMFIC_MACRO: the macros of the command `forCmd`, sent just before it. */
export function macros(forCmd: string, values: ReadonlyMap<string, string>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of values) parts.push(k, v);
  return packet('D', Buffer.concat([Buffer.from(forCmd, 'latin1'), strings(...parts)]));
}

/** SMFIC_CONNECT: family '4', '6', 'U' (unix socket) or 'L' (unknown). */
export function connect(hostname: string, family: '4' | '6' | 'U' | 'L', port: number, address: string): Buffer {
  if (family === 'L') return packet('C', Buffer.concat([strings(hostname), Buffer.from('L', 'latin1')]));
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port & 0xffff, 0);
  return packet('C', Buffer.concat([strings(hostname), Buffer.from(family, 'latin1'), p, strings(address)]));
}

export const helo = (name: string): Buffer => packet('H', strings(name));
export const mail = (args: readonly string[]): Buffer => packet('M', strings(...args));
export const rcpt = (args: readonly string[]): Buffer => packet('R', strings(...args));
export const data = (): Buffer => packet('T');
export const header = (name: string, value: string): Buffer => packet('L', strings(name, value));
export const eoh = (): Buffer => packet('N');
export const body = (chunk: Buffer): Buffer => packet('B', chunk);
export const eom = (): Buffer => packet('E');
export const abort = (): Buffer => packet('A');
export const quit = (): Buffer => packet('Q');

/** Cuts a byte stream into packets. */
export class MilterDecoder {
  #buf: Buffer = Buffer.alloc(0);
  /** Set when the stream broke the protocol; nothing more is decoded. */
  error?: string;

  push(chunk: Buffer): Packet[] {
    if (this.error !== undefined) return [];
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Packet[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len < 1 || len > MAX_PACKET) {
        this.error = `packet length ${len}`;
        return out;
      }
      if (this.#buf.length < 4 + len) break;
      out.push({ cmd: String.fromCharCode(this.#buf[4]!), data: this.#buf.subarray(5, 4 + len) });
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

export interface Negotiated {
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
  /** Macros the milter asked for, by stage command. */
  readonly macros: ReadonlyMap<Stage, readonly string[]>;
}

/** A milter's answer, as a value. */
export type Response =
  | { readonly kind: 'optneg'; readonly negotiated: Negotiated }
  | { readonly kind: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'progress' | 'skip' | 'shutdown' | 'conn-fail' }
  | { readonly kind: 'replycode'; readonly text: string }
  | { readonly kind: 'addheader'; readonly name: string; readonly value: string }
  | { readonly kind: 'insheader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly kind: 'chgheader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly kind: 'replbody'; readonly chunk: Buffer }
  | { readonly kind: 'chgfrom'; readonly sender: string; readonly args?: string }
  | { readonly kind: 'addrcpt'; readonly rcpt: string; readonly args?: string }
  | { readonly kind: 'delrcpt'; readonly rcpt: string }
  | { readonly kind: 'quarantine'; readonly reason: string }
  | { readonly kind: 'malformed'; readonly why: string };

const SIMPLE: Readonly<Record<string, Response['kind']>> = {
  c: 'continue',
  a: 'accept',
  r: 'reject',
  t: 'tempfail',
  d: 'discard',
  p: 'progress',
  s: 'skip',
  '4': 'shutdown',
  f: 'conn-fail',
};

/** The NUL-terminated strings of a packet; undefined when the last is not terminated. */
export function cstrings(b: Buffer): string[] | undefined {
  if (b.length === 0) return [];
  if (b[b.length - 1] !== 0) return undefined;
  return b.subarray(0, b.length - 1).toString('utf8').split('\0');
}

export function parseResponse(p: Packet): Response {
  const simple = SIMPLE[p.cmd];
  if (simple !== undefined) return { kind: simple } as Response;
  const bad = (why: string): Response => ({ kind: 'malformed', why: `'${p.cmd}': ${why}` });
  switch (p.cmd) {
    case 'O': {
      if (p.data.length < 12) return bad('short option negotiation');
      const macros = new Map<Stage, string[]>();
      let off = 12;
      while (off + 4 <= p.data.length) {
        const stage = p.data.readUInt32BE(off);
        const end = p.data.indexOf(0, off + 4);
        if (end < 0) return bad('unterminated macro list');
        const s = STAGES[stage];
        if (s !== undefined) macros.set(s, p.data.subarray(off + 4, end).toString('latin1').split(/\s+/).filter((x) => x !== ''));
        off = end + 1;
      }
      return { kind: 'optneg', negotiated: { version: p.data.readUInt32BE(0), actions: p.data.readUInt32BE(4), protocol: p.data.readUInt32BE(8), macros } };
    }
    case 'y': {
      const s = cstrings(p.data);
      if (s === undefined || s.length !== 1) return bad('reply code not one string');
      return { kind: 'replycode', text: s[0]! };
    }
    case 'h': {
      const s = cstrings(p.data);
      if (s === undefined || s.length !== 2 || s[0] === '') return bad('header not two strings');
      return { kind: 'addheader', name: s[0]!, value: s[1]! };
    }
    case 'i':
    case 'm': {
      if (p.data.length < 4) return bad('short header change');
      const s = cstrings(p.data.subarray(4));
      if (s === undefined || s.length !== 2 || s[0] === '') return bad('header change not index and two strings');
      const index = p.data.readUInt32BE(0);
      return p.cmd === 'i' ? { kind: 'insheader', index, name: s[0]!, value: s[1]! } : { kind: 'chgheader', index, name: s[0]!, value: s[1]! };
    }
    case 'b':
      return { kind: 'replbody', chunk: Buffer.from(p.data) };
    case 'e':
    case '+':
    case '2':
    case '-':
    case 'q': {
      const s = cstrings(p.data);
      if (s === undefined || s.length < 1 || s.length > 2 || (s[0] === '' && p.cmd !== 'q')) return bad('not one or two strings');
      const args = s[1] !== undefined && s[1] !== '' ? { args: s[1] } : {};
      if (p.cmd === 'e') return { kind: 'chgfrom', sender: s[0]!, ...args };
      if (p.cmd === '-') return { kind: 'delrcpt', rcpt: s[0]! };
      if (p.cmd === 'q') return { kind: 'quarantine', reason: s[0]! };
      return { kind: 'addrcpt', rcpt: s[0]!, ...args };
    }
    default:
      return bad('unknown response');
  }
}
