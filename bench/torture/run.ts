/*
 * bench/torture/run.ts — `npm run torture`: a bounded, repeatable hostile
 * run against the built daemon on loopback (docs/hostile.md).
 *
 *   npm run torture                 the long mode (about 10 minutes, testssl.sh when installed)
 *   npm run torture -- --short      under a minute; test/e2e/torture.test.ts runs it in npm test
 *   npm run torture -- --soak 3600  the long mode, then an hour of mixed hostile load with the
 *                                   daemon's memory sampled every 10 s (flat is the bar)
 *   --seed N (the fuzzer's; default 14), --testssl (in short mode too), --keep (keep the folders)
 *
 * Prints a table (check, result, figures) and exits 1 when a check fails.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serverSockets, waitUntil } from '../../test/helpers/sockets.js';
import { startDaemon, type Daemon } from './daemon.js';
import { starttlsFlood, smtpsFlood, noopDrip, slowLine, idleCrowd, renegotiation, source } from './floods.js';
import { mutate, runCase } from './fuzz.js';
import { prng } from '../../test/helpers/prng.js';
import { fullDisk, killLoop } from './crash.js';
import { runTestssl } from './testssl.js';
import { formatTable, row, type Row } from './report.js';
import { workFolder } from '../util.js';

interface Plan {
  readonly short: boolean;
  readonly soakS: number;
  readonly seed: number;
  readonly testssl: boolean;
  readonly keep: boolean;
}

function plan(argv: readonly string[]): Plan {
  const val = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const short = argv.includes('--short');
  return { short, soakS: Number(val('--soak') ?? 0), seed: Number(val('--seed') ?? 14), testssl: argv.includes('--testssl') || !short, keep: argv.includes('--keep') };
}

/** Time limits short enough for the checks to see them act (long mode: longer, still not the defaults' hour). */
const limits = (short: boolean) => (short ? { command: 4, session: 6, transaction: 5, handshake: 3 } : { command: 30, session: 120, transaction: 60, handshake: 10 });

function config(dir: string, short: boolean): string {
  const l = limits(short);
  writeFileSync(join(dir, 'users'), `torture ${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}:${dir}\n`);
  return `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.torture.example"
pki mx.torture.example cert "$DIR/mx.crt"
pki mx.torture.example key "$DIR/mx.key"
table users file:$DIR/users
smtp timeout command ${l.command}s
smtp timeout session ${l.session}s
smtp timeout transaction ${l.transaction}s
smtp timeout tls-handshake ${l.handshake}s
smtp limit max-connections 5000
listen on 127.0.0.1 port 0 tls pki mx.torture.example
listen on 127.0.0.1 port 0 smtps pki mx.torture.example
action "md" maildir "$DIR/Maildir/%{user.username}" userbase <users>
match from any for domain "torture.example" action "md"
`;
}

function site(root: string, name: string, short: boolean, extra = ''): { dir: string; conf: string } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'mx.key'), '-out', join(dir, 'mx.crt'), '-days', '2', '-subj', '/CN=mx.torture.example'], { stdio: 'ignore' });
  return { dir, conf: config(dir, short) + extra };
}

async function fuzz(d: Daemon, port: number, cases: number, seed: number): Promise<Row> {
  const rand = prng(seed);
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases) {
      const i = next++;
      await runCase(port, source(3000 + (i % 400)), mutate(rand), rand, 300);
    }
  };
  await Promise.all(Array.from({ length: 25 }, worker));
  const released = await waitUntil(() => (serverSockets(port).get('CLOSE-WAIT') ?? 0) === 0, 15_000);
  const greeted = await import('../../test/helpers/smtp-client.js').then(({ RawClient }) => RawClient.open(port).then((c) => c.reply(5000).then((r) => (c.close(), r.code === 220)))).catch(() => false);
  const faults = d.faults();
  const ok = d.exited() === undefined && faults.length === 0 && released && greeted;
  const cw = serverSockets(port).get('CLOSE-WAIT') ?? 0;
  return row('dialogue fuzzer', ok, `${cases} mutated dialogues (seed ${seed}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; daemon ${d.exited() ?? 'up'}; ${faults.length} faults${faults[0] ? ` (${faults[0].slice(0, 80)})` : ''}; CLOSE-WAIT ${cw}; fresh 220 ${greeted ? 'yes' : 'NO'}`);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** An hour (or soakS) of mixed hostile load; memory every 10 s; the last quarter's mean against the second quarter's. */
async function soak(d: Daemon, ports: readonly number[], seconds: number, seed: number): Promise<Row> {
  const pid = d.pid;
  const samples: number[] = [];
  const end = Date.now() + seconds * 1000;
  const sampler = setInterval(() => samples.push(rssKb(pid)), 10_000);
  let round = 0;
  while (Date.now() < end && d.exited() === undefined) {
    await starttlsFlood(d, ports[0] as number, 200);
    await smtpsFlood(d, ports[1] as number, 200);
    await fuzz(d, ports[0] as number, 500, seed + ++round);
  }
  clearInterval(sampler);
  const q = Math.max(1, Math.floor(samples.length / 4));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const early = mean(samples.slice(q, 2 * q));
  const late = mean(samples.slice(-q));
  const growth = early > 0 ? (late - early) / early : 0;
  return row('soak (memory)', d.exited() === undefined && growth < 0.2, `${seconds} s, ${round} rounds; RSS ${Math.round(early / 1024)} MB (2nd quarter) → ${Math.round(late / 1024)} MB (last quarter), ${(growth * 100).toFixed(0)} %; samples ${samples.map((x) => Math.round(x / 1024)).join(' ')}`);
}

async function main(): Promise<void> {
  const p = plan(process.argv.slice(2));
  const root = workFolder('postern-torture-');
  const rows: Row[] = [];
  const l = limits(p.short);
  const t0 = Date.now();
  const timed = async (r: Promise<Row> | Row): Promise<void> => {
    const at = Date.now();
    const x = await r;
    rows.push({ ...x, figures: `${x.figures} [${((Date.now() - at) / 1000).toFixed(1)} s]` });
  };
  try {
    const main = site(root, 'main', p.short);
    const d = await startDaemon(main.dir, main.conf, { deliver: false });
    const [tlsPort, smtpsPort] = d.ports as [number, number];
    const n = p.short ? 200 : 2000;
    await timed(starttlsFlood(d, tlsPort, n));
    await timed(smtpsFlood(d, smtpsPort, n));
    rows.push(...(await Promise.all([noopDrip(tlsPort, l.session * 1000), slowLine(tlsPort, l.command * 1000), idleCrowd(tlsPort, 1000, l.command * 1000)])));
    await timed(fuzz(d, tlsPort, p.short ? 400 : 20_000, p.seed));
    await timed(renegotiation(d, tlsPort));
    if (p.testssl) rows.push(runTestssl(root, tlsPort));
    if (p.soakS > 0) rows.push(await soak(d, [tlsPort, smtpsPort], p.soakS, p.seed));
    const alive = d.exited() === undefined;
    const faults = d.faults();
    await d.stop();
    rows.push(row('daemon health', alive && faults.length === 0, `${alive ? 'up throughout' : `exited (${d.exited()})`}; ${faults.length} fault lines in its log`));
    const crash = site(root, 'crash', p.short);
    await timed(killLoop(crash.dir, crash.conf, p.short ? 2 : 10, p.short ? 1500 : 4000, p.short ? 2 : 8));
    const disk = site(root, 'disk', p.short, 'queue min-free-space 0\n');
    await timed(fullDisk(disk.dir, disk.conf));
  } catch (e) {
    rows.push(row('torture run', false, `aborted: ${(e as Error).stack ?? String(e)}`));
  } finally {
    if (!p.keep) rmSync(root, { recursive: true, force: true });
  }
  console.log(formatTable(rows));
  console.log(`\n${rows.filter((r) => r.result === 'FAIL').length} failed, ${rows.filter((r) => r.result === 'pass').length} passed, ${rows.filter((r) => r.result === 'skipped').length} skipped in ${Math.round((Date.now() - t0) / 1000)} s${p.keep ? `; folders kept in ${root}` : ''}`);
  process.exitCode = rows.some((r) => r.result === 'FAIL') ? 1 : 0;
}

await main();
