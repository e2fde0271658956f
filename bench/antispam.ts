/*
 * bench/antispam.ts — what the checks at the door cost (issue 20 §5):
 * Postern receiving from bench/load.ts (10 sessions from 127.0.16.101–110,
 * ten messages a connection, so that the connect-time checks count), once plain and once with DNSBL (two
 * lists, answered NXDOMAIN by bench/dns.ts's stub and then cached),
 * greylisting with the client's network already allowlisted, `check helo
 * syntax`, and a ten-rule header_checks table. Deliveries are paused, so
 * only receiving is measured. Each configuration runs ROUNDS times,
 * alternating; the best rate of each is kept.
 *
 *   npm run build && node dist/bench/antispam.js [duration-ms] [sessions]
 *
 * Not part of `npm run bench` (bench/run.ts) yet: the side-by-side with
 * Postfix (postscreen + header_checks) is still to be written.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsStub } from './dns.js';
import { runLoad } from './load.js';
import { REPO_ROOT, workFolder } from './util.js';
import { treeCpuSeconds } from './proc.js';

const DURATION_MS = Number(process.argv[2] ?? 8000);
const SESSIONS = Number(process.argv[3] ?? 10);
/** Not this machine's own address (127.0.0.1 is "local" and skips the checks). */
const SOURCES = Array.from({ length: 10 }, (_, i) => `127.0.16.${101 + i}`);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

const HEADER_CHECKS = [
  '/^Received:.*\\.domain\\.lan/ IGNORE',
  '/^X-Originating-IP:/ IGNORE',
  '/^Subject:.*\\b(viagra|cialis|casino)\\b/ REJECT no',
  '/^Subject:.*\\$\\$\\$/ REJECT no',
  '/^From:.*@(spam|junk)\\.example/ REJECT no',
  '/^X-Mailer:.*Bulk/ HOLD',
  '/^Content-Type:.*application\\/x-msdownload/ REJECT no',
  '/^To:.*undisclosed-recipients/ WARN',
  '/^Message-ID:.*@localhost>/ WARN',
  '/^X-Spam-Flag: YES/ DISCARD',
].join('\n');

async function startPostern(dir: string, extra: string): Promise<{ port: number; proc: ChildProcess }> {
  const conf = join(dir, 'smtpd.conf');
  writeFileSync(conf, `queue path "${dir}/spool"\nhostname "mx.bench.test"\nsmtp limit max-mails 1000000\nlisten on 127.0.0.1 port 0\n${extra}\naction "bench" relay host smtp+notls://127.0.0.1:9\nmatch from any for domain "bench.test" action "bench"\n`);
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli/smtpd.js'), '-d', '-f', conf, '-P', 'mda', '-P', 'mta'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`postern did not start: ${out}`)), 30_000);
    const on = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on \S+ port (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    proc.stdout?.on('data', on);
    proc.stderr?.on('data', on);
  });
  return { port, proc };
}

interface Figures {
  readonly rate: number;
  /** The server's CPU time per accepted message, ms (steadier than the rate on a busy machine). */
  readonly cpuMs: number;
}

async function measure(name: string, extra: (dir: string) => string): Promise<Figures> {
  const dir = workFolder(`postern-bench-as-${name}-`);
  const { port, proc } = await startPostern(dir, extra(dir));
  try {
    const load = { port, sessions: SESSIONS, sources: SOURCES, perSession: 10, size: 1024 };
    // Warm-up (and the DNS cache).
    await runLoad({ ...load, durationMs: 2000 });
    const cpu0 = treeCpuSeconds(proc.pid!);
    const r = await runLoad({ ...load, durationMs: DURATION_MS });
    const cpu = treeCpuSeconds(proc.pid!) - cpu0;
    if (r.refused > 0 || r.broken > 0) process.stderr.write(`${name}: ${r.refused} refused, ${r.broken} broken: ${r.sampleReplies.join(' | ')} ${JSON.stringify(r.errors)}\n`);
    return { rate: (r.accepted / r.elapsedMs) * 1000, cpuMs: r.accepted > 0 ? (cpu * 1000) / r.accepted : NaN };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const dns = await startDnsStub();
const resolver = `resolver "127.0.0.1:${dns.port}"`;
const plain = (): string => resolver;
const checks = (dir: string): string => {
  writeFileSync(join(dir, 'header_checks'), `${HEADER_CHECKS}\n`);
  // The client's network has passed greylisting before: allowlisted.
  writeFileSync(join(dir, 'greylist.json'), JSON.stringify({ version: 1, triplets: {}, clients: { '127.0.16.0/24': { passes: 10, last: Date.now() } } }));
  return `${resolver}
dnsbl "zen.bench.test=127.0.0.[2..11]*3" "wl.bench.test=127.0.[0..255].[1..3]*-2"
dnsbl threshold 3
check helo syntax
greylist delay 5m allowlist-after 5 store "${dir}/greylist.json"
header-checks "${dir}/header_checks"`;
};
const best = { plain: { rate: 0, cpuMs: Infinity }, checks: { rate: 0, cpuMs: Infinity } };
const keep = (a: Figures, b: Figures): Figures => ({ rate: Math.max(a.rate, b.rate), cpuMs: Math.min(a.cpuMs, b.cpuMs) });
for (let i = 0; i < ROUNDS; i++) {
  best.plain = keep(best.plain, await measure('plain', plain));
  best.checks = keep(best.checks, await measure('checks', checks));
  process.stderr.write(`round ${i + 1}: plain ${best.plain.rate.toFixed(0)} msg/s ${best.plain.cpuMs.toFixed(2)} ms CPU/msg; with checks ${best.checks.rate.toFixed(0)} msg/s ${best.checks.cpuMs.toFixed(2)} ms CPU/msg\n`);
}
const queries = dns.queries();
await dns.stop();
const rateCost = (1 - best.checks.rate / best.plain.rate) * 100;
const cpuCost = (best.checks.cpuMs / best.plain.cpuMs - 1) * 100;
process.stdout.write(
  `plain receive: ${best.plain.rate.toFixed(0)} msg/s, ${best.plain.cpuMs.toFixed(2)} ms CPU/msg\n` +
    `with DNSBL + allowlisted greylisting + HELO syntax + 10 header checks: ${best.checks.rate.toFixed(0)} msg/s, ${best.checks.cpuMs.toFixed(2)} ms CPU/msg\n` +
    `cost: ${rateCost.toFixed(1)} % of the rate, ${cpuCost.toFixed(1)} % more CPU per message (target < 15 %); ${queries} DNS queries in all (null MX, DNS lists: cached)\n`,
);
