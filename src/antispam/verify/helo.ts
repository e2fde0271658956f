/*
 * antispam/verify/helo.ts — the HELO/EHLO checks (`check helo …`), each
 * its own knob:
 *
 *   syntax   a host name (RFC 5321 §4.1.2 Domain: letters, digits, "-",
 *            at least two labels) or an address literal [192.0.2.1] /
 *            [IPv6:…] (RFC 5321 §4.1.3)                      5.5.2
 *   resolve  the name has an A or AAAA record                 5.7.1
 *   fcrdns   the name is the client's forward-confirmed reverse name
 *            (an address literal must be the client's address) 5.7.1
 *
 * A DNS lookup that fails (not NXDOMAIN/no data) passes: `failure` says why.
 */
import { isIP } from 'node:net';
import { canonicalIp } from '../../net/ip.js';
import type { HeloChecks } from '../../config/antispam.js';

export interface AddressDns {
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export type HeloOutcome = { readonly ok: true; readonly failure?: string } | { readonly ok: false; readonly check: keyof HeloChecks; readonly enhanced: string; readonly text: string };

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function heloLiteral(helo: string): string | undefined {
  const m = /^\[(?:IPv6:)?([^\]]+)\]$/i.exec(helo);
  return m && isIP(m[1] ?? '') ? (m[1] ?? '') : undefined;
}

export function heloSyntaxOk(helo: string): boolean {
  if (heloLiteral(helo) !== undefined) return true;
  const name = helo.replace(/\.$/, '');
  if (name.length > 253) return false;
  const labels = name.split('.');
  return labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1) ?? '');
}

const NO_DATA = new Set(['ENOTFOUND', 'ENODATA']);

/** Run the configured checks on HELO; `rdns`: the client's forward-confirmed name. */
export async function checkHelo(c: HeloChecks, helo: string, clientAddress: string, rdns: string | undefined, dns: AddressDns): Promise<HeloOutcome> {
  const literal = heloLiteral(helo);
  const syntaxOk = heloSyntaxOk(helo);
  if (c.syntax !== undefined && !syntaxOk) return { ok: false, check: 'syntax', enhanced: '5.5.2', text: `Helo command rejected: invalid name "${clean(helo)}"` };
  if (c.fcrdns !== undefined) {
    const match = literal !== undefined ? canonicalIp(literal) === canonicalIp(clientAddress) : rdns !== undefined && rdns.toLowerCase() === helo.toLowerCase().replace(/\.$/, '');
    if (!match) return { ok: false, check: 'fcrdns', enhanced: '5.7.1', text: `Helo command rejected: "${clean(helo)}" is not the name of [${clientAddress}]` };
  }
  if (c.resolve !== undefined && literal === undefined && syntaxOk) {
    const name = helo.replace(/\.$/, '');
    const r = await Promise.allSettled([dns.resolve4(name), dns.resolve6(name)]);
    let failure: string | undefined;
    for (const x of r) {
      if (x.status === 'fulfilled' && x.value.length > 0) return { ok: true };
      if (x.status === 'rejected' && !NO_DATA.has((x.reason as NodeJS.ErrnoException).code ?? '')) failure = `HELO ${name}: ${(x.reason as Error).message}`;
    }
    if (failure !== undefined) return { ok: true, failure };
    return { ok: false, check: 'resolve', enhanced: '5.7.1', text: `Helo command rejected: host "${clean(helo)}" not found` };
  }
  return { ok: true };
}

function clean(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, '?').slice(0, 100);
}
