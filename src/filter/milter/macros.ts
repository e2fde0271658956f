/*
 * filter/milter/macros.ts — the sendmail macros a milter is given at each
 * stage, from what the session knows. The names are those Postfix sends
 * (its MILTER_README lists them); a milter that asked for a list at option
 * negotiation gets only those.
 */
import type { SessionFacts } from '../../policy/policy.js';
import type { Stage } from './codec.js';

export interface MacroSource {
  readonly facts: SessionFacts;
  /** Our name (j). */
  readonly hostname: string;
  readonly msgid?: string;
  readonly sender?: string;
  readonly rcpt?: string;
}

function splitAddress(a: string): { readonly host: string } {
  const at = a.lastIndexOf('@');
  return { host: at < 0 ? '' : a.slice(at + 1) };
}

/** Every macro Postern can give at `stage`. */
export function stageMacros(stage: Stage, m: MacroSource): Map<string, string> {
  const f = m.facts;
  const out = new Map<string, string>();
  const set = (k: string, v: string | undefined): void => {
    if (v !== undefined) out.set(k, v);
  };
  switch (stage) {
    case 'C':
      set('j', m.hostname);
      set('{daemon_name}', m.hostname);
      set('{daemon_addr}', f.listener.replace(/:\d+$/, ''));
      set('v', 'Postern');
      set('_', `${f.rdns ?? 'unknown'} [${f.clientAddress}]`);
      set('{client_addr}', f.clientAddress);
      set('{client_port}', String(f.clientPort));
      set('{client_name}', f.rdns ?? 'unknown');
      set('{client_ptr}', f.rdns ?? 'unknown');
      break;
    case 'H':
      set('{tls_version}', f.tls ? 'TLS' : undefined);
      break;
    case 'M':
      set('{auth_type}', f.authUser !== undefined ? 'PLAIN' : undefined);
      set('{auth_authen}', f.authUser);
      set('{mail_mailer}', 'smtp');
      set('{mail_addr}', m.sender);
      if (m.sender !== undefined) set('{mail_host}', splitAddress(m.sender).host);
      break;
    case 'R':
      set('{rcpt_mailer}', 'smtp');
      set('{rcpt_addr}', m.rcpt);
      if (m.rcpt !== undefined) set('{rcpt_host}', splitAddress(m.rcpt).host);
      break;
    case 'T':
    case 'N':
    case 'E':
      set('i', m.msgid);
      break;
  }
  return out;
}

/** The macros to send: those the milter asked for at this stage, else all we have. */
export function wanted(all: Map<string, string>, asked: readonly string[] | undefined): Map<string, string> {
  if (asked === undefined) return all;
  const norm = (k: string): string => (k.startsWith('{') || k.length === 1 ? k : `{${k}}`);
  const keep = new Set(asked.map(norm));
  return new Map([...all].filter(([k]) => keep.has(k)));
}
