/*
 * policy/build.ts — the policy of a configuration: the phases in the order
 * they run, and what the policy files change in the session and the
 * connection. The files were read, and their PARAMs merged into the
 * configuration, when it was loaded (config/policy-files.ts); nothing here
 * reads a file or changes an option.
 *
 *   at accept   connection limits, per client address and in total
 *               (smtp/server.ts counts; ZMailer's MaxSameIpSource and
 *               MaxParallelConnections replace Postern's defaults)
 *   connect     load average (the -L limit, when given)
 *   HELO/EHLO   smtpserver.conf: the first matching HELO pattern (refuse,
 *               load limit, style flags)
 *   RCPT        smtpserver.conf: max-error-recipients; then the Obtuse
 *               rules file; then smtpd.conf's rules (Policy.rcpt)
 *   commit      the content filter, once the message is complete in the
 *               spool's incoming/ file and before the 250
 *
 * The tarpit and the error limits act on every reply (smtp/connection.ts).
 * docs/policy.md ("How the files are wired in") lists each PARAM's effect.
 */
import type { Probe } from '../metrics/probe.js';
import { readFileSync } from 'node:fs';
import type { LoadedConfig } from '../config/policy-files.js';
import type { MailLog } from '../log/maillog.js';
import type { TableRegistry } from '../table/table.js';
import type { UserBase } from '../users/system-users.js';
import type { SessionRuntime } from './runtime.js';
import { reply } from '../mail/reply.js';
import type { BodyFile } from '../spool/spool.js';
import { Policy, type PolicyObserver, type PolicyPhase, type SessionFacts } from './policy.js';
import { RuleEngine } from '../rules/rules.js';
import { nullMxSenderPhase } from './null-mx.js';
import { antispamPhase, type AntispamDeps } from '../antispam/phase.js';
import type { MxDns } from '../dns/mx.js';
import type { LocalNames } from '../rules/localnames.js';
import { PASS, type Verdict } from './verdict.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits, DEFAULT_ERROR_LIMITS, type ErrorLimits, NO_TARPIT, type TarpitSettings, LIMIT_DEFAULTS } from '../config/limits.js';
import { loadAverageRefusal } from './load-average.js';
import { obtuseRulesPhase, type ObtuseDelays, type ObtuseRulesPhase } from './obtuse/phase.js';
import { obtuseDns } from './obtuse/dns.js';
import { sessionIdent } from './obtuse/ident.js';
import { normalizeParamName } from '../config/zmailer/params.js';
import { zmailerPolicyPhase, styleFor, type ZmailerPolicyPhase } from './zmailer/phase.js';
import { zmailerConnectionLimits, zmailerTarpit } from './zmailer/limits.js';
import { expandHdr220 } from './zmailer/hdr220.js';
import { DEFAULT_STYLE, type StyleFlag, type StyleOption } from '../config/zmailer/helo-patterns.js';
import { ContentFilter, type FilterResult } from './zmailer/contentfilter.js';
import { policyDbPhase } from './zmailer/policydb.js';
import { policyDbTrusts } from './zmailer/policydb-lookup.js';
import type { Resolver as DnsResolver } from 'node:dns/promises';
import type { InboundVerifier } from '../mailauth/verify/verifier.js';
import { spfAtMailPhase } from './mailauth-spf.js';
import type { WhosonServer } from '../net/whoson.js';
import type { SocketBuffers } from '../net/socket-buffers.js';

/** What the connection does besides the session: limits and pacing. */
export interface ConnectionPolicy {
  readonly limits: ConnectionLimits;
  readonly tarpit: TarpitSettings;
  readonly errors: ErrorLimits;
  /** Bytes a second of DATA/BDAT content that earn more time (slowloris). */
  readonly minDataRate: number;
  /** listen(2) backlog (ZMailer's ListenQueueSize). */
  readonly backlog?: number;
  /** Ask each client's identd (RFC 1413) at accept (smtpserver -a). */
  readonly ident?: { readonly timeoutMs: number; readonly port?: number };
  /** Ask the whoson server at accept (smtpserver -w). */
  readonly whoson?: { readonly server: WhosonServer; readonly timeoutMs: number };
  /** SO_RCVBUF / SO_SNDBUF of the listening sockets (ZMailer's TcpRcvBufferSize / TcpXmitBufferSize). */
  readonly socketBuffers?: SocketBuffers;
  /** smtpserver -g: the client's name from its PTR record, unchecked. */
  readonly gullible?: boolean;
}

export interface PolicyDeps {
  readonly tables: TableRegistry;
  readonly users: UserBase;
  readonly local: LocalNames;
  /** For NS= and RBL. patterns of the rules file (dns/resolver.ts's `raw`). */
  readonly dns?: Pick<DnsResolver, 'resolveNs' | 'resolveMx' | 'resolve4' | 'resolve6'>;
  /** MX, A and AAAA kept by their TTLs (dns/resolver.ts's `lookups`): the null-MX check of the sender's domain asks these when given. */
  readonly lookups?: MxDns;
  /** The one-minute load average (os.loadavg()[0]); without it no load limit is checked. */
  readonly loadAverage?: () => number;
  /** Refuse new sessions above this load average (ZMailer's -L). Default: no limit. */
  readonly maxLoadAverage?: number;
  /** ZMailer's -s: the style of sessions no HELO pattern matched, or strict/sloppy. Default "ve". */
  readonly style?: StyleOption;
  readonly obtuseDelays?: Partial<ObtuseDelays>;
  /** The client's ident (RFC 1413) user, for the rules file's user@host, USER@ and %U; default: ask the client's identd (policy/obtuse/ident.ts). */
  readonly rulesIdent?: (s: SessionFacts) => Promise<string | undefined>;
  readonly contentFilterTimeoutMs?: number;
  readonly log?: MailLog;
  /** Counts decisions by check (metrics). */
  readonly probe?: Pick<Probe, 'policy'>;
  /** Hears why each phase decided (the dry run). */
  readonly observer?: PolicyObserver;
  /** Phases the command line adds (smtpserver -R: the router), run after smtpserver.conf's. */
  readonly extraPhases?: readonly PolicyPhase[];
  /** Run by `smtpserver`, which acts on BindPort, BindAddress, the TLS PARAMs and rcvd-ident itself. */
  readonly frontEnd?: 'smtpserver';
  /** smtpserver -a: ident lookups at accept (ConnectionPolicy.ident). */
  readonly ident?: { readonly timeoutMs: number; readonly port?: number };
  /** `mailauth verify`: with spf-reject, SPF is checked at MAIL (policy/mailauth-spf.ts). */
  readonly mailauth?: Pick<InboundVerifier, 'spfAtMail' | 'opts'>;
  /** smtpserver -w: whoson lookups at accept (ConnectionPolicy.whoson). */
  readonly whoson?: ConnectionPolicy['whoson'];
  /** smtpserver -g (ConnectionPolicy.gullible). */
  readonly gullible?: boolean;
  /** A cluster's shared rate counters and greylisting store (daemon/cluster-state.ts); default: this process's. */
  readonly antispamStores?: Pick<AntispamDeps, 'counters' | 'greylistStore'>;
}

export interface BuiltPolicy {
  readonly policy: Policy;
  readonly session: SessionRuntime;
  readonly connection: ConnectionPolicy;
  readonly obtuse?: ObtuseRulesPhase;
  readonly zmailer?: ZmailerPolicyPhase;
  readonly contentFilter?: ContentFilter;
  /** PARAMs given that do nothing in the way Postern runs now (logged at start-up). */
  readonly notes: readonly string[];
}

/** Postern's version, for hdr220's %V. */
export const POSTERN_VERSION = readVersion();

function readVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'postern' && typeof p.version === 'string') return p.version;
    } catch {
      /* try the next */
    }
  }
  return '0';
}

/**
 * PARAMs that act only under the `smtpserver` front end (cli/smtpserver.ts binds the
 * listeners, sets up TLS, asks identd); under `smtpd` they are noted. The third
 * field: noted under smtpserver too.
 */
const NOT_WIRED: readonly (readonly [readonly string[], string, boolean?])[] = [
  [['BindPort', 'BindAddress'], 'smtpd takes its listeners from smtpd.conf "listen on"; smtpserver binds these'],
  [['allowsourceroute'], 'the route is kept as the recipient\'s original address (ORCPT: DSNs and the log show it), but mail goes to the mailbox: Postern never relays along a source route (RFC 5321 Appendix C; it would open a relay)', true],
  [['rcvd-ident'], 'smtpd asks no identd; smtpserver -a does, and Received: shows the answer'],
  [
    ['use-tls', 'no-use-tls', 'listen-ssmtp', 'tls-cert-file', 'tls-key-file', 'tls-CAfile', 'tls-CApath', 'tls-cipher-list', 'tls-loglevel', 'tls-ask-cert', 'tls-require-cert', 'tls-ccert-vd', 'tls-enforce-tls'],
    'smtpd takes TLS from smtpd.conf (pki, listen … tls); smtpserver sets it up from these',
  ],
];

/** Build the policy phases, and what the policy files change in sessions and connections, for a loaded configuration. */
export function buildPolicy(loaded: LoadedConfig, deps: PolicyDeps): BuiltPolicy {
  const { config, files } = loaded;
  const note = deps.observer;
  const phases: PolicyPhase[] = [];
  const notes: string[] = [];
  const conf = files.zmailer;

  // connect: the load average (-L).
  const maxLoad = config.smtp.maxLoadAverage ?? deps.maxLoadAverage ?? LIMIT_DEFAULTS.maxLoadAverage;
  if (maxLoad !== undefined && deps.loadAverage !== undefined) phases.push(loadPhase(maxLoad, deps.loadAverage, config.hostname, note));

  // MAIL: a sender domain with a null MX (RFC 7505) sends no mail and takes no replies.
  if (deps.lookups !== undefined) phases.push(nullMxSenderPhase(deps.lookups, deps.local, 3000, Date.now, 0));
  else if (deps.dns !== undefined && 'resolveMx' in deps.dns) phases.push(nullMxSenderPhase(deps.dns as unknown as MxDns, deps.local));
  // MAIL: SPF, when `mailauth verify spf-reject` asks for it.
  if (deps.mailauth?.opts.spfReject === true) phases.push(spfAtMailPhase(deps.mailauth));

  // connect … DATA: the checks at the door (DNS lists, HELO and sender checks, greylisting, rate limits).
  if (config.antispam && deps.dns !== undefined) phases.push(antispamPhase({ settings: config.antispam, dns: deps.dns, isLocalAddress: (ip) => deps.local.isLocalAddress(ip), queuePath: config.queue.path, warn: (t) => deps.log?.warn(t), dryRun: deps.observer !== undefined, ...(deps.observer === undefined ? deps.antispamStores : {}) }));

  // HELO and RCPT: smtpserver.conf.
  let zmailer: ZmailerPolicyPhase | undefined;
  if (conf) {
    zmailer = zmailerPolicyPhase({ conf, ...(deps.loadAverage ? { loadAverage: deps.loadAverage } : {}) });
    phases.push(explainedZmailer(zmailer, note));
  }

  // connect … commit: smtpserver.conf's PARAM policydb (ZMailer's smtp-policy database).
  let policyDb: ReturnType<typeof policyDbPhase> | undefined;
  if (files.policyDb) {
    policyDb = policyDbPhase({ db: files.policyDb, ...(deps.dns ? { dns: deps.dns } : {}), isLocalDomain: (d) => deps.local.isLocalDomain(d), isLocalAddress: (ip) => deps.local.isLocalAddress(ip), hostname: config.hostname, ...(note ? { observer: note } : {}) });
    phases.push(policyDb);
  }
  phases.push(...(deps.extraPhases ?? []));

  // RCPT: the Obtuse rules file.
  let obtuse: ObtuseRulesPhase | undefined;
  if (files.rules) {
    obtuse = obtuseRulesPhase({
      rules: files.rules,
      ...(deps.dns ? { dns: obtuseDns(deps.dns) } : {}),
      // The ident user (RFC 1413), asked of the client only when a rule or message needs it.
      ident: deps.rulesIdent ?? sessionIdent(),
      ...(deps.obtuseDelays || config.smtp.notoDelayMs !== undefined || config.smtp.denyDelayMs !== undefined
        ? {
            delays: {
              ...(config.smtp.notoDelayMs !== undefined ? { notoMs: config.smtp.notoDelayMs } : {}),
              ...(config.smtp.denyDelayMs !== undefined ? { denyMs: config.smtp.denyDelayMs } : {}),
              ...deps.obtuseDelays,
            },
          }
        : {}),
    });
    phases.push(explainedObtuse(obtuse, note));
  }

  // commit: the content filter.
  let contentFilter: ContentFilter | undefined;
  if (conf?.contentFilter) {
    contentFilter = new ContentFilter({
      path: conf.contentFilter.path,
      cwd: config.queue.path,
      maxParallel: conf.contentFilter.maxParallel,
      ...(deps.contentFilterTimeoutMs !== undefined ? { timeoutMs: deps.contentFilterTimeoutMs } : {}),
    });
    phases.push(contentFilterPhase(contentFilter, conf.contentFilter.debug ? deps.log : undefined, policyDb ? (s) => policyDb.filtering(s) : undefined));
  }

  const policy = new Policy(phases, new RuleEngine(config, deps.tables, deps.local), { config, tables: deps.tables, users: deps.users }, deps.local, note, deps.probe);

  // What the ZMailer file changes in sessions and connections (its smtp options are in `config` already).
  let session: SessionRuntime = { ehlo: true, multilineReplies: true };
  let connection: ConnectionPolicy = {
    limits: { ...DEFAULT_CONNECTION_LIMITS, exempt: (ip) => deps.local.isLocalAddress(ip) },
    tarpit: NO_TARPIT,
    errors: DEFAULT_ERROR_LIMITS,
    minDataRate: LIMIT_DEFAULTS.minDataRate,
  };
  const style = deps.style;
  if (conf) {
    const defaultFlags: ReadonlySet<StyleFlag> = style?.kind === 'flags' ? style.flags : style?.kind === 'sloppy' ? new Set<StyleFlag>([...DEFAULT_STYLE, 'S']) : DEFAULT_STYLE;
    session = {
      ehlo: conf.ehlo,
      multilineReplies: conf.multilineReplies,
      greeting: (v) => expandHdr220(conf.hdr220, { hostname: v.hostname, clientAddress: v.clientAddress, localPort: v.localPort, version: POSTERN_VERSION, now: new Date() }),
      style: (helo) => styleFor(conf, helo, defaultFlags),
      ...(style?.kind === 'strict' ? { strict: true } : {}),
      ...(conf.allowSourceRoute ? { keepSourceRoute: true } : {}),
      received: { tlsMode: conf.received.tlsMode, tlsPeer: conf.received.tlsPeer, ident: conf.received.ident, whoson: conf.received.whoson, authUser: conf.received.authUser },
      // MSA-mode (RFC 6409): clients outside the trusted networks (this machine) must authenticate.
      // With a policydb, its relaycustnet + / fulltrustnet + networks are trusted too (ZMailer's MSA-mode).
      ...(conf.auth.msaMode ? { msaTrusted: (ip: string) => deps.local.isLocalAddress(ip) || (files.policyDb !== undefined && policyDbTrusts(files.policyDb, ip)) } : {}),
    };
    connection = {
      limits: zmailerConnectionLimits(conf),
      tarpit: zmailerTarpit(conf),
      errors: DEFAULT_ERROR_LIMITS,
      minDataRate: LIMIT_DEFAULTS.minDataRate,
      ...(conf.listenQueueSize !== undefined ? { backlog: conf.listenQueueSize } : {}),
      ...(conf.tcpRcvBufferSize !== undefined || conf.tcpXmitBufferSize !== undefined ? { socketBuffers: { ...(conf.tcpRcvBufferSize !== undefined ? { receive: conf.tcpRcvBufferSize } : {}), ...(conf.tcpXmitBufferSize !== undefined ? { send: conf.tcpXmitBufferSize } : {}) } } : {}),
    };
    for (const [names, why, always] of NOT_WIRED) {
      if (deps.frontEnd === 'smtpserver' && !always) continue;
      for (const g of conf.given) {
        if (names.some((n) => normalizeParamName(n) === normalizeParamName(g.name))) notes.push(`${g.pos.file}:${g.pos.line}: PARAM ${g.name} has no effect here: ${why}`);
      }
    }
  } else if (style !== undefined) {
    // -s without a ZMailer file: the style applies to every session.
    const flags: ReadonlySet<StyleFlag> = style.kind === 'flags' ? style.flags : style.kind === 'sloppy' ? new Set<StyleFlag>([...DEFAULT_STYLE, 'S']) : DEFAULT_STYLE;
    session = { ...session, style: () => flags, ...(style.kind === 'strict' ? { strict: true } : {}) };
  }

  // smtpd.conf's own limit statements have the last word.
  const o = config.smtp;
  connection = {
    ...connection,
    limits: {
      ...connection.limits,
      ...(o.maxConnections !== undefined ? { maxTotal: o.maxConnections } : {}),
      ...(o.maxConnectionsPerAddress !== undefined ? { maxPerClient: o.maxConnectionsPerAddress } : {}),
    },
    errors: {
      ...connection.errors,
      ...(o.softErrorLimit !== undefined ? { softLimit: o.softErrorLimit } : {}),
      ...(o.hardErrorLimit !== undefined ? { hardLimit: o.hardErrorLimit } : {}),
    },
    ...(o.minDataRate !== undefined ? { minDataRate: o.minDataRate } : {}),
    ...(deps.ident ? { ident: deps.ident } : {}),
    ...(deps.whoson ? { whoson: deps.whoson } : {}),
    ...(deps.gullible === true ? { gullible: true } : {}),
  };

  return {
    policy,
    session,
    connection,
    ...(obtuse ? { obtuse } : {}),
    ...(zmailer ? { zmailer } : {}),
    ...(contentFilter ? { contentFilter } : {}),
    notes,
  };
}

/* ------------------------------------------------------------- phases */

function loadPhase(max: number, load: () => number, hostname: string, note: PolicyObserver | undefined): PolicyPhase {
  return {
    name: 'load-average',
    explains: true,
    connect(): Verdict {
      const now = load();
      const r = loadAverageRefusal(max, now, hostname);
      const why = `load average ${now.toFixed(2)}, limit ${max}`;
      note?.({ phase: 'connect', source: 'load-average', why: r ? `${why}: too busy` : why });
      return r ? { kind: 'reject', reply: r, reason: `${why} (-L)`, disconnect: true } : PASS;
    },
  };
}

function explainedZmailer(z: ZmailerPolicyPhase, note: PolicyObserver | undefined): PolicyPhase {
  return {
    name: 'smtpserver.conf',
    explains: true,
    helo(s, helo) {
      const e = z.explainHelo(s, helo);
      note?.({ phase: 'helo', source: 'smtpserver.conf', why: e.why });
      return e.verdict;
    },
    rcpt(s, tx, rcpt) {
      const v = z.rcpt(s, tx, rcpt);
      if (v.kind === 'reject') note?.({ phase: 'rcpt', source: 'smtpserver.conf', why: v.reason });
      return v;
    },
  };
}

function explainedObtuse(o: ObtuseRulesPhase, note: PolicyObserver | undefined): PolicyPhase {
  return {
    name: 'rules-file',
    explains: true,
    async rcpt(s, tx, rcpt) {
      if (note === undefined) return o.rcpt(s, tx, rcpt);
      const e = await o.explain(s, tx, rcpt);
      const debug = e.debug.map((r) => `; debug ${r.pos.file}:${r.pos.line} matched`).join('');
      const delay = e.verdict.kind === 'reject' && e.verdict.delayMs ? ` (waits ${e.verdict.delayMs / 1000} s)` : '';
      note({ phase: 'rcpt', source: 'rules file', why: `${e.outcome}: ${e.why}${delay}${debug}` });
      return e.verdict;
    },
  };
}

/**
 * The content filter at commit: it gets the message as the spool's file,
 * by a path relative to the folder it runs in (the spool's incoming/ file
 * with the filesystem spool, as seed 000 describes).
 */
function contentFilterPhase(filter: ContentFilter, debugLog: MailLog | undefined, filtering?: (s: SessionFacts) => Promise<boolean | undefined>): PolicyPhase {
  return {
    name: 'content-filter',
    async commit(s, _tx, c) {
      if (c.msgid === undefined || c.body === undefined) return PASS;
      // policydb's "filtering -" (or a trusted network without "filtering +") skips the filter, as ZMailer.
      if (filtering !== undefined && (await filtering(s)) === false) return PASS;
      let file: BodyFile;
      try {
        file = await c.body.file();
      } catch (e) {
        return { kind: 'reject', reason: `content filter: cannot give it the message: ${(e as Error).message}`, reply: reply(451, '4.3.0', 'Temporary failure in content analysis, please try again later') };
      }
      const r: FilterResult = await filter.check(file.name, file.dir);
      debugLog?.event('smtp', 'content-filter', { session: s.id, msgid: c.msgid, disposition: r.disposition, reason: r.reason });
      switch (r.disposition) {
        case 'accept':
          return { kind: 'accept', reason: r.reason, ...(r.reply ? { reply: r.reply } : {}) };
        case 'freeze':
          return { kind: 'hold', reason: r.reason, ...(r.reply ? { reply: r.reply } : {}) };
        case 'discard':
          return { kind: 'discard', reason: r.reason, reply: r.reply ?? reply(250, '2.7.0', 'Message accepted') };
        case 'reject':
        case 'tempfail':
          return { kind: 'reject', reason: r.reason, reply: r.reply ?? reply(451, '4.3.0', 'Temporary failure in content analysis, please try again later') };
      }
    },
  };
}
