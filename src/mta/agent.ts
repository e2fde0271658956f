/*
 * mta/agent.ts — RelayAgent, the delivery agent of `relay` actions: the
 * scheduler hands it one message and the recipients that share a
 * destination (key()), it answers one result per recipient.
 *
 * For each task: credentials (when the action has `auth`), an idle cached
 * session for the destination if there is one (pool.ts; no DNS lookup
 * then), else the route (route.ts: smarthost, address literal or MX hosts)
 * and its targets in order, until every recipient has an outcome or a
 * failure tells that no other host may be tried. Whatever is left is a
 * temporary failure with the last error seen.
 *
 * Mail log (log/maillog.ts), one line per event:
 *   mta connecting address=127.0.0.3:25 host=mx1.example.org session=…
 *   mta connected address=… host=… tls=TLSv1.3 verified=no session=…
 *   mta connection-failed address=… host=… error="…"
 *   mta delivery evpid=… from=<…> to=<…> relay="mx1.example.org [127.0.0.3]" delay=1s result="Ok" stat="250 2.0.0 Ok"
 *   mta disconnected address=… host=… reason=idle messages=3 session=…
 * Remote text reaches the log and the spool only through oneLine() (one
 * line, no control characters, bounded) and the log's own cleaning: a
 * hostile multi-line reply cannot forge a log line or an envelope record
 * (OpenSMTPD's CVE-2020-8794).
 */
import { readSecret } from '../privsep/secrets.js';
import { isIP } from 'node:net';
import type { Action, Config, RelayOptions } from '../config/model.js';
import { oneLine, type DeliveryAgent, type DeliveryStatus, type DeliveryTask, type RecipientResult } from '../delivery/agent.js';
import type { MailLog } from '../log/maillog.js';
import type { EnvelopeRecipient } from '../mail/envelope.js';
import type { Stats } from '../stats.js';
import { rewriteSender } from './commands.js';
import type { MxDns } from '../dns/mx.js';
import { tuning as makeTuning, type RelayTuning, type RelayTuningInput } from './options.js';
import { SessionPool } from './pool.js';
import { HostTable, type HostView } from './hosts.js';
import { replyText, type ServerReply } from './reply-parser.js';
import { defaultPort, resolveRoute, type Route, type SelfNames, type Target, type Verdict } from './route.js';
import { ClientSession, SessionFailure, type Credentials, type SessionSetup } from './session.js';
import { sendMessage } from './transaction.js';
import { formatDuration } from '../time/duration.js';
import type { OutboundSigner } from '../mailauth/sign/signer.js';
import type { TransportSecurity } from '../transport-security/engine.js';

/** A recipient's result; `relayed` asks the bounce subsystem for a "relayed" success DSN (RFC 3461 §5.2.2.2). */
export type RelayResult = RecipientResult & { readonly relayed?: true };

export type CredentialsAnswer = Credentials | undefined | { readonly error: string };
/** Looks up relay credentials: (table name, key) where key is the URL's label, else the relay host name. */
export type CredentialsLookup = (table: string, key: string) => CredentialsAnswer | Promise<CredentialsAnswer>;

export interface RelayAgentOptions {
  readonly config: Config;
  readonly log: MailLog;
  readonly stats: Stats;
  /** dns/resolver.ts Resolver (its `raw` node:dns Resolver, with the configured servers). */
  readonly resolver: { readonly raw: MxDns };
  /** policy/localnames.ts LocalNames: our names and addresses, for loop detection. */
  readonly local: SelfNames;
  readonly credentials: CredentialsLookup;
  /** Limits and timeouts (options.ts); defaults suit production, tests shorten them. */
  readonly tuning?: RelayTuningInput;
  /** `mailauth sign`: DKIM signatures added before the message is sent (mailauth/sign/). */
  readonly signer?: Pick<OutboundSigner, 'prepare'>;
  /** TLS policies: the `mta tls-policy` table, MTA-STS, DANE, TLS-RPT (transport-security/engine.ts). */
  readonly transport?: TransportSecurity;
}

const DEFAULT_RELAY: RelayOptions = { backup: false, tls: 'opportunistic', tlsNoVerify: false, srs: false };

interface Decided {
  readonly verdict: Omit<Verdict, 'status'> & { readonly status: DeliveryStatus };
  readonly reply?: ServerReply;
  readonly relayed?: true;
  readonly target?: Target;
}

/** The domain of "local@domain" (lower case); "" when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

function addressPort(t: Target): string {
  return isIP(t.address) === 6 ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
}

export class RelayAgent implements DeliveryAgent {
  readonly kind = 'mta' as const;
  private readonly tuning: RelayTuning;
  private readonly pool: SessionPool;
  private readonly pkiCache = new Map<string, { cert: Buffer; key: Buffer }>();
  private readonly warned = new Set<string>();
  /** Remote hosts talked to (`smtpctl show hosts`). */
  private readonly hostTable = new HostTable();

  constructor(private o: RelayAgentOptions) {
    this.tuning = makeTuning(o.tuning);
    this.pool = new SessionPool(this.tuning.idleMs, this.tuning.maxIdlePerDestination, (s, reason) => this.disconnected(s, reason));
  }

  /**
   * `smtpctl reload`: the next deliveries use the new configuration — and,
   * when given, the signer and TLS policy engine built from it (undefined in
   * them: none any more). Deliveries under way finish with what they had.
   */
  setConfig(config: Config, security?: { readonly signer: RelayAgentOptions['signer']; readonly transport: RelayAgentOptions['transport'] }): void {
    if (security === undefined) {
      this.o = { ...this.o, config };
      return;
    }
    const { signer: _s, transport: _t, ...rest } = this.o;
    this.o = { ...rest, config, ...(security.signer ? { signer: security.signer } : {}), ...(security.transport ? { transport: security.transport } : {}) };
    // Idle sessions were opened under the old TLS policies: none is reused.
    if (security.transport !== _t) void this.pool.drop('tls policy reloaded');
  }

  /** CA certificates to verify the relay with: the action's `ca NAME`, else the test tuning's, else the system's. */
  private caFor(relay: RelayOptions): { ca?: readonly (string | Buffer)[] } {
    const name = relay.ca;
    if (name !== undefined) {
      const file = this.o.config.ca?.get(name)?.cert;
      if (file !== undefined) {
        try {
          return { ca: [readSecret(file)] };
        } catch (e) {
          this.o.log.warn(`relay: ca ${name}: ${(e as Error).message}`);
        }
      }
    }
    const t = this.tuning.tlsCa;
    return t === undefined ? {} : { ca: typeof t === 'string' || Buffer.isBuffer(t) ? [t] : t };
  }

  /** The destination: the smarthost, or the recipient's domain (one task, one connection per destination). */
  key(action: Action, rcpt: EnvelopeRecipient): string {
    const h = action.relay?.host;
    if (h !== undefined) return `relay:${h.scheme}://${h.host.toLowerCase()}:${h.port ?? defaultPort(h.scheme)}`;
    return `mx:${domainOf(rcpt.address)}`;
  }

  /** Idle sessions the pool keeps (tests, `show stats`). */
  get idleSessions(): number {
    return this.pool.size;
  }

  /** QUIT the idle sessions (daemon shutdown). */
  async close(): Promise<void> {
    await this.pool.close();
  }

  async deliver(task: DeliveryTask): Promise<RelayResult[]> {
    // Recipients of one task share a key; should they not, each group is routed on its own.
    const groups = new Map<string, EnvelopeRecipient[]>();
    for (const r of task.recipients) {
      const k = this.key(task.action, r);
      const g = groups.get(k);
      if (g === undefined) groups.set(k, [r]);
      else g.push(r);
    }
    const decided = new Map<string, Decided>();
    for (const rcpts of groups.values()) {
      try {
        await this.deliverGroup(task, rcpts, decided);
      } catch (e) {
        // A bug must not lose mail nor crash the daemon: whatever is undecided is retried later.
        this.o.log.error(`mta: unexpected error delivering ${task.envelope.msgid}: ${(e as Error).stack ?? String(e)}`);
        for (const r of rcpts) if (!decided.has(r.evpid)) decided.set(r.evpid, { verdict: { status: 'tempfail', enhanced: '4.3.0', detail: `internal error: ${(e as Error).message}` } });
      }
    }
    return task.recipients.map((r) => this.result(task, r, decided.get(r.evpid)));
  }

  private async deliverGroup(task: DeliveryTask, rcpts: readonly EnvelopeRecipient[], decided: Map<string, Decided>): Promise<void> {
    const relay = task.action.relay ?? DEFAULT_RELAY;
    const cfg = this.o.config;
    const t = this.tuning;
    const decideAll = (list: readonly EnvelopeRecipient[], v: Verdict): void => {
      for (const r of list) if (!decided.has(r.evpid)) decided.set(r.evpid, { verdict: v });
    };
    if (task.signal.aborted) return decideAll(rcpts, { status: 'tempfail', enhanced: '4.3.0', detail: 'delivery interrupted before it started' });
    const domain = domainOf(rcpts[0]?.address ?? '');

    // Credentials first: without them there is no point in connecting.
    let credentials: Credentials | undefined;
    if (relay.authTable !== undefined) {
      const key = relay.host?.label ?? relay.host?.host ?? domain;
      let c: CredentialsAnswer;
      try {
        c = await this.o.credentials(relay.authTable, key);
      } catch (e) {
        c = { error: (e as Error).message };
      }
      if (c === undefined) return decideAll(rcpts, { status: 'tempfail', enhanced: '4.7.0', detail: `no credentials for relay ${key} in table ${relay.authTable}` });
      if ('error' in c) return decideAll(rcpts, { status: 'tempfail', enhanced: '4.3.0', detail: `lookup of relay credentials in table ${relay.authTable} failed: ${c.error}` });
      credentials = c;
    }
    let pki: { cert: Buffer; key: Buffer } | undefined;
    if (relay.pki !== undefined) {
      try {
        pki = this.loadPki(relay.pki);
      } catch (e) {
        return decideAll(rcpts, { status: 'tempfail', enhanced: '4.3.0', detail: `cannot load client certificate (pki ${relay.pki}): ${(e as Error).message}` });
      }
    }

    const env = task.envelope;
    // DKIM: the message is read and signed once, then sent from memory to every host tried.
    let openBody = (): ReturnType<DeliveryTask['openBody']> => task.openBody();
    if (this.o.signer !== undefined) {
      const s = await this.o.signer.prepare(() => task.openBody(), env.size + 64 * 1024);
      if (s.kind === 'error') {
        this.o.log.event('mta', 'dkim-failed', { msgid: env.msgid, error: s.reason });
        return decideAll(rcpts, { status: 'tempfail', enhanced: '4.7.0', detail: s.reason });
      }
      if (s.kind === 'signed') this.o.log.event('mta', 'dkim-signed', { msgid: env.msgid, keys: s.signatures });
      openBody = s.open;
    }
    const sender = rewriteSender(env.sender, relay.mailFrom);
    const srcs = relay.src !== undefined ? this.sourceAddresses(relay.src) : [];
    const poolKey = [
      this.key(task.action, rcpts[0] as EnvelopeRecipient),
      relay.tls,
      relay.tlsNoVerify ? 'no-verify' : 'verify',
      relay.authTable ?? '',
      credentials?.user ?? '',
      relay.helo ?? '',
      relay.heloSrc ?? '',
      relay.src ?? '',
      relay.pki ?? '',
    ].join('|');
    let pending: EnvelopeRecipient[] = [...rcpts];
    let last: Verdict | undefined;

    const run = async (session: ClientSession, cached = false): Promise<boolean> => {
      session.conn.watch(task.signal);
      const tx = await sendMessage(session, { envelope: env, recipients: pending, sender, openBody, tuning: t, rsetFirst: cached, headerRules: this.o.config.antispam?.smtpHeaderChecks?.rules });
      for (const o of tx.outcomes) {
        decided.set(o.rcpt.evpid, { verdict: o, target: session.target, ...(o.reply !== undefined ? { reply: o.reply } : {}), ...(o.relayed ? { relayed: true as const } : {}) });
      }
      if (tx.failure !== undefined) last = tx.failure;
      if (tx.outcomes.some((o) => o.status === 'ok')) this.hostTable.sent(addressPort(session.target), session.target.host);
      pending = [...tx.undecided];
      session.conn.watch(undefined);
      if (session.alive && tx.failure === undefined && session.messages < t.maxMessagesPerSession) this.pool.put(poolKey, session);
      else void this.pool.retire(session, tx.failure !== undefined ? oneLine(tx.failure.detail, 200) : session.alive ? 'session message limit' : 'connection lost');
      if (!tx.nextHost && pending.length > 0) {
        for (const r of pending) decided.set(r.evpid, { verdict: tx.failure ?? { status: 'tempfail', enhanced: '4.0.0', detail: 'delivery not completed' }, target: session.target });
        pending = [];
      }
      return tx.nextHost;
    };

    // A cached session to this destination first (it was opened through a route that passed the loop checks).
    // Its RSET travels with MAIL, RCPT and DATA; a session found gone leaves every recipient for a new one.
    const cached = this.pool.take(poolKey);
    if (cached !== undefined) {
      this.o.stats.inc('mta.session.reused');
      await run(cached, true);
    }

    if (pending.length === 0) return;

    // The route, after the cache: a warm connection needs no DNS lookup (as Postfix's connection cache by destination).
    let route: Route;
    try {
      route = await resolveRoute(relay, domain, this.o.resolver.raw, this.o.local, cfg.hostname, {
        port: t.port,
        maxHosts: t.maxHosts,
        maxAddresses: t.maxAddresses,
        family: t.family,
        ...(t.rnd !== undefined ? { rnd: t.rnd } : {}),
      });
    } catch (e) {
      route = { kind: 'fail', status: 'tempfail', enhanced: '4.4.3', detail: `routing failed: ${(e as Error).message}` };
    }
    if (route.kind === 'fail') return decideAll(pending, route);
    const smarthost = route.smarthost;
    const plan = await this.o.transport?.plan(domain, smarthost ? relay.host?.host : undefined);
    if (plan !== undefined && 'fail' in plan) return decideAll(pending, plan.fail);

    let plaintextRetry: Target | undefined;
    for (let i = 0; i < route.targets.length && pending.length > 0; i++) {
      if (task.signal.aborted) {
        last = { status: 'tempfail', enhanced: '4.3.0', detail: 'delivery interrupted' };
        break;
      }
      const target = route.targets[i] as Target;
      const noTls = plaintextRetry === target;
      const src = srcs.find((a) => isIP(a) === isIP(target.address));
      const tp = await plan?.forTarget(target);
      if (tp?.skip !== undefined) {
        last = tp.skip;
        continue;
      }
      const setup: SessionSetup = {
        target,
        helo: relay.helo ?? this.heloFor(relay, src) ?? cfg.hostname,
        ...(src !== undefined ? { localAddress: src } : {}),
        tls: noTls ? 'none' : (tp?.tls ?? relay.tls),
        ...(tp?.check !== undefined ? { tlsCheck: tp.check } : {}),
        verify: !relay.tlsNoVerify,
        servername: target.host,
        ...this.caFor(relay),
        ...(pki !== undefined ? { cert: pki.cert, key: pki.key } : {}),
        ...(credentials !== undefined ? { credentials } : {}),
        allowPlaintextAuth: t.allowPlaintextAuth || relay.authOverPlaintext === true,
        lmtp: relay.host?.scheme === 'lmtp',
        ...(smarthost ? {} : { ourHostname: cfg.hostname }),
        timeouts: t.timeouts,
        signal: task.signal,
        ...(this.o.log.tracing('mta') ? { trace: (l: string) => this.o.log.trace('mta', l) } : {}),
      };
      this.o.log.event('mta', 'connecting', { address: addressPort(target), host: target.host, ...(noTls ? { tls: 'off (retry after a failed handshake)' } : {}) });
      let session: ClientSession;
      try {
        session = await ClientSession.open(setup);
      } catch (e) {
        if (!(e instanceof SessionFailure)) throw e;
        last = e.verdict;
        tp?.failed(e.verdict.enhanced, e.verdict.detail, src);
        this.o.stats.inc('mta.session.failed');
        this.o.log.event('mta', 'connection-failed', { address: addressPort(target), host: target.host, error: oneLine(e.verdict.detail) });
        this.hostTable.failed(addressPort(target), target.host, oneLine(e.verdict.detail, 200));
        if (e.retryWithoutTls && plaintextRetry === undefined) {
          plaintextRetry = target;
          i--;
          continue;
        }
        if (!e.nextHost) {
          decideAll(pending, e.verdict);
          pending = [];
          break;
        }
        continue;
      }
      tp?.ok(src, session.tls !== undefined);
      this.o.stats.inc('mta.session');
      this.o.stats.inc('mta.session.active');
      this.hostTable.connected(addressPort(target), target.host);
      const info = session.tls;
      this.o.log.event('mta', 'connected', {
        address: addressPort(target),
        host: target.host,
        tls: info !== undefined ? `${info.version}:${info.cipher}` : 'none',
        ...(info !== undefined ? { verified: info.verified ? 'yes' : 'no' } : {}),
        ...(tp !== undefined && tp.policy !== 'default' ? { 'tls-policy': tp.policy } : {}),
        ...(session.authUser !== undefined ? { auth: session.authUser } : {}),
        session: session.id,
      });
      if (!(await run(session))) break;
    }
    decideAll(pending, last ?? { status: 'tempfail', enhanced: '4.4.1', detail: 'no mail exchanger could be reached' });
  }

  /** `smtpctl show hosts`: the remote hosts talked to since the start. */
  hosts(): HostView[] {
    return this.hostTable.list();
  }

  /** `smtpctl show routes`: the destinations that have sessions kept for reuse. */
  routes(): { destination: string; idle: number }[] {
    // A pool key is the scheduler's destination key, then the options that shape a session.
    const by = new Map<string, number>();
    for (const [key, idle] of this.pool.idleCounts()) {
      const bar = key.indexOf('|');
      const destination = bar < 0 ? key : key.slice(0, bar);
      by.set(destination, (by.get(destination) ?? 0) + idle);
    }
    return [...by].map(([destination, idle]) => ({ destination, idle })).sort((a, b) => a.destination.localeCompare(b.destination));
  }

  private disconnected(s: ClientSession, reason: string): void {
    this.o.stats.dec('mta.session.active');
    this.hostTable.disconnected(addressPort(s.target), s.target.host);
    this.o.log.event('mta', 'disconnected', { address: addressPort(s.target), host: s.target.host, reason, messages: s.messages, session: s.id });
  }

  private result(task: DeliveryTask, rcpt: EnvelopeRecipient, d: Decided | undefined): RelayResult {
    const v = d?.verdict ?? { status: 'tempfail', enhanced: '4.0.0', detail: 'delivery not attempted' };
    const r: RelayResult = {
      evpid: rcpt.evpid,
      status: v.status,
      enhanced: v.enhanced,
      detail: oneLine(v.detail),
      ...(d?.target !== undefined && d.reply !== undefined ? { remoteMta: oneLine(`dns; ${d.target.host}`) } : {}),
      ...(d?.reply !== undefined ? { diagnostic: oneLine(`smtp; ${replyText(d.reply)}`) } : {}),
      ...(d?.relayed ? { relayed: true as const } : {}),
    };
    this.o.stats.inc(`mta.delivery.${v.status}`);
    const result = v.status === 'ok' ? 'Ok' : v.status === 'tempfail' ? 'TempFail' : 'PermFail';
    this.o.log.event('mta', 'delivery', {
      evpid: rcpt.evpid,
      from: `<${task.envelope.sender}>`,
      to: `<${rcpt.address}>`,
      relay: d?.target !== undefined ? `${d.target.host} [${d.target.address}]` : undefined,
      delay: formatDuration(Date.now() - task.envelope.arrival),
      result,
      stat: d?.reply !== undefined ? oneLine(replyText(d.reply), 256) : oneLine(v.detail, 256),
    });
    return r;
  }

  private loadPki(name: string): { cert: Buffer; key: Buffer } {
    const hit = this.pkiCache.get(name);
    if (hit !== undefined) return hit;
    const p = this.o.config.pki.get(name);
    if (p?.cert === undefined || p.key === undefined) throw new Error(`pki ${name} has no certificate and key`);
    // Keys may be root's: under privilege separation they were read before the SMTP side gave up root (privsep/secrets.ts).
    const v = { cert: readSecret(p.cert), key: readSecret(p.key) };
    this.pkiCache.set(name, v);
    return v;
  }

  /** The addresses of a `src` table (list values or map keys; networks of one address). */
  private sourceAddresses(table: string): string[] {
    const t = this.o.config.tables.get(table);
    const values = t?.kind === 'list' ? [...t.values] : t?.kind === 'map' ? [...t.entries.keys()] : [];
    if (t !== undefined && t.kind !== 'list' && t.kind !== 'map') this.warnOnce(`src-${table}`, `relay src table ${table}: only inline tables are supported for source addresses; using the default`);
    return values.map((v) => v.replace(/\/(32|128)$/, '')).filter((v) => isIP(v) !== 0);
  }

  private heloFor(relay: RelayOptions, src: string | undefined): string | undefined {
    if (relay.heloSrc === undefined || src === undefined) return undefined;
    const t = this.o.config.tables.get(relay.heloSrc);
    return t?.kind === 'map' ? t.entries.get(src) : undefined;
  }

  private warnOnce(key: string, text: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.o.log.warn(text);
  }
}
