/*
 * test/helpers/nsd.ts — a real authoritative DNS server (NLnet Labs' nsd,
 * Debian `nsd`) on loopback, serving the zones a test gives it, with a
 * throwaway configuration in a temporary folder. No system service is
 * touched: nsd runs in the foreground as a child of the test, as root
 * without dropping privileges (`username: ""`), on a free port.
 *
 *   const dns = await startNsd({
 *     address: '127.0.14.53',              // one of the test's own loopback addresses
 *     zones: {
 *       'example.test': [
 *         '@      MX  10 mx1',
 *         'mx1    A   127.0.14.2',
 *         '@      TXT "v=spf1 ip4:127.0.14.0/24 -all"',
 *       ],
 *     },
 *   });
 *   // smtpd.conf:  resolver "<dns.server>"       (e.g. "127.0.14.53:40123")
 *   …
 *   await dns.close();
 *
 * A zone is given either as record lines (relative to the zone's origin;
 * the helper adds $ORIGIN, $TTL, SOA and NS) or as a whole zone file text
 * (anything containing "SOA" is taken as it is, e.g. one ldns-signzone
 * wrote). Each zone is checked with nsd-checkzone first, so a typo in a
 * test's zone fails with nsd's own message instead of a silent NXDOMAIN.
 * setZones() replaces the zones and restarts nsd on the same port.
 * An nsd serves only the names of its zones: a name outside every zone gets
 * REFUSED (Node: ECONNREFUSED / EREFUSED), not NXDOMAIN.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool, run } from './tools.js';

export type ZoneSource = readonly string[] | string;

export interface NsdOptions {
  /** The loopback address nsd listens on (default 127.0.0.1). */
  readonly address?: string;
  /** Port; default: a free one, for both UDP and TCP. */
  readonly port?: number;
  /** Zone origin (without the trailing dot) → records or a whole zone file. */
  readonly zones: Readonly<Record<string, ZoneSource>>;
}

export interface NsdHandle {
  readonly address: string;
  readonly port: number;
  /** "ADDRESS:PORT", for smtpd.conf's `resolver` or a Resolver's servers. */
  readonly server: string;
  /** The temporary folder holding nsd.conf, the zone files and nsd.log. */
  readonly dir: string;
  /** Replace the zones and restart nsd on the same address and port. */
  setZones(zones: Readonly<Record<string, ZoneSource>>): Promise<void>;
  /** nsd's own log, for a failing test's message. */
  log(): string;
  close(): Promise<void>;
}

/** A zone file for `origin` from record lines, with a SOA and an NS of its own. */
export function zoneText(origin: string, records: readonly string[]): string {
  const o = origin.replace(/\.$/, '');
  return [
    `$ORIGIN ${o}.`,
    '$TTL 300',
    `@ IN SOA ns.${o}. hostmaster.${o}. ( 1 3600 600 86400 300 )`,
    `@ IN NS ns.${o}.`,
    `ns IN A 127.0.0.1`,
    ...records,
    '',
  ].join('\n');
}

function sourceText(origin: string, src: ZoneSource): string {
  if (typeof src === 'string') return /\bSOA\b/.test(src) ? src : zoneText(origin, src.split('\n'));
  return zoneText(origin, src);
}

/** A port free on `address` for both TCP and UDP (bound, then released). */
export async function freeDualPort(address: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, address, () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, address, () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error(`nsd helper: no free TCP+UDP port on ${address}`);
}

function writeConfig(dir: string, address: string, port: number, zones: Readonly<Record<string, ZoneSource>>): void {
  const lines = [
    'server:',
    `  ip-address: ${address}@${port}`,
    '  do-ip6: no',
    '  username: ""',
    '  chroot: ""',
    `  zonesdir: "${dir}"`,
    `  pidfile: "${join(dir, 'nsd.pid')}"`,
    `  xfrdfile: "${join(dir, 'xfrd.state')}"`,
    `  zonelistfile: "${join(dir, 'zone.list')}"`,
    `  logfile: "${join(dir, 'nsd.log')}"`,
    '  database: ""',
    '  server-count: 1',
    '  verbosity: 1',
    '  hide-version: yes',
    // No response rate limiting (Debian builds nsd with it, 200 answers a second per client): a test or the
    // benchmark asking faster would see dropped answers and resolver timeouts that no production setup has.
    '  rrl-ratelimit: 0',
    '  rrl-whitelist-ratelimit: 0',
    'remote-control:',
    '  control-enable: no',
  ];
  for (const [origin, src] of Object.entries(zones)) {
    const o = origin.replace(/\.$/, '').toLowerCase();
    const file = `${o}.zone`;
    writeFileSync(join(dir, file), sourceText(o, src));
    lines.push('zone:', `  name: "${o}"`, `  zonefile: "${file}"`);
  }
  writeFileSync(join(dir, 'nsd.conf'), lines.join('\n') + '\n');
}

async function checkZones(dir: string, zones: Readonly<Record<string, ZoneSource>>): Promise<void> {
  for (const origin of Object.keys(zones)) {
    const o = origin.replace(/\.$/, '').toLowerCase();
    const r = await run('nsd-checkzone', [o, join(dir, `${o}.zone`)]);
    if (r.status !== 0) throw new Error(`nsd helper: zone ${o}: ${(r.stderr + r.stdout).trim()}`);
  }
}

/** Wait until nsd answers the SOA of its first zone (or fail with its log). */
async function answering(server: string, zone: string, child: ChildProcess, logFile: string): Promise<void> {
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([server]);
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      await resolver.resolveSoa(zone);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '(no log)';
  throw new Error(`nsd helper: nsd on ${server} did not answer for ${zone}: ${log}`);
}

export async function startNsd(opts: NsdOptions): Promise<NsdHandle> {
  requireTool('nsd');
  requireTool('nsd-checkzone');
  const address = opts.address ?? '127.0.0.1';
  const port = opts.port ?? (await freeDualPort(address));
  const dir = mkdtempSync(join(tmpdir(), 'postern-nsd-'));
  const server = `${address}:${port}`;
  let zones = opts.zones;
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    writeConfig(dir, address, port, zones);
    await checkZones(dir, zones);
    child = spawn('nsd', ['-d', '-c', join(dir, 'nsd.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', () => undefined);
    const first = Object.keys(zones)[0];
    if (first !== undefined) await answering(server, first, child, join(dir, 'nsd.log'));
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    address,
    port,
    server,
    dir,
    async setZones(next) {
      await stop();
      zones = next;
      await start();
    },
    log: () => (existsSync(join(dir, 'nsd.log')) ? readFileSync(join(dir, 'nsd.log'), 'utf8') : ''),
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
