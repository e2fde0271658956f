/*
 * config/values.ts — the value syntaxes of smtpd.conf, checked.
 *
 * Each parser returns the value or an error string meant to follow
 * "FILE:LINE:COL: ". Pure; no file system, no DNS.
 *
 *   size       35M, 512K, 1G, 10MB, 1.5M, 1048576   (K = 1024; bare = bytes)
 *   duration   30s, 10m, 4h, 4d, 1w, 250ms          (bare number = seconds)
 *   port       1–65535 or smtp, smtps, submission, submissions, lmtp
 *   address    IPv4 dotted quad or IPv6 (RFC 4291 text form)
 *   network    address or address/prefix (CIDR)
 *   hostname   RFC 1123 labels, dot separated, optional trailing dot
 *   relay URL  [smtp|smtp+tls|smtp+notls|smtps|lmtp://][label@]host[:port]
 */
import ipaddr from 'ipaddr.js';
import type { RelayHost, RelayScheme } from './model.js';
import { didYouMean } from './suggest.js';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(text: string): Parsed<number> {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)(b?)$/i.exec(text);
  if (!m) return fail(`invalid size "${text}" (expected a number of bytes with an optional K, M or G suffix, e.g. 35M)`);
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase() || (m[3] ? 'b' : '')] ?? 1;
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) return fail(`size "${text}" is too large`);
  return ok(n);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A duration in milliseconds. `allowMs`: whether the "ms" unit is accepted. */
export function parseDuration(text: string, allowMs = false): Parsed<number> {
  const m = /^(\d+)(ms|[smhdw]?)$/i.exec(text);
  const unit = (m?.[2] ?? '').toLowerCase();
  if (!m || (unit === 'ms' && !allowMs)) {
    const units = allowMs ? 'ms, s, m, h or d' : 's, m, h or d';
    return fail(`invalid duration "${text}" (expected a number followed by ${units}, e.g. ${allowMs ? '5ms' : '4d'})`);
  }
  const n = Number(m[1]) * (DURATION_UNITS[unit || 's'] ?? 1000);
  if (!Number.isSafeInteger(n)) return fail(`duration "${text}" is too long`);
  return ok(n);
}

export const SERVICE_PORTS: Readonly<Record<string, number>> = { smtp: 25, smtps: 465, submissions: 465, submission: 587, lmtp: 24 };

/** A port number or service name; `allowZero` for `listen on … port 0` (the kernel picks a free port, logged at start-up). */
export function parsePort(text: string, allowZero = false): Parsed<number> {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if ((n >= 1 || (allowZero && n === 0)) && n <= 65535) return ok(n);
    return fail(`invalid port ${text} (ports are 1–65535)`);
  }
  const s = SERVICE_PORTS[text.toLowerCase()];
  if (s !== undefined) return ok(s);
  return fail(`invalid port "${text}" (expected a number 1–65535 or smtp, smtps, submission)${didYouMean(text, Object.keys(SERVICE_PORTS))}`);
}

/** A non-negative integer (≥ `min`). */
export function parseCount(text: string, what: string, min = 0): Parsed<number> {
  if (!/^\d+$/.test(text)) return fail(`invalid ${what} "${text}" (expected a whole number)`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) return fail(`${what} ${text} is too large`);
  if (n < min) return fail(`${what} must be at least ${min}`);
  return ok(n);
}

export function isIpAddress(text: string): boolean {
  if (text.includes(':')) return ipaddr.IPv6.isValid(text);
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** Looks like an address attempt (digits and dots, or has a colon) — used to word error messages. */
export function looksNumeric(text: string): boolean {
  return /^[\d.]+$/.test(text) || (text.includes(':') && /^[\da-f:.%]+$/i.test(text));
}

/** An address or a CIDR network; the value is the text as written. */
export function parseNetwork(text: string): Parsed<string> {
  const slash = text.indexOf('/');
  if (slash < 0) {
    if (isIpAddress(text)) return ok(text);
    return fail(`invalid address "${text}" (expected an IPv4 or IPv6 address, or a network such as 192.0.2.0/24)`);
  }
  const addr = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!isIpAddress(addr)) return fail(`invalid network "${text}": "${addr}" is not an IPv4 or IPv6 address`);
  const max = addr.includes(':') ? 128 : 32;
  if (!/^\d+$/.test(bits) || Number(bits) > max) return fail(`invalid network "${text}": the prefix length must be 0–${max}`);
  return ok(text);
}

/** Does this network (as accepted by parseNetwork) cover the whole address space? */
export function isWholeInternet(net: string): boolean {
  const [addr, bits] = net.split('/');
  if (bits === undefined || Number(bits) !== 0) return false;
  return addr !== undefined && isIpAddress(addr);
}

export function checkHostname(name: string): string | undefined {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return `invalid hostname "${name}"`;
  for (const label of n.split('.')) {
    if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label)) {
      return `invalid hostname "${name}" (labels are letters, digits and "-", at most 63 characters)`;
    }
  }
  return undefined;
}

/** A host for relaying: a hostname, an IPv4 address or a bracketed/plain IPv6 address. */
export function checkHost(host: string): string | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIpAddress(bare)) return undefined;
  if (looksNumeric(bare)) return `invalid address "${host}"`;
  return checkHostname(bare);
}

const RELAY_SCHEMES: readonly RelayScheme[] = ['smtp', 'smtp+tls', 'smtp+notls', 'smtps', 'lmtp'];

export function parseRelayUrl(text: string): Parsed<RelayHost> {
  let rest = text;
  let scheme: RelayScheme = 'smtp';
  const sep = rest.indexOf('://');
  if (sep >= 0) {
    const s = rest.slice(0, sep).toLowerCase();
    if (!(RELAY_SCHEMES as readonly string[]).includes(s)) {
      return fail(`unknown relay scheme "${s}" in "${text}" (expected ${RELAY_SCHEMES.join(', ')})${didYouMean(s, RELAY_SCHEMES)}`);
    }
    scheme = s as RelayScheme;
    rest = rest.slice(sep + 3);
  }
  let label: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    label = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (label === '') return fail(`empty credentials label before "@" in "${text}"`);
  }
  let host = rest;
  let port: number | undefined;
  const m = /^(\[[^\]]*\]|[^:]*):(\w+)$/.exec(rest);
  if (m) {
    host = m[1] as string;
    const p = parsePort(m[2] as string);
    if (!p.ok) return fail(p.error);
    port = p.value;
  } else if (rest.includes(':') && !rest.startsWith('[')) {
    return fail(`invalid relay host "${text}" (write IPv6 addresses in brackets: smtp://[2001:db8::1]:25)`);
  }
  if (host.endsWith('/')) host = host.slice(0, -1);
  if (host === '') return fail(`missing host in relay URL "${text}"`);
  const bad = checkHost(host);
  if (bad !== undefined) return fail(bad);
  const value: RelayHost = { scheme, host: host.startsWith('[') ? host.slice(1, -1) : host };
  return ok({ ...value, ...(label !== undefined ? { label } : {}), ...(port !== undefined ? { port } : {}) });
}

/** `mail-from` / legacy `as`: "user@domain", "@domain" or "user". */
export function checkMailAddress(text: string): string | undefined {
  if (text === '' || /[\s<>]/.test(text)) return `invalid mail address "${text}"`;
  const at = text.lastIndexOf('@');
  if (at < 0) return undefined;
  const domain = text.slice(at + 1);
  if (domain === '') return `invalid mail address "${text}" (nothing after "@")`;
  const bad = checkHost(domain);
  return bad === undefined ? undefined : `invalid mail address "${text}": ${bad}`;
}

/** A resolver: "IP", "IP:PORT" or "[IPv6]:PORT". */
export function checkResolver(text: string): string | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const addr = m ? (m[1] as string) : text;
  if (!isIpAddress(addr)) return `invalid resolver "${text}" (expected an IP address, optionally with :port; IPv6 with a port as [::1]:53)`;
  if (m) {
    const p = parsePort(m[2] as string);
    if (!p.ok) return p.error;
  }
  return undefined;
}
