/*
 * Shared by the obtuse-*.test.ts files: session facts, mailboxes, a fake
 * DNS, and loading a rules text.
 */
import { fileURLToPath } from 'node:url';
import type { Mailbox } from '../../src/mail/address.js';
import type { SessionFacts, TxFacts } from '../../src/policy/policy.js';
import { formatObtuseDiagnostic, parseObtuseRules, type ObtuseRules } from '../../src/config/obtuse/parse.js';
import type { ObtuseDns } from '../../src/policy/obtuse/match.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function facts(clientAddress: string, rdns?: string): SessionFacts {
  return {
    id: 's1',
    clientAddress,
    clientPort: 40000,
    fromSocket: false,
    ...(rdns !== undefined ? { rdns } : {}),
    esmtp: true,
    tls: false,
    listener: 'test',
  };
}

/** "user@example.com" → Mailbox; "postmaster" → <postmaster>. */
export function mbox(addr: string): Mailbox {
  const at = addr.lastIndexOf('@');
  if (at < 0) return { local: addr, domain: '', utf8: false };
  return { local: addr.slice(0, at), domain: addr.slice(at + 1).toLowerCase(), utf8: false };
}

/** A transaction from `sender` ("" = MAIL FROM:<>). */
export function tx(sender: string, rcptCount = 0): TxFacts {
  return { sender: sender === '' ? null : mbox(sender), params: { smtputf8: false }, rcptCount };
}

export function rules(text: string, file = 'rules'): ObtuseRules {
  const r = parseObtuseRules(text, file);
  if (!r.ok) throw new Error(r.diagnostics.map(formatObtuseDiagnostic).join('\n'));
  return r.rules;
}

/**
 * A DNS served from tables. `servers`: name → NS/MX names (absent = no such
 * name); `addresses`: name → A/AAAA; names in `failing` throw (SERVFAIL).
 */
export function fakeDns(zone: {
  servers?: Record<string, string[]>;
  addresses?: Record<string, string[]>;
  exists?: string[];
  failing?: string[];
}): ObtuseDns & { asked: string[] } {
  const asked: string[] = [];
  const fail = (name: string): void => {
    if (zone.failing?.includes(name)) throw Object.assign(new Error(`SERVFAIL ${name}`), { code: 'ESERVFAIL' });
  };
  return {
    asked,
    async servers(name) {
      asked.push(`servers ${name}`);
      fail(name);
      const s = zone.servers?.[name];
      if (s !== undefined) return s;
      if (zone.exists?.includes(name) || zone.addresses?.[name] !== undefined) return [];
      return null;
    },
    async addresses(name) {
      asked.push(`addresses ${name}`);
      fail(name);
      return zone.addresses?.[name] ?? [];
    },
  };
}
