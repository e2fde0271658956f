/*
 * config/draft.ts — the syntax tree: what the parser read, before checking.
 *
 * The parser (config/parser.ts and config/parse-*.ts) fills a Draft in file
 * order: model-shaped objects whose names are not resolved yet, plus every
 * place a name is used (Ref) so that config/build.ts can check them all once
 * the whole file — includes too — has been read. Forward references are
 * therefore fine (`match … action "x"` before `action "x" …`).
 */
import type { HttpDraft } from './http-options.js';
import type { FilterDecl } from './filter-options.js';
import type { MailAuthSealOptions, MailAuthSignOptions, MailAuthVerifyOptions } from './mailauth-options.js';
import { emptyAntispamDraft, type AntispamDraft } from './antispam.js';
import type { TransportDraft } from './transport-options.js';
import type { Action, Dialect, ForwardOptions, Listener, MatchRule, Pki, Position, SyslogTarget, TableDecl } from './model.js';

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A use of a name that must be declared somewhere in the configuration. */
export interface Ref {
  readonly kind: 'table' | 'pki' | 'ca' | 'action';
  readonly name: string;
  readonly pos: Position;
  /** Replaces the standard "undefined table "x"" message. */
  readonly missing?: string;
}

export interface Setting<T> {
  readonly value: T;
  readonly pos: Position;
  /** How the statement was written, for "set twice" warnings ("size", "smtp max-message-size"). */
  readonly label: string;
}

/** Server-wide options; absent ⇒ the default from config/defaults.ts. */
export interface SettingsDraft {
  hostname?: Setting<string>;
  maxMessageSize?: Setting<number>;
  maxRcpt?: Setting<number>;
  maxMails?: Setting<number>;
  maxUnknownCommands?: Setting<number>;
  maxJunkCommands?: Setting<number>;
  commandTimeoutMs?: Setting<number>;
  dataTimeoutMs?: Setting<number>;
  tlsHandshakeTimeoutMs?: Setting<number>;
  sessionLifetimeMs?: Setting<number>;
  transactionLifetimeMs?: Setting<number>;
  maxReceivedHeaders?: Setting<number>;
  bareNewline?: Setting<'normalize' | 'reject'>;
  earlyTalker?: Setting<'reject' | 'allow'>;
  greetingDelayMs?: Setting<number>;
  vrfy?: Setting<boolean>;
  expn?: Setting<boolean>;
  authWithoutTls?: Setting<boolean>;
  authFailRate?: Setting<number>;
  authFailDelayMs?: Setting<number>;
  authPipe?: Setting<string>;
  authUsernamePrompt?: Setting<string>;
  authPasswordPrompt?: Setting<string>;
  maxConnections?: Setting<number>;
  maxConnectionsPerAddress?: Setting<number>;
  softErrorLimit?: Setting<number>;
  hardErrorLimit?: Setting<number>;
  minDataRate?: Setting<number>;
  notoDelayMs?: Setting<number>;
  denyDelayMs?: Setting<number>;
  maxLoadAverage?: Setting<number>;
  banner?: Setting<string>;
  ciphers?: Setting<string>;
  tlsMinVersion?: Setting<'TLSv1.2' | 'TLSv1.3'>;
  queuePath?: Setting<string>;
  queueTtl?: Setting<number>;
  queueInterval?: Setting<number>;
  minFreeSpace?: Setting<number>;
  groupCommitMs?: Setting<number>;
  activeLimit?: Setting<number>;
  queuePostgresql?: Setting<string>;
  queueNode?: Setting<string>;
  queueLeaseMs?: Setting<number>;
  warnIntervals?: Setting<number[]>;
  controlSocket?: Setting<string>;
  pidFile?: Setting<string>;
  mboxDir?: Setting<string>;
  logFile?: Setting<string>;
  syslog?: Setting<SyslogTarget>;
  logFormat?: Setting<'postern' | 'opensmtpd'>;
  resolverTimeoutMs?: Setting<number>;
  rulesFile?: Setting<string>;
  smtpserverConf?: Setting<string>;
  forward?: Setting<ForwardOptions>;
  mailauthVerify?: Setting<MailAuthVerifyOptions>;
  mailauthSign?: Setting<MailAuthSignOptions>;
  mailauthSeal?: Setting<MailAuthSealOptions>;
  privsepUser?: Setting<string>;
}

export type SettingKey = keyof SettingsDraft;
export type SettingValue<K extends SettingKey> = NonNullable<SettingsDraft[K]> extends Setting<infer T> ? T : never;

export interface TableDraft {
  readonly decl: TableDecl;
  readonly namePos: Position;
  readonly dialect: Dialect;
}

export interface PkiDraft extends Mutable<Pki> {
  certPos?: Position;
  keyPos?: Position;
}

export interface CaDraft {
  readonly name: string;
  readonly pos: Position;
  cert?: string;
}

export interface ActionDraft {
  readonly action: Mutable<Action>;
  readonly namePos: Position;
  /** Synthesised for a legacy rule (not declared by name). */
  readonly synthesized: boolean;
  /** Legacy `for local`: use the map named "aliases" as alias table if one is declared. */
  readonly implicitAlias: boolean;
}

export interface Draft {
  readonly refs: Ref[];
  readonly listeners: Mutable<Listener>[];
  readonly tables: TableDraft[];
  /** Anonymous tables for literals, by their "<…>" name. */
  readonly anonTables: Map<string, TableDecl>;
  readonly pki: Map<string, PkiDraft>;
  readonly ca: Map<string, CaDraft>;
  readonly actions: ActionDraft[];
  readonly rules: MatchRule[];
  readonly settings: SettingsDraft;
  readonly help: string[];
  readonly disabledExtensions: Set<string>;
  readonly resolverServers: string[];
  /** `http …` statements (config/parse-http.ts). */
  readonly http: HttpDraft;
  /** `filter …` statements (config/parse-filter.ts). */
  readonly filters: Map<string, FilterDecl>;
  /** The checks at the door (config/parse-antispam.ts). */
  readonly antispam: AntispamDraft;
  /** `mta …` statements (config/parse-mta.ts). */
  readonly transport: TransportDraft;
  /** First statement of each dialect, for the "mixed dialects" warning and Config.dialect. */
  readonly dialectSeen: { legacy?: Position; modern?: Position };
}

export function emptyDraft(): Draft {
  return {
    refs: [],
    listeners: [],
    tables: [],
    anonTables: new Map(),
    pki: new Map(),
    ca: new Map(),
    actions: [],
    rules: [],
    settings: {},
    help: [],
    disabledExtensions: new Set(),
    resolverServers: [],
    http: { tokens: [] },
    filters: new Map(),
    antispam: emptyAntispamDraft(),
    transport: { seen: {} },
    dialectSeen: {},
  };
}
