/*
 * config/zmailer/params.ts — the PARAM entries of smtpserver.conf.
 *
 * Each PARAM is a row of PARAMS: its names (compared without case, "-" or
 * "_", so "max-unknown-commands", "maxunknowncommands" and
 * "Max_Unknown_Commands" are one), how many arguments it takes, and what
 * it sets in the typed ZmailerConf — or why Postern does not support it.
 * A PARAM of the manual that Postern does otherwise loads with a warning
 * (its `note`) saying what happens instead. An unsupported PARAM (outside
 * the manual) is an error, never silently ignored; an unknown one
 * is a different error (with a suggestion when the name is close to one).
 *
 * Values and defaults follow ZMailer's smtpserver(8) manual (seed 000) and
 * its cfgread.c; where the manual and the code disagree the manual wins
 * (RcptLimitCount defaults to 100, "as RFC 821 mandates").
 *
 * Why this file is long (~490 lines): it is one table, a row per PARAM of
 * the seed's manual with its arguments and effect; a table split across
 * files is harder to check against the manual.
 */
import type { Position } from '../model.js';
import type { HeloPattern } from './helo-patterns.js';
import type { TarpitSettings } from '../limits.js';

export type ZmailerExtension = '8BITMIME' | 'CHUNKING' | 'DSN' | 'ENHANCEDSTATUSCODES' | 'ETRN' | 'PIPELINING';

export type BindAddress =
  | { readonly kind: 'address'; readonly address: string; readonly family: 4 | 6 }
  | { readonly kind: 'any'; readonly family: 4 | 6 }
  | { readonly kind: 'interface'; readonly name: string };

export interface ZmailerConf {
  readonly file: string;
  /** PARAM maxsize: largest message, bytes; 0 = no limit (same as -M). */
  readonly maxSize: number;
  /** PARAM min-availspace: refuse mail below this many free kilobytes in the spool (at least 1000). */
  readonly minAvailSpaceKb: number;
  /** PARAM max-error-recipients: recipients allowed with MAIL FROM:<>. */
  readonly maxErrorRecipients: number;
  /** PARAM MaxSameIpSource: simultaneous connections from one address. */
  readonly maxSameIpSource: number;
  /** PARAM MaxParallelConnections: simultaneous connections in total. */
  readonly maxParallelConnections: number;
  /** PARAM ListenQueueSize: the listen(2) backlog; undefined = Node's default. */
  readonly listenQueueSize?: number;
  /** PARAM RcptLimitCount: recipients per transaction (at least 100). */
  readonly rcptLimitCount: number;
  readonly bindPort?: number;
  readonly bindAddresses: readonly BindAddress[];
  readonly vrfy: boolean;
  readonly expn: boolean;
  /** PARAM NoEHLO turns EHLO off (HELO only). */
  readonly ehlo: boolean;
  readonly disabledExtensions: ReadonlySet<ZmailerExtension>;
  /** PARAM no-multiline-replies: one-line replies (except the EHLO list). */
  readonly multilineReplies: boolean;
  /** PARAM hdr220 lines (with %-tags; see hdr220.ts); empty = the default greeting. */
  readonly hdr220: readonly string[];
  /** PARAM help lines. */
  readonly help: readonly string[];
  readonly tarpit: TarpitSettings;
  readonly maxUnknownCommands: number;
  /** PARAM allowsourceroute: keep "@a,@b:c@d" instead of reducing it to "c@d". */
  readonly allowSourceRoute: boolean;
  /** What the Received: header shows (rcvd-ident, rcvd-auth-user, rcvd-tls-mode, rcvd-tls-peer). */
  readonly received: { readonly ident: boolean; readonly authUser: boolean; readonly tlsMode: boolean; readonly tlsPeer: boolean; readonly whoson: boolean };
  readonly contentFilter?: { readonly path: string; readonly maxParallel: number; readonly debug: boolean };
  /** smtp-auth, AUTH-LOGIN-also-without-TLS, MSA-mode, SMTP-auth-pipe … (for the AUTH subsystem). */
  readonly auth: {
    readonly enabled: boolean;
    readonly loginWithoutTls: boolean;
    readonly msaMode: boolean;
    readonly pipe?: string;
    readonly noAuthOnPort25: boolean;
    readonly failRate?: number;
    readonly usernamePrompt?: string;
    readonly passwordPrompt?: string;
  };
  /** use-tls, tls-* (for the TLS subsystem). */
  readonly tls: {
    readonly enabled: boolean;
    /** listen-ssmtp: also serve SMTP over TLS on port 465. */
    readonly listenSmtps: boolean;
    readonly certFile?: string;
    readonly keyFile?: string;
    readonly caFile?: string;
    readonly caPath?: string;
    readonly cipherList?: string;
    readonly logLevel: number;
    readonly askCert: boolean;
    readonly requireCert: boolean;
    readonly verifyDepth: number;
    /** tls-enforce-tls: refuse mail without STARTTLS. */
    readonly enforce: boolean;
  };
  /** TcpRcvBufferSize / TcpXmitBufferSize (bytes): SO_RCVBUF / SO_SNDBUF of the listening sockets. */
  readonly tcpRcvBufferSize?: number;
  readonly tcpXmitBufferSize?: number;
  /** enable-router: RCPT, VRFY and EXPN may ask the -R router program (smtpserver front end). */
  readonly enableRouter: boolean;
  /** policydb [TYPE] PATH: ZMailer's smtp-policy database (its source file, or PATH.src / PATH.db's source). */
  readonly policyDb?: { readonly type?: string; readonly path: string };
  /** etrn-cluster NODE [USER PASSWD]: ETRN is passed on to these nodes over SMTP. */
  readonly etrnCluster: readonly { readonly node: string; readonly user?: string; readonly password?: string }[];
  readonly heloPatterns: readonly HeloPattern[];
  /** Every PARAM given, in file order (canonical name, position). */
  readonly given: readonly { readonly name: string; readonly pos: Position }[];
}

/** ZMailer's values for PARAMs that were not given. */
export const ZMAILER_DEFAULTS = Object.freeze({
  maxSize: 0,
  minAvailSpaceKb: 5000,
  maxErrorRecipients: 3,
  /** ZMailer's built-in MaxSameIpSource (smtpserver.c). */
  maxSameIpSource: 100,
  maxParallelConnections: 800,
  rcptLimitCount: 100,
  maxUnknownCommands: 10,
  tarpitCapSec: 250,
  contentFilterMaxParallel: 2,
  contentFilterMaxParallelLimit: 20,
});

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The mutable state PARAMs write into while a file is read. */
export interface ConfDraft
  extends Omit<Mutable<ZmailerConf>, 'bindAddresses' | 'disabledExtensions' | 'hdr220' | 'help' | 'heloPatterns' | 'given' | 'received' | 'auth' | 'tls' | 'etrnCluster'> {
  etrnCluster: { node: string; user?: string; password?: string }[];
  bindAddresses: BindAddress[];
  disabledExtensions: Set<ZmailerExtension>;
  hdr220: string[];
  help: string[];
  heloPatterns: HeloPattern[];
  given: { readonly name: string; readonly pos: Position }[];
  received: Mutable<ZmailerConf['received']>;
  auth: Mutable<ZmailerConf['auth']>;
  tls: Mutable<ZmailerConf['tls']>;
}

export function newDraft(file: string): ConfDraft {
  return {
    file,
    maxSize: ZMAILER_DEFAULTS.maxSize,
    minAvailSpaceKb: ZMAILER_DEFAULTS.minAvailSpaceKb,
    maxErrorRecipients: ZMAILER_DEFAULTS.maxErrorRecipients,
    maxSameIpSource: ZMAILER_DEFAULTS.maxSameIpSource,
    maxParallelConnections: ZMAILER_DEFAULTS.maxParallelConnections,
    listenQueueSize: undefined,
    rcptLimitCount: ZMAILER_DEFAULTS.rcptLimitCount,
    bindPort: undefined,
    bindAddresses: [],
    vrfy: false,
    expn: false,
    ehlo: true,
    disabledExtensions: new Set(),
    multilineReplies: true,
    hdr220: [],
    help: [],
    tarpit: { initialSec: 0, multiplier: 0, capSec: ZMAILER_DEFAULTS.tarpitCapSec },
    maxUnknownCommands: ZMAILER_DEFAULTS.maxUnknownCommands,
    allowSourceRoute: false,
    received: { ident: false, authUser: false, tlsMode: false, tlsPeer: false, whoson: false },
    enableRouter: false,
    etrnCluster: [],
    contentFilter: undefined,
    auth: { enabled: false, loginWithoutTls: false, msaMode: false, noAuthOnPort25: false },
    tls: { enabled: false, listenSmtps: false, logLevel: 0, askCert: false, requireCert: false, verifyDepth: 1, enforce: false },
    heloPatterns: [],
    given: [],
  };
}

/** Thrown by a PARAM's apply(); the parser reports it at the argument's position. */
export class ParamError extends Error {
  constructor(
    message: string,
    /** Index of the argument at fault; -1 = the PARAM name. */
    readonly arg = -1,
  ) {
    super(message);
  }
}

export interface ParamContext {
  /** Report a warning at the PARAM's line. */
  warn(message: string): void;
  /** Is this file executable? (contentfilter, SMTP-auth-pipe) */
  executable(path: string): boolean;
}

export interface ParamSpec {
  /** Canonical spelling first (used in messages), then aliases. */
  readonly names: readonly string[];
  /** Arguments: [minimum, maximum]. */
  readonly args: readonly [number, number];
  /** The rest of the line is one argument, taken as written (help, hdr220). */
  readonly raw?: boolean;
  /** Set ⇒ recognized but not supported; the reason is shown. */
  readonly unsupported?: string;
  /** Set ⇒ applied, and loaded with this warning: what happens instead of what ZMailer did. */
  readonly note?: string;
  readonly apply?: (d: ConfDraft, args: readonly string[], ctx: ParamContext) => void;
}

/* ----------------------------------------------------------- arguments */

function int(s: string, arg: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[0-9]+$/.test(s)) throw new ParamError(`"${s}" is not a whole number`, arg);
  const n = Number(s);
  if (n < min || n > max) throw new ParamError(`${n} is out of range (${min}–${max === Number.MAX_SAFE_INTEGER ? '…' : max})`, arg);
  return n;
}

function num(s: string, arg: number): number {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(s)) throw new ParamError(`"${s}" is not a number`, arg);
  return Number(s);
}

function flag01(s: string, arg: number): boolean {
  if (s !== '0' && s !== '1') throw new ParamError(`"${s}" must be 0 or 1`, arg);
  return s === '1';
}

function absolutePath(s: string, arg: number, what: string): string {
  if (!s.startsWith('/')) throw new ParamError(`${what} "${s}" must be an absolute path`, arg);
  return s;
}

function executablePath(s: string, arg: number, what: string, ctx: ParamContext): string {
  absolutePath(s, arg, what);
  if (!ctx.executable(s)) throw new ParamError(`${what} "${s}" is not an executable file`, arg);
  return s;
}

/** "[192.0.2.1]", "[IPv6.2001:db8::1]", "[IPv6:…]", "iface:eth0", "any", "any6", or a bare address. */
export function parseBindAddress(s: string): BindAddress | string {
  if (s === 'any' || s === '0' || s === '[0.0.0.0]') return { kind: 'any', family: 4 };
  if (s === 'any6' || /^\[ipv6[.:](0*:)*:?0*\]$/i.test(s)) return { kind: 'any', family: 6 };
  if (s.startsWith('iface:')) {
    const name = s.slice(6);
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) return `bad interface name "${name}"`;
    return { kind: 'interface', name };
  }
  const inner = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  const v6 = /^ipv6[.:](.*)$/i.exec(inner);
  const text = v6 ? (v6[1] ?? '') : inner;
  if (/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(text) && !v6) {
    if (text.split('.').some((o) => Number(o) > 255)) return `invalid address "${text}"`;
    return { kind: 'address', address: text, family: 4 };
  }
  if (/^[0-9a-fA-F:.]+$/.test(text) && text.includes(':')) {
    try {
      // Validated the cheap way: URL parsing knows IPv6 literals.
      const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      return { kind: 'address', address: host, family: 6 };
    } catch {
      return `invalid address "${text}"`;
    }
  }
  return `bad bind address "${s}" (expected [a.b.c.d], [IPv6.addr], iface:NAME or any)`;
}

/* ---------------------------------------------------------------- table */

const onOff = (names: string[], set: (d: ConfDraft, v: boolean) => void, value: boolean): ParamSpec => ({
  names,
  args: [0, 0],
  apply: (d) => set(d, value),
});

/** "NoPIPELINING" takes the extension out of the EHLO reply; "pipelining-ok" puts it back. */
function ext(name: ZmailerExtension, offAliases: string[] = [], onAliases: string[] = []): ParamSpec[] {
  return [
    { names: [`No${name}`, ...offAliases], args: [0, 0], apply: (d) => void d.disabledExtensions.add(name) },
    { names: [`${name.toLowerCase()}-ok`, ...onAliases], args: [0, 0], apply: (d) => void d.disabledExtensions.delete(name) },
  ];
}

const UNSUPPORTED: readonly [string[], string][] = [
  [['tracking-cluster'], "ZMailer's cluster-wide rate tracking is not supported"],
  [['perl-hook'], 'Postern runs no Perl hooks; use contentfilter'],
  [['use-tcp-wrapper'], 'Postern does not use tcp_wrappers; use smtpd.conf rules or the rules file'],
  [['reject-percent-kludge', 'accept-percent-kludge'], 'the "%" routing hack is not supported'],
  [['sum-sizeoption-value'], 'not supported: the SIZE declaration is checked per transaction'],
  [['deliverby'], 'DELIVERBY (RFC 2852) is not implemented'],
  [['newgroup', 'BindSmtp', 'BindSmtpS', 'BindSubmit'], 'per-service parameter groups are not supported; declare listeners with "listen on" in smtpd.conf'],
  [['lmtp-mode'], "ZMailer's LMTP mode is a debugging aid; Postern does not serve LMTP"],
  [['outlook-tls-bug'], 'not supported; use an smtps listener (listen-ssmtp) for clients that need one'],
  [['tls-dh512', 'tls-dh1024'], 'DH parameters of 512 or 1024 bits are too weak; Postern uses ECDHE and built-in groups'],
  [['tls-dcert-file', 'tls-dkey-file'], 'DSA certificates are not supported (deprecated)'],
  [['tls-random-source'], "Node.js seeds TLS from the operating system's random source"],
  [['tls-use-scache', 'tls-scache-name', 'tls-scache-timeout'], "Node.js's TLS server keeps its own session cache and tickets"],
  [['report-auth-file'], 'not supported; authentications are in the mail log'],
  [['spf-received', 'spf-threshold', 'spf-localpolicy', 'spf-whitelist-use-default'], 'SPF checks are not implemented by this module'],
  [['smtp-auth-sasl', 'sasl-mechanisms'], 'Postern has no Cyrus SASL; AUTH mechanisms are built in'],
  [['contact-pointer-message'], 'not supported'],
  [['force-rcpt-notify-never'], 'not supported: Postern keeps the NOTIFY the client asked for'],
];

/** Every PARAM Postern knows. */
export const PARAMS: readonly ParamSpec[] = [
  { names: ['maxsize'], args: [1, 1], apply: (d, a) => (d.maxSize = int(a[0] as string, 0, 0)) },
  {
    names: ['min-availspace'],
    args: [1, 1],
    apply: (d, a, ctx) => {
      const n = int(a[0] as string, 0, 0);
      if (n < 1000) ctx.warn(`min-availspace ${n} raised to 1000 kB, ZMailer's minimum`);
      d.minAvailSpaceKb = Math.max(1000, n);
    },
  },
  { names: ['max-error-recipients'], args: [1, 1], apply: (d, a) => (d.maxErrorRecipients = int(a[0] as string, 0, 1)) },
  { names: ['MaxSameIpSource', 'same-ip-source-parallel-max'], args: [1, 1], apply: (d, a) => (d.maxSameIpSource = int(a[0] as string, 0, 1)) },
  { names: ['MaxParallelConnections'], args: [1, 1], apply: (d, a) => (d.maxParallelConnections = int(a[0] as string, 0, 1)) },
  { names: ['ListenQueueSize'], args: [1, 1], apply: (d, a) => (d.listenQueueSize = int(a[0] as string, 0, 1, 65535)) },
  {
    names: ['RcptLimitCount', 'RcptLimitCnt'],
    args: [1, 1],
    apply: (d, a, ctx) => {
      const n = int(a[0] as string, 0, 0);
      if (n < 100) ctx.warn(`RcptLimitCount ${n} raised to 100, the minimum RFC 821 requires`);
      d.rcptLimitCount = Math.max(100, n);
    },
  },
  { names: ['BindPort'], args: [1, 1], apply: (d, a) => (d.bindPort = int(a[0] as string, 0, 1, 65535)) },
  {
    names: ['BindAddress'],
    args: [1, 1],
    apply: (d, a) => {
      const b = parseBindAddress(a[0] as string);
      if (typeof b === 'string') throw new ParamError(b, 0);
      d.bindAddresses.push(b);
    },
  },
  onOff(['no-debugcmd'], () => undefined, false),
  onOff(['EXPNcmd'], (d, v) => (d.expn = v), true),
  onOff(['no-expncmd'], (d, v) => (d.expn = v), false),
  onOff(['VRFYcmd'], (d, v) => (d.vrfy = v), true),
  onOff(['no-vrfycmd'], (d, v) => (d.vrfy = v), false),
  onOff(['NoEHLO'], (d, v) => (d.ehlo = v), false),
  onOff(['ehlo-ok'], (d, v) => (d.ehlo = v), true),
  ...ext('8BITMIME'),
  ...ext('CHUNKING'),
  ...ext('DSN'),
  ...ext('ETRN'),
  ...ext('PIPELINING'),
  // The manual spells it "NoENCHANCEDSTATUS(CODES)"; the code reads NoENHANCEDSTATUS(CODES). Both are accepted.
  ...ext('ENHANCEDSTATUSCODES', ['NoENHANCEDSTATUS', 'NoENCHANCEDSTATUSCODES', 'NoENCHANCEDSTATUS'], ['enhancedstatus-ok']),
  onOff(['no-multiline-replies'], (d, v) => (d.multilineReplies = v), false),
  onOff(['multiline-replies-ok'], (d, v) => (d.multilineReplies = v), true),
  { names: ['hdr220'], args: [0, 1], raw: true, apply: (d, a) => void d.hdr220.push(a[0] ?? '') },
  { names: ['help'], args: [0, 1], raw: true, apply: (d, a) => void d.help.push(a[0] ?? '') },
  {
    names: ['tarpit'],
    args: [2, 3],
    apply: (d, a) => {
      const initialSec = num(a[0] as string, 0);
      const multiplier = num(a[1] as string, 1);
      const capSec = a[2] === undefined ? ZMAILER_DEFAULTS.tarpitCapSec : num(a[2], 2);
      d.tarpit = { initialSec, multiplier, capSec };
    },
  },
  { names: ['max-unknown-commands'], args: [1, 1], apply: (d, a) => (d.maxUnknownCommands = int(a[0] as string, 0, 1)) },
  onOff(['allowsourceroute'], (d, v) => (d.allowSourceRoute = v), true),
  onOff(['rcvd-ident'], (d, v) => (d.received.ident = v), true),
  onOff(['no-rcvd-ident'], (d, v) => (d.received.ident = v), false),
  onOff(['rcvd-auth-user'], (d, v) => (d.received.authUser = v), true),
  onOff(['no-rcvd-auth-user'], (d, v) => (d.received.authUser = v), false),
  onOff(['rcvd-tls-mode'], (d, v) => (d.received.tlsMode = v), true),
  onOff(['no-rcvd-tls-mode'], (d, v) => (d.received.tlsMode = v), false),
  onOff(['rcvd-tls-peer'], (d, v) => (d.received.tlsPeer = v), true),
  onOff(['no-rcvd-tls-peer'], (d, v) => (d.received.tlsPeer = v), false),
  onOff(['no-rcvd-whoson'], (d, v) => (d.received.whoson = v), false),
  // The seed's PARAMs Postern cannot do as ZMailer did: they load, with a warning saying what happens instead.
  // SO_RCVBUF / SO_SNDBUF on every listening socket (net/socket-buffers.ts says how, Node.js having no setsockopt).
  { names: ['TcpRcvBufferSize'], args: [1, 1], apply: (d, a) => (d.tcpRcvBufferSize = int(a[0] as string, 0, 1, 64 << 20)) },
  { names: ['TcpXmitBufferSize'], args: [1, 1], apply: (d, a) => (d.tcpXmitBufferSize = int(a[0] as string, 0, 1, 64 << 20)) },
  { names: ['DEBUGcmd'], args: [0, 0], note: 'Postern has no DEBUG command (it would show server internals to any client): DEBUG is answered 502 5.5.1' },
  onOff(['enable-router'], (d, v) => (d.enableRouter = v), true),
  { names: ['enable-router-maxpar'], args: [1, 1], note: 'router checks run one process per check; no pool to size', apply: (_d, a) => void int(a[0] as string, 0, 1) },
  onOff(['rcvd-whoson'], (d, v) => (d.received.whoson = v), true),
  {
    names: ['policydb', 'policydb-submit'],
    args: [1, 2],
    apply: (d, a) => {
      const path = absolutePath((a.length === 2 ? a[1] : a[0]) as string, a.length - 1, 'policydb');
      d.policyDb = { ...(a.length === 2 ? { type: a[0] as string } : {}), path };
    },
  },
  {
    names: ['etrn-cluster'],
    args: [1, 3],
    apply: (d, a) => {
      if (!/^[A-Za-z0-9.:\[\]-]+$/.test(a[0] as string)) throw new ParamError(`bad node name "${a[0] as string}"`, 0);
      d.etrnCluster.push({ node: a[0] as string, ...(a[1] !== undefined ? { user: a[1] } : {}), ...(a[2] !== undefined ? { password: a[2] } : {}) });
    },
  },
  {
    names: ['contentfilter'],
    args: [1, 1],
    apply: (d, a, ctx) => {
      const path = executablePath(a[0] as string, 0, 'contentfilter', ctx);
      d.contentFilter = { path, maxParallel: d.contentFilter?.maxParallel ?? ZMAILER_DEFAULTS.contentFilterMaxParallel, debug: d.contentFilter?.debug ?? false };
    },
  },
  {
    names: ['contentfilter-maxpar'],
    args: [1, 1],
    apply: (d, a) => {
      const n = int(a[0] as string, 0, 1, ZMAILER_DEFAULTS.contentFilterMaxParallelLimit);
      d.contentFilter = { path: d.contentFilter?.path ?? '', maxParallel: n, debug: d.contentFilter?.debug ?? false };
    },
  },
  {
    names: ['debug-contentfilter'],
    args: [0, 0],
    apply: (d) => (d.contentFilter = { path: d.contentFilter?.path ?? '', maxParallel: d.contentFilter?.maxParallel ?? ZMAILER_DEFAULTS.contentFilterMaxParallel, debug: true }),
  },
  onOff(['smtp-auth'], (d, v) => (d.auth.enabled = v), true),
  onOff(['no-smtp-auth'], (d, v) => (d.auth.enabled = v), false),
  onOff(['AUTH-LOGIN-also-without-TLS'], (d, v) => (d.auth.loginWithoutTls = v), true),
  onOff(['MSA-mode'], (d, v) => (d.auth.msaMode = v), true),
  onOff(['no-smtp-auth-on-25'], (d, v) => (d.auth.noAuthOnPort25 = v), true),
  onOff(['no-smtp-auth-sasl'], () => undefined, false),
  onOff(['no-force-rcpt-notify-never'], () => undefined, false),
  { names: ['SMTP-auth-pipe'], args: [1, 1], apply: (d, a, ctx) => (d.auth.pipe = executablePath(a[0] as string, 0, 'SMTP-auth-pipe', ctx)) },
  { names: ['auth-failrate'], args: [1, 1], apply: (d, a) => (d.auth.failRate = Math.max(3, int(a[0] as string, 0, 0))) },
  { names: ['smtp-auth-username-prompt'], args: [1, 1], apply: (d, a) => (d.auth.usernamePrompt = a[0] as string) },
  { names: ['smtp-auth-password-prompt'], args: [1, 1], apply: (d, a) => (d.auth.passwordPrompt = a[0] as string) },
  onOff(['use-tls'], (d, v) => (d.tls.enabled = v), true),
  onOff(['no-use-tls'], (d, v) => (d.tls.enabled = v), false),
  onOff(['listen-ssmtp'], (d, v) => (d.tls.listenSmtps = v), true),
  {
    names: ['tls-cert-file'],
    args: [1, 1],
    apply: (d, a) => {
      d.tls.certFile = absolutePath(a[0] as string, 0, 'tls-cert-file');
      d.tls.keyFile ??= d.tls.certFile; // as ZMailer: one file may hold both
    },
  },
  {
    names: ['tls-key-file'],
    args: [1, 1],
    apply: (d, a) => {
      d.tls.keyFile = absolutePath(a[0] as string, 0, 'tls-key-file');
      d.tls.certFile ??= d.tls.keyFile;
    },
  },
  { names: ['tls-CAfile'], args: [1, 1], apply: (d, a) => (d.tls.caFile = absolutePath(a[0] as string, 0, 'tls-CAfile')) },
  { names: ['tls-CApath'], args: [1, 1], apply: (d, a) => (d.tls.caPath = absolutePath(a[0] as string, 0, 'tls-CApath')) },
  { names: ['tls-cipher-list'], args: [1, 1], apply: (d, a) => (d.tls.cipherList = a[0] as string) },
  { names: ['tls-loglevel'], args: [1, 1], apply: (d, a) => (d.tls.logLevel = int(a[0] as string, 0, 0, 4)) },
  { names: ['tls-ask-cert'], args: [1, 1], apply: (d, a) => (d.tls.askCert = flag01(a[0] as string, 0)) },
  { names: ['tls-require-cert'], args: [1, 1], apply: (d, a) => (d.tls.requireCert = flag01(a[0] as string, 0)) },
  { names: ['tls-ccert-vd'], args: [1, 1], apply: (d, a) => (d.tls.verifyDepth = int(a[0] as string, 0, 0, 100)) },
  { names: ['tls-enforce-tls'], args: [1, 1], apply: (d, a) => (d.tls.enforce = flag01(a[0] as string, 0)) },
  ...UNSUPPORTED.map(([names, why]): ParamSpec => ({ names, args: [0, 99], unsupported: why })),
];

/** "Max-Unknown_Commands" → "maxunknowncommands": how PARAM names are compared. */
export function normalizeParamName(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

const BY_NAME: ReadonlyMap<string, ParamSpec> = (() => {
  const m = new Map<string, ParamSpec>();
  for (const spec of PARAMS) {
    for (const n of spec.names) {
      const key = normalizeParamName(n);
      if (m.has(key)) throw new Error(`PARAM ${n} is listed twice`);
      m.set(key, spec);
    }
  }
  return m;
})();

export function findParam(name: string): ParamSpec | undefined {
  return BY_NAME.get(normalizeParamName(name));
}

/** Canonical spellings of every known PARAM, for suggestions and documentation. */
export function paramNames(): string[] {
  return PARAMS.flatMap((p) => p.names);
}
