/*
 * smtp/sasl.ts — the SASL exchange of AUTH (RFC 4954) as a small state
 * machine: PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195).
 *
 * saslStart() and saslContinue() take the exchange so far and one client
 * line, and return a value: ask again (334 and the next state), succeeded,
 * failed (counted against the client and answered after a delay), failed
 * for a temporary reason, or abandoned (cancelled, bad base64). They never
 * touch the session: the session keeps the state, applies the outcome, logs
 * it and counts failures. Credentials are checked through SaslCredentials,
 * the only effect here.
 */
import { cramMd5Matches } from '../auth/hash.js';
import type { AuthOutcome } from '../auth/authenticator.js';
import { reply, type Reply } from '../mail/reply.js';

export type SaslMechanism = 'PLAIN' | 'LOGIN' | 'CRAM-MD5';

/** An exchange in progress: what the next client line answers. */
export type SaslExchange =
  | { readonly mech: 'PLAIN' }
  | { readonly mech: 'LOGIN'; readonly user?: string }
  | { readonly mech: 'CRAM-MD5'; readonly challenge: string };

/** What one step of the exchange comes to. */
export type SaslStep =
  /** Send `reply` (a 334) and read the next line as the answer to `exchange`. */
  | { readonly kind: 'challenge'; readonly exchange: SaslExchange; readonly reply: Reply }
  | { readonly kind: 'success'; readonly user: string; readonly mech: SaslMechanism }
  /** Counted as a failed attempt; `reply` replaces the usual 535. */
  | { readonly kind: 'failure'; readonly reason: string; readonly user?: string; readonly reply?: Reply }
  /** The credentials could not be checked (454). */
  | { readonly kind: 'tempfail'; readonly reason: string; readonly user: string }
  /** The client gave up or sent something unreadable: not counted. */
  | { readonly kind: 'abandoned'; readonly reply: Reply };

/** The listener's credentials, as the session's authenticator sees them. */
export interface SaslCredentials {
  check(user: string, password: string): Promise<AuthOutcome>;
  /** The shared secret for CRAM-MD5; undefined when the user has none. */
  cramSecret(user: string): string | undefined | { readonly error: string };
}

export interface SaslContext {
  readonly credentials: SaslCredentials;
  readonly usernamePrompt: string;
  readonly passwordPrompt: string;
  /** A fresh CRAM-MD5 challenge, `<random.time@host>`. */
  readonly challenge: () => string;
}

/** The mechanisms offered: CRAM-MD5 only where the listener's credentials keep secrets it can use. */
export function saslMechanisms(cram: boolean): SaslMechanism[] {
  return cram ? ['PLAIN', 'LOGIN', 'CRAM-MD5'] : ['PLAIN', 'LOGIN'];
}

/** AUTH <mech> [initial-response]; `mech` is one of saslMechanisms(). */
export function saslStart(mech: SaslMechanism, initial: string | undefined, ctx: SaslContext): SaslStep | Promise<SaslStep> {
  switch (mech) {
    case 'PLAIN':
      if (initial !== undefined) return saslContinue({ mech: 'PLAIN' }, initial, ctx);
      return { kind: 'challenge', exchange: { mech: 'PLAIN' }, reply: reply(334, undefined, '') };
    case 'LOGIN':
      if (initial !== undefined) return saslContinue({ mech: 'LOGIN' }, initial, ctx);
      return prompt({ mech: 'LOGIN' }, ctx.usernamePrompt);
    case 'CRAM-MD5': {
      if (initial !== undefined) return { kind: 'failure', reason: 'initial response not allowed with CRAM-MD5', reply: reply(501, '5.5.4', 'CRAM-MD5 takes no initial response') };
      const challenge = ctx.challenge();
      return prompt({ mech: 'CRAM-MD5', challenge }, challenge);
    }
  }
}

/** One client line answering `ex`. */
export async function saslContinue(ex: SaslExchange, line: string, ctx: SaslContext): Promise<SaslStep> {
  if (line === '*') return { kind: 'abandoned', reply: reply(501, '5.7.0', 'Authentication cancelled') };
  const data = decodeBase64(line);
  if (data === undefined) return { kind: 'abandoned', reply: reply(501, '5.5.2', 'Invalid base64 data') };
  switch (ex.mech) {
    case 'PLAIN': {
      const parts = data.toString('utf8').split('\0');
      if (parts.length !== 3) return { kind: 'failure', reason: 'malformed PLAIN response', reply: reply(501, '5.5.2', 'Malformed PLAIN response') };
      const [authzid, user, password] = parts as [string, string, string];
      if (authzid !== '' && authzid !== user) return { kind: 'failure', reason: `proxy authorization to ${authzid} refused`, user };
      return verify('PLAIN', user, password, ctx);
    }
    case 'LOGIN':
      if (ex.user === undefined) return prompt({ mech: 'LOGIN', user: data.toString('utf8') }, ctx.passwordPrompt);
      return verify('LOGIN', ex.user, data.toString('utf8'), ctx);
    case 'CRAM-MD5': {
      const m = /^(\S+) ([0-9a-fA-F]{32})$/.exec(data.toString('utf8'));
      if (!m || m[1] === undefined || m[2] === undefined) return { kind: 'failure', reason: 'malformed CRAM-MD5 response', reply: reply(501, '5.5.2', 'Malformed CRAM-MD5 response') };
      const user = m[1];
      const secret = ctx.credentials.cramSecret(user);
      if (typeof secret === 'object') return { kind: 'tempfail', reason: secret.error, user };
      if (secret === undefined || !cramMd5Matches(secret, ex.challenge, m[2])) return { kind: 'failure', reason: 'wrong credentials', user };
      return { kind: 'success', user, mech: 'CRAM-MD5' };
    }
  }
}

function prompt(exchange: SaslExchange, text: string): SaslStep {
  return { kind: 'challenge', exchange, reply: reply(334, undefined, Buffer.from(text, 'utf8').toString('base64')) };
}

async function verify(mech: SaslMechanism, user: string, password: string, ctx: SaslContext): Promise<SaslStep> {
  const r = await ctx.credentials.check(user, password);
  if (r.kind === 'ok') return { kind: 'success', user, mech };
  if (r.kind === 'error') return { kind: 'tempfail', reason: r.reason, user };
  return { kind: 'failure', reason: 'wrong credentials', user };
}

/** Strict base64 (RFC 4954 §4): returns undefined for anything else. "=" alone is an empty response. */
export function decodeBase64(s: string): Buffer | undefined {
  if (s === '=') return Buffer.alloc(0);
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}
