/*
 * cli/smtpserver-options.ts — ZMailer's `smtpserver` command line (seed
 * 000) read into a typed value, and what it changes in Postern's
 * configuration. Pure: no file is read, nothing starts.
 *
 *   smtpserver [-46aignBVvw] [-p port] [-l SYSLOG] [-l logfile] [-s[ftveR]]
 *              [-s strict] [-I pidfile] [-L maxloadaver] [-M SMTPmaxsize]
 *              [-P postoffice] [-R router] [-C cfgfile] [-T '[1.2.3.4]']
 *              [-d level] [-c]
 *
 * -c is Postern's: check the configuration (smtpserver.conf included),
 * print every warning the daemon would log at start, and exit, as
 * `smtpd -n`. -d N is the debug level the seed's -T text names ("i d 1").
 * docs/moving-from-zmailer.md maps every option to what Postern does.
 */
import { getopt } from './getopt.js';
import type { Config, Listener } from '../config/model.js';
import type { BindAddress, ZmailerConf } from '../config/zmailer/params.js';
import { parseStyleOption, type StyleOption } from '../config/zmailer/helo-patterns.js';

export const SMTPSERVER_USAGE =
  "usage: smtpserver [-46aBcignVvw] [-p port] [-l SYSLOG|logfile] [-s ftveRS|strict] [-I pidfile] [-L maxloadaver] [-M size] [-P postoffice] [-R router] [-C cfgfile] [-T '[1.2.3.4]'] [-d level]";

export interface SmtpserverOptions {
  readonly family?: 4 | 6;
  readonly ident: boolean;
  readonly whoson: boolean;
  readonly gullible: boolean;
  readonly interactive: boolean;
  readonly inetd: boolean;
  readonly bsmtp: boolean;
  readonly version: boolean;
  readonly verbose: boolean;
  readonly check: boolean;
  readonly debug: number;
  readonly port?: number;
  /** -l: "SYSLOG" and/or files, in order. */
  readonly logs: readonly string[];
  readonly style?: StyleOption;
  readonly pidFile?: string;
  readonly maxLoadAverage?: number;
  readonly maxSize?: number;
  readonly postoffice?: string;
  readonly router?: string;
  readonly cfgFile?: string;
  /** -T: the client address a batch (-i) runs as. */
  readonly testAddress?: string;
}

/** The command line, or a one-line error. */
export function parseSmtpserverArgs(argv: readonly string[]): SmtpserverOptions | { error: string } {
  const o = getopt(argv, '46aBcignVvwd:p:l:s:I:L:M:P:R:C:T:');
  if ('error' in o) return { error: o.error };
  if (o.operands.length > 0) return { error: `unexpected argument "${o.operands[0]}"` };
  const last = (c: string): string | undefined => o.values.get(c)?.at(-1);
  const f = (c: string): boolean => o.flags.has(c);
  if (f('4') && f('6')) return { error: '-4 and -6 exclude each other' };
  if (f('i') && f('n')) return { error: '-i and -n exclude each other' };
  const num = (c: string, min: number, max: number, real = false): number | { error: string } | undefined => {
    const v = last(c);
    if (v === undefined) return undefined;
    if (!(real ? /^[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/).test(v) || Number(v) < min || Number(v) > max) return { error: `-${c} ${v}: expected a number from ${min} to ${max}` };
    return Number(v);
  };
  const port = num('p', 1, 65535);
  const load = num('L', 1, 10_000, true);
  const size = num('M', 0, Number.MAX_SAFE_INTEGER);
  const debug = num('d', 0, 99);
  for (const v of [port, load, size, debug]) if (typeof v === 'object') return v;
  let style: StyleOption | undefined;
  const s = last('s');
  if (s !== undefined) {
    const r = parseStyleOption(s);
    if (r.kind === 'error') return { error: `-s ${s}: ${r.error}` };
    style = r;
  }
  const t = last('T');
  if (t !== undefined && !/^\[.*\]$/.test(t.trim())) return { error: `-T ${t}: the address must be in brackets, as [1.2.3.4] or [ipv6.2001:db8::1]` };
  for (const c of ['I', 'P', 'R', 'C']) {
    const v = last(c);
    if (v !== undefined && v === '') return { error: `-${c} needs a path` };
  }
  const router = last('R');
  if (router !== undefined && !router.startsWith('/')) return { error: `-R ${router}: the router must be an absolute path` };
  return {
    ...(f('4') ? { family: 4 as const } : f('6') ? { family: 6 as const } : {}),
    ident: f('a'),
    whoson: f('w'),
    gullible: f('g'),
    interactive: f('i'),
    inetd: f('n'),
    bsmtp: f('B'),
    version: f('V'),
    verbose: f('v'),
    check: f('c'),
    debug: (debug as number | undefined) ?? 0,
    ...(port !== undefined ? { port: port as number } : {}),
    logs: o.values.get('l') ?? [],
    ...(style ? { style } : {}),
    ...(last('I') !== undefined ? { pidFile: last('I') } : {}),
    ...(load !== undefined ? { maxLoadAverage: load as number } : {}),
    ...(size !== undefined ? { maxSize: size as number } : {}),
    ...(last('P') !== undefined ? { postoffice: last('P') } : {}),
    ...(router !== undefined ? { router } : {}),
    ...(last('C') !== undefined ? { cfgFile: last('C') } : {}),
    ...(t !== undefined ? { testAddress: t } : {}),
  };
}

const COMMAND_LINE = { file: '<smtpserver command line>', line: 0, col: 0 };

/** The configuration with what the command line says: the spool, smtpserver.conf, limits, pid file. */
export function withCommandLine(config: Config, o: SmtpserverOptions): Config {
  const queue = o.postoffice !== undefined ? { ...config.queue, path: o.postoffice } : config.queue;
  const pidFile = o.pidFile ?? (o.postoffice !== undefined ? `${o.postoffice}/.pid.smtpserver` : config.paths.pidFile);
  const controlSocket = o.postoffice !== undefined ? `${o.postoffice}/smtpd.sock` : config.paths.controlSocket;
  return {
    ...config,
    queue,
    paths: { ...config.paths, pidFile, controlSocket },
    smtp: {
      ...config.smtp,
      ...(o.maxSize !== undefined && o.maxSize > 0 ? { maxMessageSize: o.maxSize } : {}),
      ...(o.maxLoadAverage !== undefined ? { maxLoadAverage: o.maxLoadAverage } : {}),
    },
    ...(o.cfgFile !== undefined ? { smtpserverConf: { path: o.cfgFile, pos: COMMAND_LINE } } : {}),
  };
}

/**
 * The listeners smtpserver binds, as ZMailer: BindAddress (each; all
 * addresses without one) on -p, else BindPort, else 25; -4/-6 pick the
 * family. They replace smtpd.conf's TCP listeners; `listen on socket`
 * stays. usetls with a certificate offers STARTTLS, listen-ssmtp adds
 * port 465, tls-CAfile with tls-require-cert verifies client certificates.
 * tls-enforce-tls makes STARTTLS a must before MAIL (530 5.7.0);
 * tls-ask-cert asks for a client certificate and verifies it against
 * tls-CAfile / tls-CApath without requiring one; tls-ccert-vd bounds the
 * chain; tls-cipher-list sets the TLS 1.2 ciphers; tlsloglevel says how
 * much of each handshake the mail log tells.
 */
export function smtpserverListeners(config: Config, o: SmtpserverOptions, z: ZmailerConf | undefined): Config {
  const base: Listener = config.listeners.find((l) => l.on !== 'socket') ?? { pos: COMMAND_LINE, on: 'any', port: 25, tls: 'none', auth: 'none', maskSrc: false, noDsn: false, smtputf8: true, proxyV2: false };
  const port = o.port ?? z?.bindPort ?? 25;
  const family = o.family === 4 ? ('inet4' as const) : o.family === 6 ? ('inet6' as const) : undefined;
  const binds: readonly BindAddress[] = z && z.bindAddresses.length > 0 ? z.bindAddresses : [{ kind: 'any', family: o.family ?? 6 }];
  const tlsOn = z?.tls.enabled === true && z.tls.certFile !== undefined;
  const hasCa = z?.tls.caFile !== undefined || z?.tls.caPath !== undefined;
  const pkiName = config.hostname;
  const listener = (b: BindAddress, p: number, tls: Listener['tls']): Listener => {
    const on = b.kind === 'address' ? b.address : b.kind === 'interface' ? b.name : 'any';
    const fam = family ?? (b.kind === 'any' && o.family === undefined ? undefined : b.kind === 'any' ? (b.family === 4 ? 'inet4' : 'inet6') : undefined);
    const { family: _f, ...rest } = base;
    return {
      ...rest,
      pos: COMMAND_LINE,
      on,
      port: p,
      ...(fam ? { family: fam } : {}),
      tls: tlsOn ? (tls === 'starttls' && z?.tls.enforce ? 'require' : tls) : base.tls === 'smtps' ? 'none' : base.tls,
      ...(tlsOn ? { pki: pkiName } : {}),
      ...(tlsOn && hasCa && z?.tls.requireCert ? { ca: 'smtpserver-ca', tlsVerify: true } : {}),
      ...(tlsOn && hasCa && z?.tls.askCert && !z.tls.requireCert ? { ca: 'smtpserver-ca', tlsAskCert: true } : {}),
      ...(tlsOn && hasCa && (z?.tls.requireCert || z?.tls.askCert) && z.given.some((g) => /^tls-?ccert-?vd$/i.test(g.name)) ? { tlsVerifyDepth: z.tls.verifyDepth } : {}),
      ...(tlsOn && z?.tls.logLevel ? { tlsLogLevel: z.tls.logLevel } : {}),
    };
  };
  const listeners: Listener[] = binds.map((b) => listener(b, port, 'starttls'));
  if (tlsOn && z?.tls.listenSmtps) listeners.push(...binds.map((b) => listener(b, 465, 'smtps')));
  const pki = new Map(config.pki);
  const ca = new Map(config.ca ?? []);
  if (tlsOn && z) {
    pki.set(pkiName, { name: pkiName, pos: COMMAND_LINE, ...(z.tls.certFile ? { cert: z.tls.certFile } : {}), ...(z.tls.keyFile ? { key: z.tls.keyFile } : {}) });
    if (hasCa) ca.set('smtpserver-ca', { name: 'smtpserver-ca', pos: COMMAND_LINE, cert: z.tls.caFile ?? '', ...(z.tls.caPath !== undefined ? { dir: z.tls.caPath } : {}) });
  }
  const smtp = tlsOn && z?.tls.cipherList !== undefined ? { ...config.smtp, ciphers: z.tls.cipherList } : config.smtp;
  return { ...config, smtp, listeners: [...listeners, ...config.listeners.filter((l) => l.on === 'socket')], pki, ca };
}
