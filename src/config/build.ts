/*
 * config/build.ts — Draft (what the file says) to Config (what runs).
 *
 * Checks that need the whole file: duplicate names (reported at the second
 * definition, naming the first), every reference to a table, pki, ca or
 * action (reported where it is used, with a suggestion), a pki without its
 * certificate or key, duplicate listeners. Applies the legacy "aliases" map
 * rule, the defaults of config/defaults.ts, and resolves the dialect.
 * Warnings: open relay (config/open-relay.ts); and, when there is no error
 * (a statement that failed to parse would make them wrong), unused tables
 * and actions, no rules at all. The result is deeply frozen.
 */
import { join } from 'node:path';
import { where } from './cursor.js';
import * as D from './defaults.js';
import type { Diagnostics } from './diagnostics.js';
import type { Draft, Setting } from './draft.js';
import { deepFreeze, FrozenMap, FrozenSet } from './freeze.js';
import type { Action, CaCert, Config, Pki, Position, TableDecl } from './model.js';
import { findOpenRelays } from './open-relay.js';
import { buildHttp } from './parse-http.js';
import { buildFilters } from './parse-filter.js';
import { buildAntispam } from './parse-antispam.js';
import { buildTransport } from './parse-mta.js';
import { rulesFileOpenness } from './obtuse/open.js';
import { didYouMean } from './suggest.js';

export interface BuildInput {
  readonly file: string;
  readonly draft: Draft;
  readonly macros: ReadonlyMap<string, string>;
  /** Host name when the file has none. */
  readonly hostname: string;
}

/** Build the configuration; undefined when `diags` holds errors afterwards. */
export function build(input: BuildInput, diags: Diagnostics): Config | undefined {
  const { draft } = input;
  const tables = collectTables(draft, diags);
  const pki = collectPki(draft, diags);
  const ca = new Map<string, CaCert>();
  for (const x of draft.ca.values()) if (x.cert !== undefined) ca.set(x.name, { name: x.name, pos: x.pos, cert: x.cert });
  const actions = collectActions(draft, tables, diags);
  const used = checkRefs(draft, { tables, pki, ca, actions }, diags);
  checkListeners(draft, diags);
  const http = buildHttp(draft.http, diags);
  const filters = buildFilters(draft.filters, draft.listeners, diags);
  const antispam = buildAntispam(draft.antispam, diags);
  const transportSecurity = buildTransport(draft.transport);

  // Whole-configuration lints only make sense when every statement was understood.
  const lint = diags.errorCount === 0;
  for (const t of draft.tables) {
    if (lint && !used.has(t.decl.name) && tables.get(t.decl.name) === t.decl) {
      const what = t.dialect === 'legacy' ? 'map' : 'table';
      diags.warning(t.namePos, `${what} "${t.decl.name}" is declared but never used`);
    }
  }
  const usedActions = new Set(draft.rules.map((r) => r.action));
  for (const a of draft.actions) {
    if (lint && !a.synthesized && !usedActions.has(a.action.name)) diags.warning(a.namePos, `action "${a.action.name}" is declared but no match rule uses it`);
  }
  // A rules file that refuses whatever it does not allow closes smtpd.conf's rules behind it (config/obtuse/open.ts).
  const closedByRules = rulesFileClosed(draft.settings.rulesFile?.value);
  const openRelays = closedByRules ? [] : findOpenRelays(draft.rules, actions, tables);
  for (const w of openRelays) diags.add(w);
  if (lint && draft.rules.length === 0 && (draft.listeners.length > 0 || draft.actions.length > 0)) {
    const first = draft.listeners[0]?.pos ?? (draft.actions[0] as { action: Action }).action.pos;
    diags.warning(first, 'no accept or match rules: every recipient will be refused');
  }
  if (diags.errorCount > 0) return undefined;

  const s = draft.settings;
  const val = <T>(x: Setting<T> | undefined, d: T): T => (x === undefined ? d : x.value);
  const queuePath = val(s.queuePath, D.DEFAULT_QUEUE_PATH);
  const seen = draft.dialectSeen;
  const config: Config = {
    file: input.file,
    dialect: seen.legacy && seen.modern ? 'mixed' : seen.legacy ? 'legacy' : seen.modern ? 'modern' : 'empty',
    hostname: val(s.hostname, input.hostname),
    macros: new FrozenMap(input.macros),
    listeners: draft.listeners,
    tables: new FrozenMap(tables),
    pki: new FrozenMap(pki),
    ca: new FrozenMap(ca),
    actions: new FrozenMap(actions),
    rules: draft.rules,
    smtp: {
      maxMessageSize: val(s.maxMessageSize, D.DEFAULT_MAX_MESSAGE_SIZE),
      maxRcpt: val(s.maxRcpt, D.DEFAULT_MAX_RCPT),
      maxMails: val(s.maxMails, D.DEFAULT_MAX_MAILS),
      maxUnknownCommands: val(s.maxUnknownCommands, D.DEFAULT_MAX_UNKNOWN_COMMANDS),
      maxJunkCommands: val(s.maxJunkCommands, D.DEFAULT_MAX_JUNK_COMMANDS),
      commandTimeoutMs: val(s.commandTimeoutMs, D.DEFAULT_COMMAND_TIMEOUT_MS),
      dataTimeoutMs: val(s.dataTimeoutMs, D.DEFAULT_DATA_TIMEOUT_MS),
      tlsHandshakeTimeoutMs: val(s.tlsHandshakeTimeoutMs, D.DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS),
      sessionLifetimeMs: val(s.sessionLifetimeMs, D.DEFAULT_SESSION_LIFETIME_MS),
      transactionLifetimeMs: val(s.transactionLifetimeMs, D.DEFAULT_TRANSACTION_LIFETIME_MS),
      maxReceivedHeaders: val(s.maxReceivedHeaders, D.DEFAULT_MAX_RECEIVED_HEADERS),
      bareNewline: val(s.bareNewline, D.DEFAULT_BARE_NEWLINE),
      earlyTalker: val(s.earlyTalker, D.DEFAULT_EARLY_TALKER),
      greetingDelayMs: val(s.greetingDelayMs, D.DEFAULT_GREETING_DELAY_MS),
      vrfy: val(s.vrfy, D.DEFAULT_VRFY),
      expn: val(s.expn, D.DEFAULT_EXPN),
      authWithoutTls: val(s.authWithoutTls, false),
      authFailRate: val(s.authFailRate, D.DEFAULT_AUTH_FAILRATE),
      authFailDelayMs: val(s.authFailDelayMs, D.DEFAULT_AUTH_FAIL_DELAY_MS),
      ...(s.authPipe !== undefined ? { authPipe: s.authPipe.value } : {}),
      authUsernamePrompt: val(s.authUsernamePrompt, D.DEFAULT_AUTH_USERNAME_PROMPT),
      authPasswordPrompt: val(s.authPasswordPrompt, D.DEFAULT_AUTH_PASSWORD_PROMPT),
      ...(s.maxConnections !== undefined ? { maxConnections: s.maxConnections.value } : {}),
      ...(s.maxConnectionsPerAddress !== undefined ? { maxConnectionsPerAddress: s.maxConnectionsPerAddress.value } : {}),
      ...(s.softErrorLimit !== undefined ? { softErrorLimit: s.softErrorLimit.value } : {}),
      ...(s.hardErrorLimit !== undefined ? { hardErrorLimit: s.hardErrorLimit.value } : {}),
      ...(s.minDataRate !== undefined ? { minDataRate: s.minDataRate.value } : {}),
      ...(s.notoDelayMs !== undefined ? { notoDelayMs: s.notoDelayMs.value } : {}),
      ...(s.denyDelayMs !== undefined ? { denyDelayMs: s.denyDelayMs.value } : {}),
      ...(s.maxLoadAverage !== undefined ? { maxLoadAverage: s.maxLoadAverage.value } : {}),
      help: draft.help,
      ...(s.banner !== undefined ? { banner: s.banner.value } : {}),
      disabledExtensions: new FrozenSet(draft.disabledExtensions),
      ...(s.ciphers !== undefined ? { ciphers: s.ciphers.value } : {}),
      ...(s.tlsMinVersion !== undefined ? { tlsMinVersion: s.tlsMinVersion.value } : {}),
    },
    queue: {
      path: queuePath,
      ttl: val(s.queueTtl, D.DEFAULT_QUEUE_TTL_S),
      ...(s.queueInterval !== undefined ? { interval: s.queueInterval.value } : {}),
      minFreeSpace: val(s.minFreeSpace, D.DEFAULT_MIN_FREE_SPACE),
      groupCommitMs: val(s.groupCommitMs, D.DEFAULT_GROUP_COMMIT_MS),
      activeLimit: val(s.activeLimit, D.DEFAULT_ACTIVE_LIMIT),
      ...(s.queuePostgresql !== undefined ? { postgresql: { url: s.queuePostgresql.value, ...(s.queueNode !== undefined ? { node: s.queueNode.value } : {}), leaseMs: val(s.queueLeaseMs, 30_000) } } : {}),
    },
    bounce: { warnIntervals: val(s.warnIntervals, [...D.DEFAULT_BOUNCE_WARN_INTERVALS_S]) },
    paths: {
      controlSocket: val(s.controlSocket, join(queuePath, D.DEFAULT_CONTROL_SOCKET_NAME)),
      pidFile: val(s.pidFile, join(queuePath, D.DEFAULT_PIDFILE_NAME)),
      mboxDir: val(s.mboxDir, D.DEFAULT_MBOX_DIR),
      ...(s.logFile !== undefined ? { logFile: s.logFile.value } : {}),
      ...(s.syslog !== undefined ? { syslog: s.syslog.value } : {}),
      ...(s.logFormat !== undefined ? { logFormat: s.logFormat.value } : {}),
    },
    resolver: { servers: draft.resolverServers, timeoutMs: val(s.resolverTimeoutMs, D.DEFAULT_RESOLVER_TIMEOUT_MS) },
    ...(s.rulesFile !== undefined ? { rulesFile: { path: s.rulesFile.value, pos: s.rulesFile.pos } } : {}),
    ...(s.smtpserverConf !== undefined ? { smtpserverConf: { path: s.smtpserverConf.value, pos: s.smtpserverConf.pos } } : {}),
    ...(s.forward !== undefined ? { forward: s.forward.value } : {}),
    ...(s.mailauthVerify !== undefined || s.mailauthSign !== undefined || s.mailauthSeal !== undefined
      ? { mailauth: { ...(s.mailauthVerify ? { verify: s.mailauthVerify.value } : {}), ...(s.mailauthSign ? { sign: s.mailauthSign.value } : {}), ...(s.mailauthSeal ? { seal: s.mailauthSeal.value } : {}) } }
      : {}),
    ...(s.privsepUser !== undefined ? { privsepUser: s.privsepUser.value } : {}),
    ...(http !== undefined ? { http } : {}),
    ...(filters !== undefined ? { filters } : {}),
    ...(antispam !== undefined ? { antispam } : {}),
    ...(transportSecurity !== undefined ? { transportSecurity } : {}),
    warnings: diags.sorted().filter((d) => d.severity === 'warning'),
  };
  return deepFreeze(config);
}

function duplicate(kind: string, name: string, first: Position, again: Position): string {
  return `${kind} "${name}" is already defined at ${where(first, again)}`;
}

function collectTables(draft: Draft, diags: Diagnostics): Map<string, TableDecl> {
  const tables = new Map<string, TableDecl>();
  const namePos = new Map<string, Position>();
  for (const t of draft.tables) {
    const first = namePos.get(t.decl.name);
    if (first !== undefined) {
      diags.error(t.namePos, duplicate(t.dialect === 'legacy' ? 'map' : 'table', t.decl.name, first, t.namePos));
      continue;
    }
    namePos.set(t.decl.name, t.namePos);
    tables.set(t.decl.name, t.decl);
  }
  for (const [name, decl] of draft.anonTables) tables.set(name, decl);
  return tables;
}

function collectPki(draft: Draft, diags: Diagnostics): Map<string, Pki> {
  const out = new Map<string, Pki>();
  for (const p of draft.pki.values()) {
    if (p.cert === undefined) diags.error(p.pos, `pki "${p.name}" has no certificate (add: pki ${p.name} cert "/etc/ssl/${p.name}.crt")`);
    if (p.key === undefined) diags.error(p.pos, `pki "${p.name}" has no key (add: pki ${p.name} key "/etc/ssl/private/${p.name}.key")`);
    const { certPos: _c, keyPos: _k, ...pki } = p;
    out.set(p.name, pki);
  }
  return out;
}

function collectActions(draft: Draft, tables: ReadonlyMap<string, TableDecl>, diags: Diagnostics): Map<string, Action> {
  const out = new Map<string, Action>();
  const namePos = new Map<string, Position>();
  for (const a of draft.actions) {
    const first = namePos.get(a.action.name);
    if (first !== undefined) {
      diags.error(a.namePos, duplicate('action', a.action.name, first, a.namePos));
      continue;
    }
    namePos.set(a.action.name, a.namePos);
    if (a.implicitAlias && tables.has('aliases')) a.action.alias = 'aliases';
    out.set(a.action.name, a.action);
  }
  return out;
}

interface Namespaces {
  readonly tables: ReadonlyMap<string, TableDecl>;
  readonly pki: ReadonlyMap<string, Pki>;
  readonly ca: ReadonlyMap<string, CaCert>;
  readonly actions: ReadonlyMap<string, Action>;
}

/** Report undefined names; returns the table names that are used. */
function checkRefs(draft: Draft, ns: Namespaces, diags: Diagnostics): Set<string> {
  const used = new Set<string>();
  for (const a of ns.actions.values()) if (a.alias === 'aliases') used.add('aliases');
  for (const r of draft.refs) {
    const space = r.kind === 'table' ? ns.tables : r.kind === 'pki' ? ns.pki : r.kind === 'ca' ? ns.ca : ns.actions;
    if (r.kind === 'table') used.add(r.name);
    if (space.has(r.name)) continue;
    if (r.missing !== undefined) {
      diags.error(r.pos, r.missing);
      continue;
    }
    const names = [...space.keys()].filter((n) => !n.startsWith('<'));
    diags.error(r.pos, `undefined ${r.kind} "${r.name}"${didYouMean(r.name, names)}`);
  }
  return used;
}

function checkListeners(draft: Draft, diags: Diagnostics): void {
  const seen = new Map<string, Position>();
  for (const l of draft.listeners) {
    if (l.port === 0 && l.on !== 'socket') continue; // port 0: each gets its own free port
    const key = `${l.on}|${l.port}|${l.family ?? ''}`;
    const first = seen.get(key);
    const shown = l.on === 'socket' ? 'socket' : `${l.on} port ${l.port}`;
    if (first !== undefined) diags.error(l.pos, `listener on ${shown} is already declared at ${where(first, l.pos)}`);
    else seen.set(key, l.pos);
  }
}

/** smtpd.conf's open-relay warnings are moot behind a rules file that is closed. */
function rulesFileClosed(path: string | undefined): boolean {
  return path !== undefined && rulesFileOpenness(path)?.kind === 'closed';
}
