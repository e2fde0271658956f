/*
 * smtp/params.ts — ESMTP parameters of MAIL FROM and RCPT TO.
 *
 *   Mail-parameters = esmtp-param *( SP esmtp-param )          (RFC 5321 §4.1.2)
 *   esmtp-param     = esmtp-keyword [ "=" esmtp-value ]
 *   esmtp-keyword   = ( ALPHA / DIGIT ) *( ALPHA / DIGIT / "-" )
 *   esmtp-value     = 1*( %d33-60 / %d62-126 )  ; RFC 6531 adds UTF-8 under SMTPUTF8
 *
 * Keywords are case-insensitive and may each appear once. A parameter is
 * known only while its extension is on:
 *
 *   MAIL  SIZE=n            SIZE        RFC 1870
 *         BODY=7BIT|8BITMIME|BINARYMIME 8BITMIME (BINARYMIME also needs CHUNKING)  RFC 6152, RFC 3030
 *         SMTPUTF8          SMTPUTF8    RFC 6531
 *         RET=FULL|HDRS     DSN         RFC 3461 §4.3
 *         ENVID=xtext       DSN         RFC 3461 §4.4
 *         AUTH=xtext|<>     AUTH        RFC 4954 §5
 *   RCPT  NOTIFY=NEVER|list DSN         RFC 3461 §4.1
 *         ORCPT=type;xtext  DSN         RFC 3461 §4.2, RFC 6533 for "utf-8"
 *
 * Diagnostics: bad syntax, a repeated parameter or a bad value -> 501 5.5.4;
 * an unknown parameter or one whose extension is off -> 555 5.5.4 (RFC 5321
 * §4.1.1.11); SIZE over the maximum -> 552 5.3.4 (RFC 1870 §6.1). Decoded
 * values never contain control characters: they go to the spool and DSNs.
 */
import { reply, type Reply } from './reply.js';
import { decodeUtf8AddrXtext, decodeXtext } from './xtext.js';

export type NotifyKind = 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface MailParams {
  size?: number;
  body?: '7BIT' | '8BITMIME' | 'BINARYMIME';
  smtputf8: boolean;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  /** Decoded xtext; "<>" kept as "<>". */
  auth?: string;
}

export interface RcptParams {
  notify?: NotifyKind[] | 'NEVER';
  /** "addr-type;decoded-address", addr-type lowercased, e.g. "rfc822;a@b". */
  orcpt?: string;
}

/**
 * Which extensions are on for this session. For RCPT, smtputf8 also decides
 * whether raw UTF-8 is allowed in parameter values (ORCPT utf-8-addr-unitext):
 * pass the transaction's SMTPUTF8 flag there.
 */
export interface ExtensionsOn {
  size: boolean;
  /** Largest message accepted, octets; 0 = no fixed maximum (RFC 1870 "SIZE 0"). */
  maxSize: number;
  eightBitMime: boolean;
  smtputf8: boolean;
  dsn: boolean;
  chunking: boolean;
  auth: boolean;
}

export type ParamsResult<T> = { ok: true; value: T } | { ok: false; reply: Reply };

/** Longest ENVID after decoding (RFC 3461 §4.4). */
const MAX_ENVID = 100;
/** Longest ORCPT value (RFC 3461 §4.2: "up to 500 characters"). */
const MAX_ORCPT = 500;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd]/;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

interface Param {
  readonly keyword: string;
  readonly value: string | undefined;
}

type Handler<T> = (p: Param, out: T, ext: ExtensionsOn) => Reply | undefined;

interface Spec<T> {
  readonly on: (ext: ExtensionsOn) => boolean;
  readonly handle: Handler<T>;
}

const MAIL: Readonly<Record<string, Spec<MailParams>>> = {
  SIZE: { on: (e) => e.size, handle: mailSize },
  BODY: { on: (e) => e.eightBitMime, handle: mailBody },
  SMTPUTF8: { on: (e) => e.smtputf8, handle: mailSmtputf8 },
  RET: { on: (e) => e.dsn, handle: mailRet },
  ENVID: { on: (e) => e.dsn, handle: mailEnvid },
  AUTH: { on: (e) => e.auth, handle: mailAuth },
};

const RCPT: Readonly<Record<string, Spec<RcptParams>>> = {
  NOTIFY: { on: (e) => e.dsn, handle: rcptNotify },
  ORCPT: { on: (e) => e.dsn, handle: rcptOrcpt },
};

/** Parse the parameters after MAIL FROM:<path>. */
export function parseMailParams(text: string, ext: ExtensionsOn): ParamsResult<MailParams> {
  return parse(text, ext, MAIL, { smtputf8: false });
}

/** Parse the parameters after RCPT TO:<path>. */
export function parseRcptParams(text: string, ext: ExtensionsOn): ParamsResult<RcptParams> {
  return parse(text, ext, RCPT, {});
}

function bad(text: string): Reply {
  return reply(501, '5.5.4', text);
}

function parse<T>(text: string, ext: ExtensionsOn, table: Readonly<Record<string, Spec<T>>>, out: T): ParamsResult<T> {
  const seen = new Set<string>();
  const words = text.split(' ').filter((w) => w !== '');
  for (const word of words) {
    const p = splitParam(word, ext.smtputf8);
    if (p === null) return { ok: false, reply: bad('Bad parameter syntax') };
    if (seen.has(p.keyword)) return { ok: false, reply: bad(`Duplicate parameter ${p.keyword}`) };
    seen.add(p.keyword);
    const spec = Object.hasOwn(table, p.keyword) ? table[p.keyword] : undefined;
    if (spec === undefined || !spec.on(ext)) {
      return { ok: false, reply: reply(555, '5.5.4', `Unsupported parameter ${p.keyword}`) };
    }
    const err = spec.handle(p, out, ext);
    if (err !== undefined) return { ok: false, reply: err };
  }
  return { ok: true, value: out };
}

/** One esmtp-param; keyword uppercased. null on bad syntax. */
function splitParam(word: string, utf8: boolean): Param | null {
  const eq = word.indexOf('=');
  const keyword = eq < 0 ? word : word.slice(0, eq);
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(keyword)) return null;
  if (eq < 0) return { keyword: keyword.toUpperCase(), value: undefined };
  const value = word.slice(eq + 1);
  if (value === '') return null;
  for (const ch of value) {
    const cp = ch.codePointAt(0) ?? 0;
    const ascii = cp >= 33 && cp <= 126 && cp !== 0x3d;
    const nonAscii = utf8 && cp >= 0xa0 && ch !== '\ufffd' && !(cp >= 0xd800 && cp <= 0xdfff);
    if (!ascii && !nonAscii) return null;
  }
  return { keyword: keyword.toUpperCase(), value };
}

function needValue(p: Param): string | Reply {
  return p.value === undefined ? bad(`${p.keyword} requires a value`) : p.value;
}

function mailSize(p: Param, out: MailParams, ext: ExtensionsOn): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  if (!/^[0-9]{1,20}$/.test(v)) return bad('SIZE requires a number');
  const n = Number(v);
  if (!Number.isSafeInteger(n) || (ext.maxSize > 0 && n > ext.maxSize)) {
    return reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
  }
  out.size = n;
  return undefined;
}

function mailBody(p: Param, out: MailParams, ext: ExtensionsOn): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  const body = v.toUpperCase();
  if (body === '7BIT' || body === '8BITMIME') {
    out.body = body;
  } else if (body === 'BINARYMIME') {
    if (!ext.chunking) return reply(555, '5.5.4', 'BODY=BINARYMIME requires CHUNKING');
    out.body = body;
  } else {
    return bad('BODY must be 7BIT, 8BITMIME or BINARYMIME');
  }
  return undefined;
}

function mailSmtputf8(p: Param, out: MailParams): Reply | undefined {
  if (p.value !== undefined) return bad('SMTPUTF8 takes no value');
  out.smtputf8 = true;
  return undefined;
}

function mailRet(p: Param, out: MailParams): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  const ret = v.toUpperCase();
  if (ret !== 'FULL' && ret !== 'HDRS') return bad('RET must be FULL or HDRS');
  out.ret = ret;
  return undefined;
}

function mailEnvid(p: Param, out: MailParams): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  const envid = decodeXtext(v);
  if (envid === null || !PRINTABLE_ASCII.test(envid)) return bad('ENVID must be xtext of printable ASCII');
  if (envid.length > MAX_ENVID) return bad(`ENVID longer than ${MAX_ENVID} characters`);
  out.envid = envid;
  return undefined;
}

function mailAuth(p: Param, out: MailParams): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  const auth = decodeXtext(v);
  if (auth === null || auth === '' || CONTROL.test(auth)) return bad('AUTH must be xtext');
  out.auth = auth;
  return undefined;
}

function rcptNotify(p: Param, out: RcptParams): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  const items = v.toUpperCase().split(',');
  if (items.length === 1 && items[0] === 'NEVER') {
    out.notify = 'NEVER';
    return undefined;
  }
  const list: NotifyKind[] = [];
  for (const item of items) {
    if (item === 'NEVER') return bad('NOTIFY=NEVER cannot be combined');
    if (item !== 'SUCCESS' && item !== 'FAILURE' && item !== 'DELAY') {
      return bad('NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY');
    }
    if (list.includes(item)) return bad(`NOTIFY lists ${item} twice`);
    list.push(item);
  }
  out.notify = list;
  return undefined;
}

function rcptOrcpt(p: Param, out: RcptParams, ext: ExtensionsOn): Reply | undefined {
  const v = needValue(p);
  if (typeof v !== 'string') return v;
  if (v.length > MAX_ORCPT) return bad(`ORCPT longer than ${MAX_ORCPT} characters`);
  const semi = v.indexOf(';');
  const type = v.slice(0, Math.max(semi, 0)).toLowerCase();
  // addr-type = atom (RFC 3461 §4.2, RFC 5322 atext).
  if (semi < 1 || !/^[a-z0-9!#$%&'*+\-/?^_`{|}~]+$/.test(type)) return bad('ORCPT must be addr-type;xtext');
  const encoded = v.slice(semi + 1);
  let address: string | null;
  if (type === 'utf-8') {
    address = decodeUtf8AddrXtext(encoded, ext.smtputf8);
    if (address !== null && CONTROL.test(address)) address = null;
  } else {
    address = decodeXtext(encoded);
    // RFC 3461 §4.2: the original address is printable US-ASCII.
    if (address !== null && !PRINTABLE_ASCII.test(address)) address = null;
  }
  if (address === null) return bad('ORCPT address is not valid xtext');
  out.orcpt = `${type};${address}`;
  return undefined;
}
