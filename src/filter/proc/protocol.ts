/*
 * filter/proc/protocol.ts — the smtpd-filters(7) line protocol, as pure
 * functions: what Postern writes to a filter process and how its lines
 * read. Postern speaks protocol version 0.7, as OpenSMTPD 7 does (the
 * version its manual documents; libopensmtpd and the Go filters read it,
 * and go by the version for the order of the fields that changed: tx-mail
 * and tx-rcpt put the result before the address since 0.6, link-auth the
 * result before the user since 0.7).
 *
 *   to the filter     config|KEY|VALUE … config|ready
 *                     report|0.7|TIME|smtp-in|EVENT|SESSION[|PARAMS…]
 *                     filter|0.7|TIME|smtp-in|PHASE|SESSION|TOKEN[|PARAMS…]
 *   from the filter   register|report|smtp-in|EVENT  register|filter|smtp-in|PHASE  register|ready
 *                     filter-result|SESSION|TOKEN|DECISION[|PARAM]
 *                     filter-dataline|SESSION|TOKEN|LINE
 *
 * Data lines are dot-escaped as on the wire, and end with a line ".".
 * A field never carries a newline: values from the client are stripped of
 * CR and LF before they are written (a client cannot inject a line).
 */

export const PROTOCOL_VERSION = '0.7';
export const SMTPD_VERSION = '7.8.0';

export type ProcPhase = 'connect' | 'helo' | 'ehlo' | 'starttls' | 'auth' | 'mail-from' | 'rcpt-to' | 'data' | 'data-line' | 'commit';

export function configLines(sessionTimeoutSec: number): string {
  return `config|smtpd-version|${SMTPD_VERSION}\nconfig|protocol|${PROTOCOL_VERSION}\nconfig|smtp-session-timeout|${sessionTimeoutSec}\nconfig|subsystem|smtp-in\nconfig|ready\n`;
}

function field(s: string): string {
  return s.replace(/[\r\n]/g, ' ');
}

export function timestamp(ms: number): string {
  return (ms / 1000).toFixed(6);
}

export function reportLine(now: number, event: string, session: string, params: readonly string[] = []): string {
  return `report|${PROTOCOL_VERSION}|${timestamp(now)}|smtp-in|${event}|${session}${params.map((p) => `|${field(p)}`).join('')}\n`;
}

export function filterLine(now: number, phase: ProcPhase, session: string, token: string, params: readonly string[] = []): string {
  // A phase without parameters (data, commit) still ends with "|", as OpenSMTPD writes it (libopensmtpd expects it).
  const rest = params.length === 0 ? '|' : params.map((p) => `|${field(p)}`).join('');
  return `filter|${PROTOCOL_VERSION}|${timestamp(now)}|smtp-in|${phase}|${session}|${token}${rest}\n`;
}

/** A line of the filter's output, as a value. */
export type FilterOutput =
  | { readonly kind: 'register'; readonly stream: 'report' | 'filter'; readonly event: string }
  | { readonly kind: 'register-ready' }
  | { readonly kind: 'result'; readonly session: string; readonly token: string; readonly decision: string; readonly param?: string }
  | { readonly kind: 'dataline'; readonly session: string; readonly token: string; readonly line: string }
  | { readonly kind: 'bad'; readonly line: string };

/** Split off the first `n` fields; the rest (which may hold "|") is the last element. */
function fields(line: string, n: number): string[] | undefined {
  const out: string[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const bar = line.indexOf('|', at);
    if (bar < 0) {
      if (i === n - 1) {
        out.push(line.slice(at));
        return out;
      }
      return undefined;
    }
    out.push(line.slice(at, bar));
    at = bar + 1;
  }
  out.push(line.slice(at));
  return out;
}

export function parseOutput(line: string): FilterOutput {
  if (line === 'register|ready') return { kind: 'register-ready' };
  if (line.startsWith('register|')) {
    const f = line.split('|');
    if (f.length === 4 && (f[1] === 'report' || f[1] === 'filter') && f[2] === 'smtp-in') return { kind: 'register', stream: f[1], event: f[3]! };
    return { kind: 'bad', line };
  }
  if (line.startsWith('filter-dataline|')) {
    const f = fields(line, 3);
    if (!f || f.length < 4) return { kind: 'bad', line };
    return { kind: 'dataline', session: f[1]!, token: f[2]!, line: f[3]! };
  }
  if (line.startsWith('filter-result|')) {
    const f = fields(line, 4);
    if (!f || f.length < 4) return { kind: 'bad', line };
    return { kind: 'result', session: f[1]!, token: f[2]!, decision: f[3]!, ...(f[4] !== undefined ? { param: f[4] } : {}) };
  }
  return { kind: 'bad', line };
}

/** The message as data lines: CRLF-split, dot-escaped, then the final ".". */
export function dataLines(message: Buffer): string[] {
  const split = new DataLineSplitter();
  return [...split.push(message), ...split.end()];
}

/**
 * A message cut into data lines as its chunks come: each complete line
 * dot-escaped; at the end the last line without its CR LF, then ".".
 * A line is decoded only when whole (a chunk may end inside a character).
 */
export class DataLineSplitter {
  #carry: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[] {
    const b = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const out: string[] = [];
    let at = 0;
    for (let i = b.indexOf(CRLF, at); i >= 0; i = b.indexOf(CRLF, at)) {
      out.push(escapeLine(b.toString('utf8', at, i)));
      at = i + 2;
    }
    this.#carry = at === 0 ? b : Buffer.from(b.subarray(at));
    return out;
  }

  end(): string[] {
    const rest = this.#carry;
    this.#carry = Buffer.alloc(0);
    return rest.length > 0 ? [escapeLine(rest.toString('utf8')), '.'] : ['.'];
  }
}

const CRLF = Buffer.from('\r\n');

function escapeLine(l: string): string {
  return l.startsWith('.') ? `.${l}` : l;
}

/** Data lines back into a message (the final "." not included; dot-unescaped). */
export function joinDataLines(lines: readonly string[]): Buffer {
  return Buffer.from(lines.map((l) => `${l.startsWith('.') ? l.slice(1) : l}\r\n`).join(''), 'utf8');
}
