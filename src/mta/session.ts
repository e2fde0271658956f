/*
 * mta/session.ts — an outbound SMTP session, from connect to the point
 * where it can carry mail: greeting, EHLO (HELO fallback; LHLO for LMTP),
 * STARTTLS, EHLO again, AUTH. Transactions (transaction.ts) run on an open
 * session; one session carries several, RSET between them, and rests in
 * the pool (pool.ts) between tasks.
 *
 * TLS policies (RelayOptions.tls):
 *   none           never STARTTLS (smtp+notls://)
 *   opportunistic  STARTTLS when offered, certificate not verified; a
 *                  refused STARTTLS goes on in clear text, a failed
 *                  handshake is retried once on a new connection without
 *                  TLS (the server may simply have a broken TLS stack)
 *   required       STARTTLS must be offered and succeed, certificate
 *                  verified against the host name (smtp+tls://, `tls`,
 *                  legacy `relay via … tls`) unless `no-verify`
 *   smtps          TLS from the first byte (smtps://, port 465), verified
 *                  unless `no-verify`
 * Any TLS failure under a required policy is a temporary failure (4.7.x)
 * and the next host is tried.
 *
 * AUTH (RFC 4954): PLAIN with an initial response when offered, else
 * LOGIN; only over TLS unless the tuning allows clear text. A refused
 * authentication is a temporary failure (as Postfix's
 * smtp_sasl_auth_soft_bounce): fixing the credentials must not lose mail.
 * Passwords never reach the log or a trace.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { RelayOptions } from '../config/model.js';
import { ClientConnection, ClientError, type TlsInfo } from './client.js';
import { has, NO_CAPABILITIES, parseEhlo, type Capabilities } from './ehlo.js';
import { replyText, type ServerReply } from './reply-parser.js';
import type { Target, Verdict } from './route.js';
import type { Timeouts } from './options.js';
import { OUTBOUND_OPPORTUNISTIC_CIPHERS, OUTBOUND_STRICT_CIPHERS } from '../tls/ciphers.js';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface SessionSetup {
  readonly target: Target;
  readonly helo: string;
  readonly localAddress?: string;
  readonly tls: RelayOptions['tls'];
  /** Verify the certificate when TLS is required (false with `no-verify`). */
  readonly verify: boolean;
  /** The name the certificate must carry (the MX or smarthost name). */
  readonly servername: string;
  readonly ca?: readonly (string | Buffer)[];
  /** Client certificate (relay `pki NAME`). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly credentials?: Credentials;
  readonly allowPlaintextAuth: boolean;
  readonly lmtp: boolean;
  /** Refuse a server that greets with this name (mail would loop back to us). */
  readonly ourHostname?: string;
  readonly timeouts: Timeouts;
  readonly signal?: AbortSignal;
  readonly trace?: (line: string) => void;
  /** A TLS policy's check after the handshake (transport-security/): a reason fails the session (4.7.5, next host). */
  readonly tlsCheck?: (peer: NonNullable<TlsInfo['peer']>) => string | undefined;
}

/** A session could not be set up (or broke): what to record, and whether another host may do better. */
export class SessionFailure extends Error {
  constructor(
    readonly verdict: Verdict,
    readonly nextHost: boolean,
    readonly retryWithoutTls = false,
    readonly reply?: ServerReply,
  ) {
    super(verdict.detail);
    this.name = 'SessionFailure';
  }
}

/** "mx.example.org[192.0.2.1]:25" — how a peer is named in details (Postfix style). */
export function peerName(t: Target): string {
  const addr = isIP(t.address) === 6 ? `[${t.address}]` : t.address;
  return t.host === t.address ? `[${t.address}]:${t.port}` : `${t.host}[${addr}]:${t.port}`;
}

/** A ClientError as a verdict. */
export function errorVerdict(e: ClientError, t: Target, during: string): Verdict {
  const who = peerName(t);
  switch (e.kind) {
    case 'connect':
      return { status: 'tempfail', enhanced: '4.4.1', detail: `connect to ${who}: ${e.message}` };
    case 'timeout':
      return { status: 'tempfail', enhanced: '4.4.2', detail: `conversation with ${who} timed out ${during}: ${e.message}` };
    case 'tls':
      return { status: 'tempfail', enhanced: '4.7.5', detail: `${who}: ${e.message}` };
    case 'protocol':
      return { status: 'tempfail', enhanced: '4.5.0', detail: `protocol error with ${who} ${during}: ${e.message}` };
    case 'aborted':
      return { status: 'tempfail', enhanced: '4.3.0', detail: `delivery to ${who} interrupted ${during}` };
    case 'lost':
      return { status: 'tempfail', enhanced: '4.4.2', detail: `lost connection with ${who} ${during}` };
  }
}

/** "host X said: 550 … (in reply to RCPT TO command)". */
export function saidVerdict(t: Target, r: ServerReply, command: string): Verdict {
  const status = r.code >= 500 ? 'permfail' : 'tempfail';
  const enhanced = r.enhanced ?? `${r.code >= 500 ? 5 : 4}.0.0`;
  return { status, enhanced, detail: `host ${peerName(t)} said: ${replyText(r)} (in reply to ${command} command)` };
}

export class ClientSession {
  readonly id = randomBytes(4).toString('hex');
  caps: Capabilities = NO_CAPABILITIES;
  messages = 0;
  authUser: string | undefined;
  private constructor(
    readonly setup: SessionSetup,
    readonly conn: ClientConnection,
  ) {}

  get target(): Target {
    return this.setup.target;
  }

  get tls(): TlsInfo | undefined {
    return this.conn.tls;
  }

  get alive(): boolean {
    return this.conn.alive;
  }

  /** Connect and get the session ready for MAIL; throws SessionFailure. */
  static async open(s: SessionSetup): Promise<ClientSession> {
    const t = s.target;
    let conn: ClientConnection;
    try {
      conn = await ClientConnection.connect({
        address: t.address,
        port: t.port,
        localAddress: s.localAddress,
        timeoutMs: s.timeouts.connect,
        signal: s.signal,
        ...(s.tls === 'smtps' ? { tls: tlsOptions(s, s.verify) } : {}),
      });
    } catch (e) {
      if (e instanceof ClientError) throw new SessionFailure(errorVerdict(e, t, 'while connecting'), e.kind !== 'aborted');
      throw e;
    }
    const session = new ClientSession(s, conn);
    try {
      await session.handshake();
      return session;
    } catch (e) {
      conn.destroy();
      if (e instanceof ClientError) throw new SessionFailure(errorVerdict(e, t, `during ${session.stage}`), e.kind !== 'aborted', e.kind === 'tls' && s.tls === 'opportunistic');
      throw e;
    }
  }

  private stage = 'the greeting';

  private async handshake(): Promise<void> {
    const s = this.setup;
    const t = s.target;
    const greeting = await this.conn.read(s.timeouts.greeting, 'waiting for the greeting');
    this.trace(`<<< ${replyText(greeting)}`);
    if (greeting.code !== 220) {
      this.quitQuietly();
      throw new SessionFailure({ status: 'tempfail', enhanced: '4.4.2', detail: `host ${peerName(t)} refused to talk to me: ${replyText(greeting)}` }, true, false, greeting);
    }
    const greeter = (greeting.lines[0] ?? '').split(/\s+/)[0]?.toLowerCase() ?? '';
    if (s.ourHostname !== undefined && greeter !== '' && greeter === s.ourHostname.toLowerCase()) {
      this.quitQuietly();
      throw new SessionFailure({ status: 'permfail', enhanced: '5.4.6', detail: `mail loops back to myself: host ${peerName(t)} greeted me with my own hostname ${greeter}` }, false);
    }
    this.stage = s.lmtp ? 'LHLO' : 'EHLO';
    await this.hello();

    if (s.tls === 'required' || (s.tls === 'opportunistic' && has(this.caps, 'STARTTLS'))) {
      if (!has(this.caps, 'STARTTLS')) {
        this.quitQuietly();
        throw new SessionFailure({ status: 'tempfail', enhanced: '4.7.4', detail: `TLS is required, but was not offered by host ${peerName(t)}` }, true);
      }
      this.stage = 'STARTTLS';
      const r = await this.command('STARTTLS', s.timeouts.command, 'STARTTLS');
      if (r.code !== 220) {
        if (s.tls === 'required') {
          this.quitQuietly();
          throw new SessionFailure({ status: 'tempfail', enhanced: '4.7.5', detail: `host ${peerName(t)} refused STARTTLS: ${replyText(r)}` }, true, false, r);
        }
        this.trace('STARTTLS refused: going on without TLS');
      } else {
        const info = await this.conn.startTls(tlsOptions(s, s.tls === 'required' && s.verify), s.timeouts.command);
        this.trace(`TLS ${info.version} ${info.cipher} verified=${info.verified}`);
        const refused = info.peer !== undefined ? s.tlsCheck?.(info.peer) : undefined;
        if (refused !== undefined) {
          this.quitQuietly();
          throw new SessionFailure({ status: 'tempfail', enhanced: '4.7.5', detail: refused }, true);
        }
        this.stage = `${s.lmtp ? 'LHLO' : 'EHLO'} after STARTTLS`;
        await this.hello();
      }
    }

    if (s.credentials !== undefined) {
      this.stage = 'AUTH';
      await this.authenticate(s.credentials);
    }
    this.stage = 'MAIL';
  }

  private async hello(): Promise<void> {
    const s = this.setup;
    const verb = s.lmtp ? 'LHLO' : 'EHLO';
    const r = await this.command(`${verb} ${s.helo}`, s.timeouts.command, verb);
    if (r.code === 250) {
      this.caps = parseEhlo(r);
      return;
    }
    if (!s.lmtp && r.code >= 500) {
      const h = await this.command(`HELO ${s.helo}`, s.timeouts.command, 'HELO');
      if (h.code === 250) {
        this.caps = NO_CAPABILITIES;
        return;
      }
      this.quitQuietly();
      throw new SessionFailure(hostRefused(s.target, h, 'HELO'), true, false, h);
    }
    this.quitQuietly();
    throw new SessionFailure(hostRefused(s.target, r, verb), true, false, r);
  }

  private async authenticate(c: Credentials): Promise<void> {
    const s = this.setup;
    const t = s.target;
    if (this.conn.tls === undefined && !s.allowPlaintextAuth) {
      this.quitQuietly();
      throw new SessionFailure({ status: 'tempfail', enhanced: '4.7.0', detail: `not sending credentials to ${peerName(t)} without TLS (it did not offer STARTTLS or TLS is off)` }, true);
    }
    const mechs = this.caps.auth;
    let r: ServerReply;
    if (mechs.has('PLAIN')) {
      const ir = Buffer.from(`\0${c.user}\0${c.password}`, 'utf8').toString('base64');
      r = await this.command(`AUTH PLAIN ${ir}`, s.timeouts.command, 'AUTH', 'AUTH PLAIN ****');
      if (r.code === 334) r = await this.command(ir, s.timeouts.command, 'AUTH', '****');
    } else if (mechs.has('LOGIN')) {
      r = await this.command('AUTH LOGIN', s.timeouts.command, 'AUTH');
      if (r.code === 334) r = await this.command(Buffer.from(c.user, 'utf8').toString('base64'), s.timeouts.command, 'AUTH', '**** (user)');
      if (r.code === 334) r = await this.command(Buffer.from(c.password, 'utf8').toString('base64'), s.timeouts.command, 'AUTH', '**** (password)');
    } else {
      this.quitQuietly();
      const offered = mechs.size > 0 ? `it offers ${[...mechs].join(' ')}` : 'it offers no AUTH';
      throw new SessionFailure({ status: 'tempfail', enhanced: '4.7.0', detail: `cannot authenticate to ${peerName(t)}: PLAIN or LOGIN needed, ${offered}` }, true);
    }
    if (r.code !== 235) {
      if (r.code === 334) await this.command('*', s.timeouts.command, 'AUTH').catch(() => undefined);
      this.quitQuietly();
      const enhanced = r.enhanced !== undefined ? `4${r.enhanced.slice(1)}` : '4.7.0';
      throw new SessionFailure({ status: 'tempfail', enhanced, detail: `authentication as ${c.user} failed: host ${peerName(t)} said: ${replyText(r)}` }, true, false, r);
    }
    this.authUser = c.user;
  }

  /** Send one command line and read its reply. */
  async command(line: string, timeoutMs: number, what: string, shown = line): Promise<ServerReply> {
    this.trace(`>>> ${shown}`);
    await this.conn.write(`${line}\r\n`, timeoutMs, what);
    const r = await this.conn.read(timeoutMs, `${what} command`);
    this.trace(`<<< ${replyText(r)}`);
    return r;
  }

  /** Before another transaction on a cached session: true when the server is still there and willing. */
  async rset(): Promise<boolean> {
    if (!this.conn.alive) return false;
    try {
      const r = await this.command('RSET', this.setup.timeouts.rset, 'RSET');
      return r.code === 250;
    } catch {
      return false;
    }
  }

  async quit(): Promise<void> {
    if (!this.conn.alive) return;
    try {
      await this.command('QUIT', this.setup.timeouts.quit, 'QUIT');
    } catch {
      /* closing anyway */
    }
    this.conn.end();
  }

  destroy(): void {
    this.conn.destroy();
  }

  trace(line: string): void {
    this.setup.trace?.(`${this.id} ${line}`);
  }

  private quitQuietly(): void {
    void this.quit();
  }
}

function hostRefused(t: Target, r: ServerReply, verb: string): Verdict {
  return { status: 'tempfail', enhanced: r.enhanced !== undefined ? `4${r.enhanced.slice(1)}` : '4.0.0', detail: `host ${peerName(t)} refused ${verb}: ${replyText(r)}` };
}

/**
 * Opportunistic STARTTLS takes older suites too (after the strong ones): a weaker encrypted session
 * beats the clear-text retry a failed handshake leads to. Required TLS and smtps take only the
 * listeners' default set (tls/ciphers.ts says why).
 */
function tlsOptions(s: SessionSetup, verify: boolean): tls.ConnectionOptions {
  const name = s.servername;
  return {
    ...(isIP(name) === 0 ? { servername: name } : {}),
    minVersion: 'TLSv1.2',
    ciphers: s.tls === 'opportunistic' ? OUTBOUND_OPPORTUNISTIC_CIPHERS : OUTBOUND_STRICT_CIPHERS,
    host: name,
    // A TLS policy checks the certificate itself after the handshake (the chain by Node, names and DANE by the policy).
    rejectUnauthorized: verify && s.tlsCheck === undefined,
    ...(s.tlsCheck !== undefined ? { checkServerIdentity: () => undefined } : {}),
    ...(s.ca !== undefined ? { ca: [...tls.rootCertificates, ...s.ca] } : {}),
    ...(s.cert !== undefined && s.key !== undefined ? { cert: s.cert, key: s.key } : {}),
  };
}
