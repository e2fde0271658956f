/*
 * test/helpers/dnssec.ts — a DNSSEC-validating resolver on loopback for
 * the DANE tests, on top of nsd.ts: each signed zone is signed with keys
 * made for the test (ldnsutils: ldns-keygen, a KSK and a ZSK, ECDSA P-256;
 * ldns-signzone), nsd serves the signed and unsigned zones, and unbound
 * (validating, in the foreground, throwaway configuration in a temporary
 * folder) sits in front with stub zones pointing at nsd and the KSKs' DS
 * records as its trust anchors.
 *
 *   const d = await startDnssec({
 *     nsdAddress: '127.0.15.53', resolverAddress: '127.0.15.54',
 *     signed: { 'dane.test': [...records] },      // AD=1 answers
 *     unsigned: { 'insecure.test': [...records] }, // AD=0 answers
 *     bogus: { 'bogus.test': [...records] },       // signed, anchored to another key: SERVFAIL
 *   });
 *   d.resolver  // "127.0.15.54:PORT": Postern's `resolver` and `mta dane resolver`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import { freeDualPort, startNsd, zoneText, type NsdHandle } from './nsd.js';
import { requireTool, run } from './tools.js';

export interface DnssecOptions {
  readonly nsdAddress: string;
  readonly resolverAddress: string;
  readonly signed?: Readonly<Record<string, readonly string[]>>;
  readonly unsigned?: Readonly<Record<string, readonly string[]>>;
  readonly bogus?: Readonly<Record<string, readonly string[]>>;
}

export interface DnssecHandle {
  /** "ADDRESS:PORT" of the validating resolver. */
  readonly resolver: string;
  readonly nsd: NsdHandle;
  log(): string;
  close(): Promise<void>;
}

async function sign(dir: string, origin: string, records: readonly string[]): Promise<{ zone: string; ds: string }> {
  const keygen = async (args: string[]): Promise<string> => {
    const r = await run('ldns-keygen', args, { cwd: dir });
    if (r.status !== 0) throw new Error(`ldns-keygen: ${r.stderr}`);
    return r.stdout.trim();
  };
  const ksk = await keygen(['-a', 'ECDSAP256SHA256', '-k', origin]);
  const zsk = await keygen(['-a', 'ECDSAP256SHA256', origin]);
  const file = join(dir, `${origin}.unsigned`);
  writeFileSync(file, zoneText(origin, records));
  const r = await run('ldns-signzone', ['-f', `${file}.signed`, file, join(dir, zsk), join(dir, ksk)], { cwd: dir });
  if (r.status !== 0) throw new Error(`ldns-signzone ${origin}: ${r.stderr}`);
  return { zone: readFileSync(`${file}.signed`, 'utf8'), ds: readFileSync(join(dir, `${ksk}.ds`), 'utf8').trim() };
}

export async function startDnssec(o: DnssecOptions): Promise<DnssecHandle> {
  requireTool('ldns-keygen');
  requireTool('ldns-signzone');
  requireTool('unbound');
  const dir = mkdtempSync(join(tmpdir(), 'postern-dnssec-'));
  const zones: Record<string, string | readonly string[]> = {};
  const anchors: string[] = [];
  try {
    for (const [origin, records] of Object.entries(o.signed ?? {})) {
      const s = await sign(dir, origin, records);
      zones[origin] = s.zone;
      anchors.push(s.ds);
    }
    for (const [origin, records] of Object.entries(o.bogus ?? {})) {
      const s = await sign(dir, origin, records);
      zones[origin] = s.zone;
      // Anchored to a key that did not sign the zone: every answer is bogus.
      const other = await sign(dir, origin, records);
      anchors.push(other.ds);
    }
    for (const [origin, records] of Object.entries(o.unsigned ?? {})) zones[origin] = records;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const nsd = await startNsd({ address: o.nsdAddress, zones });
  const port = await freeDualPort(o.resolverAddress);
  writeFileSync(join(dir, 'anchors'), anchors.join('\n') + '\n');
  const conf = [
    'server:',
    `  interface: ${o.resolverAddress}@${port}`,
    '  do-ip6: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${join(dir, 'unbound.pid')}"`,
    '  use-syslog: no',
    `  logfile: "${join(dir, 'unbound.log')}"`,
    '  verbosity: 1',
    '  val-log-level: 2',
    '  access-control: 127.0.0.0/8 allow',
    '  do-not-query-localhost: no',
    '  qname-minimisation: no',
    '  module-config: "validator iterator"',
    `  trust-anchor-file: "${join(dir, 'anchors')}"`,
    '  num-threads: 1',
    '  so-reuseport: no',
    // unbound answers the special-use names (test., invalid. …) itself unless told not to.
    ...[...new Set(Object.keys(zones).map((z) => z.split('.').at(-1) as string))].map((tld) => `  local-zone: "${tld}." nodefault`),
    'remote-control:',
    '  control-enable: no',
    ...[...Object.keys(zones)].flatMap((z) => ['stub-zone:', `  name: "${z}"`, `  stub-addr: ${nsd.address}@${nsd.port}`]),
  ];
  writeFileSync(join(dir, 'unbound.conf'), conf.join('\n') + '\n');
  const check = await run('unbound-checkconf', [join(dir, 'unbound.conf')]);
  if (check.status !== 0) {
    await nsd.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dnssec helper: unbound.conf: ${check.stderr}${check.stdout}`);
  }
  const child: ChildProcess = spawn('unbound', ['-d', '-c', join(dir, 'unbound.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', () => undefined);
  const resolver = `${o.resolverAddress}:${port}`;
  const logFile = join(dir, 'unbound.log');
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  };
  // Ready when it answers the SOA of the first zone.
  const probe = new Resolver({ timeout: 300, tries: 1 });
  probe.setServers([resolver]);
  const first = Object.keys(o.signed ?? zones)[0] ?? '';
  let ok = false;
  for (let i = 0; i < 60 && child.exitCode === null; i++) {
    try {
      await probe.resolveSoa(first);
      ok = true;
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!ok) {
    const l = log();
    await stop();
    await nsd.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dnssec helper: unbound on ${resolver} did not answer for ${first}: ${l}`);
  }
  return {
    resolver,
    nsd,
    log,
    async close() {
      await stop();
      await nsd.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
