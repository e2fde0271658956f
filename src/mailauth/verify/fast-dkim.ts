/*
 * mailauth/verify/fast-dkim.ts — DKIM verification of the common message
 * without mailauth's streaming parser: the whole message in one Buffer,
 * at most MAX_SIGNATURES DKIM-Signature fields, rsa-sha256 or
 * ed25519-sha256 (RFC 6376, RFC 8463), relaxed or simple canonicalization,
 * no l=, no x=, no ARC fields, and each key record a plain one (v=DKIM1,
 * k=, p=). mailauth's verifier costs ~0.3 ms of JavaScript per 1 KB
 * message beside the 30 µs of the RSA check itself (bench/verify-path.ts;
 * docs/architecture.md "Mail authentication" has the figures).
 *
 * Only a pass is answered here: when every signature verifies, the
 * results are built as mailauth builds a pass (the same status, header.*
 * and Authentication-Results text, through mailauth's own formatter and
 * alignment); anything else — a signature that does not verify, an unusual
 * tag, a DNS failure, a key record with flags — answers undefined, and the
 * caller runs mailauth's verifier on the same message (engine.ts), so
 * every failure, neutral, policy and temperror result is mailauth's. A
 * pass needs the signature to verify over our canonicalization; that is
 * the RFC's, no laxer, so a message changed after signing cannot pass
 * here when it would not pass in mailauth. test/unit/mailauth-fast-dkim
 * checks both verifiers agree (and dkimpy, in e2e) on many messages.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { DKIMResult } from 'mailauth';
import { canonBody, canonField, FIELD_NAME, messageParts, type Field } from '../dkim-canon.js';
import type { MailAuthResolver } from '../lib.js';
import { verifyAsync } from '../async-crypto.js';

const require = createRequire(import.meta.url);
const tools = require('mailauth/lib/tools.js') as {
  formatAuthHeaderRow: (method: string, status: unknown, opts?: { strict?: boolean }) => string;
  getAlignment: (fromDomain: string, domains: string[]) => { domain?: string } | false | undefined;
};
/** mailauth's own address parser (nodemailer's, as mailauth resolves it), so that the authors are the ones it finds. */
const addressparser = require(require.resolve('nodemailer/lib/addressparser', { paths: [dirname(require.resolve('mailauth'))] })) as (s: string) => { address?: string; group?: { address?: string }[] }[];

export const MAX_SIGNATURES = 3;
const MAX_KEYS = 1000;
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const DOMAIN = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/i;
const SELECTOR = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** What the DKIM step gives the rest of the checks (engine.ts): mailauth's DkimVerifier fields. */
export interface FastDkim {
  readonly results: DKIMResult[];
  readonly headerFrom: string[];
  readonly fromFields: number;
}

interface Signature {
  readonly raw: string;
  readonly tags: ReadonlyMap<string, string>;
  readonly d: string;
  readonly s: string;
  readonly a: 'rsa-sha256' | 'ed25519-sha256';
  readonly headerCanon: 'relaxed' | 'simple';
  readonly bodyCanon: 'relaxed' | 'simple';
  readonly h: readonly string[];
}

/** Parsed public keys by their p= text: the KeyObject depends on nothing else. */
const keys = new Map<string, { readonly key: KeyObject; readonly type: string; readonly bits: number }>();

/** The DKIM results of `msg` when every signature on it verifies here; undefined: ask mailauth. */
export async function fastDkim(msg: Buffer, resolver: MailAuthResolver, minKeyBits: number): Promise<FastDkim | undefined> {
  const parts = messageParts(msg);
  if (parts === undefined) return undefined;
  const { fields, body } = parts;
  const sigs: Signature[] = [];
  for (const f of fields) {
    if (f.name.startsWith('arc-')) return undefined;
    if (f.name !== 'dkim-signature') continue;
    const s = parseSignature(f.raw);
    if (s === undefined || sigs.length >= MAX_SIGNATURES) return undefined;
    sigs.push(s);
  }
  const from = authors(fields);
  if (sigs.length === 0) return { results: [{ status: { result: 'none', comment: 'message not signed' }, info: tools.formatAuthHeaderRow('dkim', { result: 'none', comment: 'message not signed' }) } as unknown as DKIMResult], ...from };
  const bodyHashes = new Map<string, string>();
  const results: DKIMResult[] = [];
  for (const s of sigs) {
    let bh = bodyHashes.get(s.bodyCanon);
    if (bh === undefined) {
      bh = crypto.createHash('sha256').update(canonBody(body, s.bodyCanon), 'latin1').digest('base64');
      bodyHashes.set(s.bodyCanon, bh);
    }
    if (bh !== s.tags.get('bh')) return undefined;
    const key = await publicKey(resolver, s, minKeyBits);
    if (key === undefined) return undefined;
    const signed = Buffer.from(signedHeader(fields, s), 'latin1');
    const sig = Buffer.from(s.tags.get('b') ?? '', 'base64');
    // On libuv's thread pool (async-crypto.ts); a failed job rejects, and mailauth's verifier decides.
    const ok = await verifyAsync(s.a, signed, key, sig);
    if (!ok) return undefined;
    results.push(passResult(s, from.headerFrom));
  }
  return { results, ...from };
}

/** A DKIM-Signature of the kind handled here, or undefined. */
function parseSignature(raw: string): Signature | undefined {
  const tags = new Map<string, string>();
  const list = raw.slice(raw.indexOf(':') + 1).split(';');
  if (/^[ \t\r\n]*$/.test(list[list.length - 1] ?? '')) list.pop();
  for (const part of list) {
    const m = /^[ \t\r\n]*([a-z][a-z0-9_]*)[ \t\r\n]*=([^]*)$/.exec(part);
    if (!m || tags.has(m[1] as string)) return undefined;
    const name = m[1] as string;
    const value = (m[2] as string).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (name === 'b' || name === 'bh') tags.set(name, value.replace(/[ \t\r\n]+/g, ''));
    else if (name === 'h') tags.set(name, value);
    else if (/[ \t\r\n]/.test(value)) return undefined;
    else tags.set(name, value);
  }
  for (const t of tags.keys()) if (!['v', 'a', 'b', 'bh', 'c', 'd', 'h', 's', 't', 'i', 'q'].includes(t)) return undefined;
  const a = tags.get('a');
  const d = tags.get('d') ?? '';
  const s = tags.get('s') ?? '';
  const [hc = 'simple', bc = 'simple', extra] = (tags.get('c') ?? 'simple/simple').split('/');
  const t = tags.get('t');
  if (tags.get('v') !== '1' || (a !== 'rsa-sha256' && a !== 'ed25519-sha256') || extra !== undefined) return undefined;
  if ((hc !== 'simple' && hc !== 'relaxed') || (bc !== 'simple' && bc !== 'relaxed')) return undefined;
  if (!DOMAIN.test(d) || !SELECTOR.test(s) || !BASE64.test(tags.get('b') ?? '') || !BASE64.test(tags.get('bh') ?? '')) return undefined;
  if (t !== undefined && !/^[0-9]{1,12}$/.test(t)) return undefined;
  const q = tags.get('q');
  if (q !== undefined && q !== 'dns/txt') return undefined;
  const i = tags.get('i');
  if (i !== undefined) {
    const at = i.lastIndexOf('@');
    const id = i.slice(at + 1).toLowerCase();
    if (at < 0 || !/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]*$/.test(i.slice(0, at)) || (id !== d.toLowerCase() && !id.endsWith(`.${d.toLowerCase()}`))) return undefined;
  }
  const h = (tags.get('h') ?? '').split(':').map((x) => x.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '').toLowerCase());
  // No '=' in a listed name, so that the b= tag is the only "b=" after a colon or semicolon (signedHeader).
  if (h.some((x) => !FIELD_NAME.test(x) || x.includes('=')) || !h.includes('from')) return undefined;
  return { raw, tags, d, s, a, headerCanon: hc, bodyCanon: bc, h };
}

/** The data the signature covers (RFC 6376 §5.4): the fields of h= from the bottom up, then the signature with b= empty. */
function signedHeader(fields: readonly Field[], s: Signature): string {
  const used = new Set<number>();
  let out = '';
  for (const name of s.h) {
    for (let i = fields.length - 1; i >= 0; i--) {
      const f = fields[i] as Field;
      if (f.name !== name || used.has(i)) continue;
      used.add(i);
      out += `${canonField(f.raw, s.headerCanon)}\r\n`;
      break;
    }
  }
  const colon = s.raw.indexOf(':');
  const emptied = s.raw.slice(0, colon) + s.raw.slice(colon).replace(/([:;][ \t\r\n]*b[ \t\r\n]*=)[^;]*/, '$1');
  return out + canonField(emptied, s.headerCanon);
}

/** The signature's key, when its record is a plain one of the right type and size. */
async function publicKey(resolver: MailAuthResolver, s: Signature, minKeyBits: number): Promise<KeyObject | undefined> {
  let answers: unknown[];
  try {
    answers = await resolver(`${s.s}._domainkey.${s.d}`, 'TXT');
  } catch {
    return undefined;
  }
  const record = answers[0];
  if (answers.length !== 1 || !Array.isArray(record)) return undefined;
  // The TTL cache gives the same record object while it keeps the answer: parsed once.
  let parsed = parsedRecords.get(record);
  if (parsed === undefined) {
    parsed = parseKeyRecord(record.join('').replace(/\s+/g, '')) ?? null;
    parsedRecords.set(record, parsed);
  }
  if (parsed === null) return undefined;
  const want = s.a === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (parsed.type !== want || (parsed.declared === undefined && want !== 'rsa') || (want === 'rsa' && parsed.bits < Math.max(minKeyBits, 1024))) return undefined;
  return parsed.key;
}

interface ParsedKey {
  readonly key: KeyObject;
  readonly type: string;
  /** k= as written (undefined: none, which means rsa). */
  readonly declared: string | undefined;
  readonly bits: number;
}

const parsedRecords = new WeakMap<object, ParsedKey | null>();

/** A plain key record (v=DKIM1 first if present, k=rsa|ed25519, p=, n=), or undefined for anything else. */
function parseKeyRecord(rr: string): ParsedKey | undefined {
  const tags = new Map<string, string>();
  const list = rr.split(';');
  if (list[list.length - 1] === '') list.pop();
  for (const part of list) {
    const m = /^([a-z])=(.*)$/.exec(part);
    if (!m || tags.has(m[1] as string) || !['v', 'k', 'p', 'n'].includes(m[1] as string)) return undefined;
    tags.set(m[1] as string, m[2] as string);
  }
  const v = tags.get('v');
  const k = tags.get('k');
  const p = tags.get('p') ?? '';
  if ((v !== undefined && (v !== 'DKIM1' || list[0]?.startsWith('v=') !== true)) || !BASE64.test(p) || (k !== undefined && k !== 'rsa' && k !== 'ed25519')) return undefined;
  let entry = keys.get(p);
  if (entry === undefined) {
    const raw = Buffer.from(p, 'base64');
    try {
      const key = k === 'ed25519' ? (raw.length === 32 ? crypto.createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' }) : undefined) : crypto.createPublicKey({ key: raw, format: 'der', type: 'spki' });
      if (key === undefined) return undefined;
      entry = { key, type: key.asymmetricKeyType ?? '', bits: key.asymmetricKeyDetails?.modulusLength ?? 0 };
    } catch {
      return undefined;
    }
    if (keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value as string);
    keys.set(p, entry);
  }
  if (k !== undefined && entry.type !== k) return undefined;
  return { ...entry, declared: k };
}

/** DMARC alignment of a signing domain with the author domain (mailauth's, through the public suffix list), which depends on nothing else. */
function aligned(fromDomain: string, d: string): string | false {
  const key = `${fromDomain} ${d}`;
  let a = alignments.get(key);
  if (a === undefined) {
    const g = tools.getAlignment(fromDomain, [d]);
    a = (g && g.domain) || false;
    if (alignments.size >= MAX_KEYS) alignments.delete(alignments.keys().next().value as string);
    alignments.set(key, a);
  }
  return a;
}

const alignments = new Map<string, string | false>();

/** The From: authors as mailauth's DKIM verifier collects them (for DMARC and alignment). */
function authors(fields: readonly Field[]): { headerFrom: string[]; fromFields: number } {
  const headerFrom: string[] = [];
  let fromFields = 0;
  for (const f of fields) {
    if (f.name !== 'from') continue;
    fromFields++;
    headerFrom.push(...addresses(f.raw));
  }
  return { headerFrom, fromFields };
}

/** The addresses of one From: field, as written (latin1), kept by its text: the same sender's field parses once. */
function addresses(raw: string): readonly string[] {
  let a = fromAddresses.get(raw);
  if (a === undefined) {
    const value = Buffer.from(raw, 'latin1').toString('utf8');
    const list: string[] = [];
    for (const addr of addressparser(value.slice(value.indexOf(':') + 1).trim())) {
      for (const mailbox of addr.group ?? [addr]) if (mailbox.address) list.push(mailbox.address);
    }
    a = Object.freeze(list);
    if (fromAddresses.size >= MAX_KEYS) fromAddresses.delete(fromAddresses.keys().next().value as string);
    fromAddresses.set(raw, a);
  }
  return a;
}

const fromAddresses = new Map<string, readonly string[]>();

/** A pass, shaped as mailauth's verifier shapes one (the fields Postern reads, and its Authentication-Results text). */
function passResult(s: Signature, headerFrom: readonly string[]): DKIMResult {
  const b = s.tags.get('b') ?? '';
  const status: Record<string, unknown> = { result: 'pass', header: { i: `@${s.d}`, s: s.s, a: s.a, b: b.slice(0, 8) } };
  if (headerFrom.length > 0) status.aligned = aligned((headerFrom[0] as string).split('@').pop() as string, s.d);
  const id = crypto.createHash('sha256').update(Buffer.from(b, 'base64')).digest('hex');
  return { id, signingDomain: s.d, selector: s.s, signature: b, algo: s.a, format: s.tags.get('c'), status, info: tools.formatAuthHeaderRow('dkim', status, { strict: false }) } as unknown as DKIMResult;
}
