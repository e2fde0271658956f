/*
 * config/filter-options.ts — the `filter` statements' model (parsed by
 * config/parse-filter.ts): milters, filter processes (smtpd-filters(7)),
 * OpenSMTPD's built-in filters, chains, and the after-queue content filter.
 */
/** As config/model.ts's Position (repeated here so that model.ts can import this file without a cycle). */
interface Position {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** What a milter does when it cannot be asked (Postfix's milter_default_action). */
export type MilterDefault = 'tempfail' | 'accept' | 'reject';

export interface MilterDecl {
  readonly kind: 'milter';
  readonly name: string;
  readonly pos: Position;
  /** "inet:HOST:PORT", "unix:/PATH" or "/PATH". */
  readonly socket: string;
  readonly defaultAction: MilterDefault;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly contentTimeoutMs: number;
}

export interface ProcDecl {
  readonly kind: 'proc';
  readonly name: string;
  readonly pos: Position;
  /** The command line, run with /bin/sh -c as OpenSMTPD does (it is configuration, never envelope data). */
  readonly command: string;
  readonly user?: string;
  readonly group?: string;
  /** `timeout DUR` (Postern's): how long one request may wait; default 5 minutes. */
  readonly timeoutMs?: number;
}

export type BuiltinPhase = 'connect' | 'helo' | 'ehlo' | 'mail-from' | 'rcpt-to' | 'data' | 'commit';

/** One `match` condition of a built-in filter. */
export interface BuiltinCondition {
  readonly negate: boolean;
  readonly what: 'rdns' | 'fcrdns' | 'src' | 'helo' | 'mail-from' | 'rcpt-to' | 'auth' | AuthMethod;
  /** spf, dkim, dmarc, arc: the results (RFC 8601 words) that match. */
  readonly results?: readonly string[];
  /** A table name, when the condition names one (`rdns <t>`, `src <t>`, `auth <t>`). */
  readonly table?: string;
  /** Regular-expression table: its values are patterns. */
  readonly regex: boolean;
}

/** The mail-authentication methods a `phase commit` condition can test (`mailauth verify`'s results). */
export type AuthMethod = 'spf' | 'dkim' | 'dmarc' | 'arc';
export const AUTH_METHODS: readonly AuthMethod[] = ['spf', 'dkim', 'dmarc', 'arc'];
/** The result words of RFC 8601 §2.7 (and RFC 7489 / RFC 8617 for DMARC and ARC). */
export const AUTH_RESULT_WORDS = ['pass', 'fail', 'softfail', 'neutral', 'none', 'policy', 'temperror', 'permerror'] as const;

export type BuiltinDecision =
  | { readonly kind: 'bypass' }
  | { readonly kind: 'junk' }
  /** phase commit: keep the message held in the queue (as `mailauth verify quarantine hold`). */
  | { readonly kind: 'quarantine' }
  /** phase commit: add this header field ("Name: value") at the top of the message. */
  | { readonly kind: 'tag'; readonly name: string; readonly value: string }
  | { readonly kind: 'report' ; readonly text: string }
  | { readonly kind: 'reject' | 'disconnect'; readonly text: string }
  | { readonly kind: 'rewrite'; readonly value: string };

export interface BuiltinDecl {
  readonly kind: 'builtin';
  readonly name: string;
  readonly pos: Position;
  readonly phase: BuiltinPhase;
  readonly conditions: readonly BuiltinCondition[];
  readonly decision: BuiltinDecision;
}

export interface ChainDecl {
  readonly kind: 'chain';
  readonly name: string;
  readonly pos: Position;
  readonly members: readonly string[];
}

export type FilterDecl = MilterDecl | ProcDecl | BuiltinDecl | ChainDecl;

/** Postfix's defaults: milter_connect_timeout 30s, milter_command_timeout 30s, milter_content_timeout 300s. */
export const MILTER_DEFAULTS = { defaultAction: 'tempfail', connectTimeoutMs: 30_000, commandTimeoutMs: 30_000, contentTimeoutMs: 300_000 } as const;
