/*
 * bench/antispam.ts — what the checks at the door cost (issue 20 §5), an
 * extra scenario of `npm run bench` (`--scenario antispam`), Postern beside
 * Postfix doing the same, receiving only (Postern with deliveries paused,
 * Postfix without its qmgr: both queue durably and deliver nothing):
 *
 *   plain    receive;
 *   checks   Postern: DNSBL (two lists, one an allowlist with a negative
 *            weight), greylisting with the client network already
 *            allowlisted, `check helo syntax`, a ten-rule header_checks
 *            table. Postfix: postscreen with the same lists and weights,
 *            `reject_invalid_helo_hostname`, the same header_checks table
 *            (Postfix has no greylisting of its own);
 *   rspamd   the same rspamd (its proxy in milter mode) as the one milter
 *            of each, and nothing else.
 *
 * The DNS lists are answered NXDOMAIN by bench/dns.ts's stub on
 * 127.0.22.53:53 (Postern's `resolver`; Postfix reads its DNS servers
 * from /etc/resolv.conf only, so it runs in a private mount namespace
 * with a resolv.conf naming the stub). The load is bench/load.ts: 10
 * sessions from 127.0.22.101–110, ten 1 KB messages a connection, so that
 * the connect-time checks count. Each cell's server is started once and
 * warmed up once, then each cell runs `runs` times, the cells taking turns
 * (the other cells' servers idle meanwhile); the report gives the median of each figure (on a shared
 * machine single runs vary by a third or more) and the range of the rates.
 * CPU is the server's whole process tree; rspamd's own is counted apart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsStub } from './dns.js';
import { runLoad } from './load.js';
import { freePort, REPO_ROOT, workFolder } from './util.js';
import { treeCpuSeconds } from './proc.js';
import { LISTEN_HOST, BENCH_DOMAIN } from './servers/server.js';
import { postfix, postfixMasterCf, startPostfix } from './servers/postfix.js';
import { startRspamd } from '../test/e2e/filter-helpers.js';
import type { ExtraContext, ExtraResult, ExtraScenario } from './extra-scenarios.js';

/** Not this machine's own address (127.0.0.1 is "local" and skips the checks). */
const SOURCES = Array.from({ length: 10 }, (_, i) => `127.0.22.${101 + i}`);
const DNS_HOST = '127.0.22.53';
const RSPAMD_HOST = '127.0.22.1';

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

type Setup = 'plain' | 'checks' | 'rspamd';
const SETUPS: readonly Setup[] = ['plain', 'checks', 'rspamd'];

interface Figures {
  readonly rate: number;
  /** The server's CPU time per accepted message, ms (steadier than the rate on a busy machine). */
  readonly cpuMs: number;
  /** rspamd's CPU time per accepted message, ms (rspamd cells). */
  readonly rspamdCpuMs?: number;
}

interface Running {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

function posternConf(dir: string, setup: Setup): string {
  const resolver = `resolver "${DNS_HOST}:53"`;
  let extra = '';
  let filter = '';
  if (setup === 'checks') {
    writeFileSync(join(dir, 'header_checks'), `${HEADER_CHECKS}\n`);
    // The client's network has passed greylisting before: allowlisted.
    writeFileSync(join(dir, 'greylist.json'), JSON.stringify({ version: 1, triplets: {}, clients: { '127.0.22.0/24': { passes: 10, last: Date.now() } } }));
    extra = `dnsbl "zen.bench.test=127.0.0.[2..11]*3" "wl.bench.test=127.0.[0..255].[1..3]*-2"
dnsbl threshold 3
check helo syntax
greylist delay 5m allowlist-after 5 store "${dir}/greylist.json"
header-checks "${dir}/header_checks"`;
  } else if (setup === 'rspamd') {
    extra = `filter "rspamd" milter "inet:${RSPAMD_HOST}:11332"`;
    filter = ' filter rspamd';
  }
  return `queue path "${dir}/spool"\nhostname "mx.bench.test"\n${resolver}\nsmtp limit max-mails 1000000\nlisten on ${LISTEN_HOST} port 0${filter}\n${extra}\naction "bench" relay host smtp+notls://127.0.0.1:9\nmatch from any for domain "${BENCH_DOMAIN}" action "bench"\n`;
}

async function startPostern(dir: string, setup: Setup): Promise<Running> {
  const conf = join(dir, 'smtpd.conf');
  writeFileSync(conf, posternConf(dir, setup));
  const proc: ChildProcess = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli/smtpd.js'), '-d', '-f', conf, '-P', 'mda', '-P', 'mta'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`postern did not start: ${out.slice(-2000)}`)), 60_000);
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
  return {
    port,
    pid: proc.pid!,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

/** master.cf without qmgr (mail stays queued, as Postern's with deliveries paused); with postscreen in front of smtpd for `checks`. */
function postfixMaster(port: number, setup: Setup): string {
  const rows = postfixMasterCf(port)
    .split('\n')
    .filter((l) => !l.startsWith('qmgr '));
  if (setup !== 'checks') return rows.join('\n');
  const front = `${LISTEN_HOST}:${port}  inet  n  -  n  -  1  postscreen`;
  return [front, ...rows.filter((l) => !l.startsWith(`${LISTEN_HOST}:`)), 'smtpd  pass  -  -  n  -  -  smtpd', 'dnsblog  unix  -  -  n  -  0  dnsblog', 'tlsproxy  unix  -  -  n  -  0  tlsproxy', ''].join('\n');
}

function postfixMain(dir: string, setup: Setup): string[] {
  // Only this host is "mynetworks": the load's addresses get the checks (and postscreen's access list no free pass).
  // in_flow_delay off: with no qmgr nothing is delivered, and Postfix would pause a second before each message.
  const common = ['mynetworks = 127.0.0.1/32', 'postscreen_access_list =', 'smtpd_helo_required = yes', 'in_flow_delay = 0'];
  if (setup === 'checks') {
    writeFileSync(join(dir, 'header_checks'), `${HEADER_CHECKS}\n`);
    return [
      ...common,
      'postscreen_dnsbl_sites = zen.bench.test=127.0.0.[2..11]*3 wl.bench.test=127.0.[0..255].[1..3]*-2',
      'postscreen_dnsbl_threshold = 3',
      'postscreen_dnsbl_action = enforce',
      // A client's first connection waits out the pregreet test (6 s by default, longer than the warm-up); then it is cached as passed.
      'postscreen_greet_wait = 1s',
      'smtpd_helo_restrictions = reject_invalid_helo_hostname',
      `header_checks = regexp:${dir}/header_checks`,
    ];
  }
  if (setup === 'rspamd') return [...common, `smtpd_milters = inet:${RSPAMD_HOST}:11332`, 'milter_protocol = 6', 'milter_default_action = tempfail'];
  return common;
}

async function startPostfixCell(dir: string, setup: Setup): Promise<Running> {
  const port = await freePort(LISTEN_HOST);
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver ${DNS_HOST}\noptions timeout:1 attempts:1\n`);
  const s = await startPostfix({ mode: 'relay', port, workDir: dir, sinkPort: 9 }, { main: postfixMain(dir, setup), master: postfixMaster(port, setup), resolvConf: resolv });
  return { port, pid: s.rootPid, stop: () => s.stop() };
}

/** A cell's server, started once: its folder, and whether it has had its warm-up. */
interface Cell extends Running {
  readonly dir: string;
  warm: boolean;
}

async function startCell(server: 'postern' | 'postfix', setup: Setup): Promise<Cell> {
  const dir = workFolder(`postern-bench-as-${server}-${setup}-`);
  const s = server === 'postern' ? await startPostern(dir, setup) : await startPostfixCell(dir, setup);
  return { ...s, dir, warm: false };
}

/** One run against a cell's server (warmed up first, once). */
async function measure(ctx: ExtraContext, server: string, setup: Setup, s: Cell, rspamdPid: number | undefined): Promise<Figures> {
  const load = { port: s.port, sessions: 10, sources: SOURCES, perSession: 10, size: 1024 };
  if (!s.warm) {
    // Warm-up (DNS caches, postscreen's cache of passed clients, rspamd's maps).
    await runLoad({ ...load, durationMs: 2000 });
    s.warm = true;
  }
  const cpu0 = treeCpuSeconds(s.pid);
  const r0 = rspamdPid !== undefined ? treeCpuSeconds(rspamdPid) : 0;
  const r = await runLoad({ ...load, durationMs: ctx.params.durationMs });
  const cpu = treeCpuSeconds(s.pid) - cpu0;
  const rcpu = rspamdPid !== undefined ? treeCpuSeconds(rspamdPid) - r0 : undefined;
  if (r.refused > 0 || r.broken > 0) ctx.progress(`  ${server} ${setup}: ${r.refused} refused, ${r.broken} broken: ${r.sampleReplies.join(' | ')} ${JSON.stringify(r.errors)}`);
  const per = (sec: number): number => (r.accepted > 0 ? (sec * 1000) / r.accepted : NaN);
  return { rate: (r.accepted / r.elapsedMs) * 1000, cpuMs: per(cpu), ...(rcpu !== undefined ? { rspamdCpuMs: per(rcpu) } : {}) };
}

const median = (xs: readonly number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

/** The median of each figure over the runs of one cell, and the lowest and highest rate. */
function summary(runs: readonly Figures[]): Figures & { readonly rateMin: number; readonly rateMax: number } {
  const r = runs.map((f) => f.rate);
  const rs = runs.flatMap((f) => (f.rspamdCpuMs !== undefined ? [f.rspamdCpuMs] : []));
  return { rate: median(r), cpuMs: median(runs.map((f) => f.cpuMs)), ...(rs.length > 0 ? { rspamdCpuMs: median(rs) } : {}), rateMin: Math.min(...r), rateMax: Math.max(...r) };
}

async function run(ctx: ExtraContext): Promise<ExtraResult> {
  const servers = (['postern', 'postfix'] as const).filter((n) => ctx.servers.length === 0 || ctx.servers.includes(n));
  const why = postfix.unavailable();
  const withPostfix = servers.filter((n) => n !== 'postfix' || why === undefined);
  const dns = await startDnsStub(DNS_HOST, 53);
  const rspamdDir = mkdtempSync('/tmp/postern-bench-rspamd-');
  let rspamd: Awaited<ReturnType<typeof startRspamd>> | undefined;
  const runs: Record<string, Partial<Record<Setup, Figures[]>>> = {};
  // Each cell's server is started once and kept (idle while the others run): the runs take turns, as before,
  // without a start, a stop and a warm-up per run (until 2026-12-08: 18 starts in a full run, about 30 s more).
  const cells = new Map<string, Cell>();
  try {
    ctx.progress('  starting rspamd (minutes on a loaded machine)…');
    rspamd = await startRspamd(rspamdDir, RSPAMD_HOST, `${DNS_HOST}:53`);
    for (let i = 0; i < ctx.params.runs; i++) {
      for (const setup of SETUPS) {
        for (const server of withPostfix) {
          const key = `${server} ${setup}`;
          const cell = cells.get(key) ?? (await startCell(server, setup));
          cells.set(key, cell);
          const f = await measure(ctx, server, setup, cell, setup === 'rspamd' ? rspamd.proc.pid : undefined);
          ((runs[server] ??= {})[setup] ??= []).push(f);
          ctx.progress(`  ${server} ${setup}: ${f.rate.toFixed(0)} msgs/s, ${f.cpuMs.toFixed(2)} ms CPU/msg${f.rspamdCpuMs !== undefined ? `, rspamd ${f.rspamdCpuMs.toFixed(2)} ms CPU/msg` : ''}`);
        }
      }
    }
  } finally {
    for (const c of cells.values()) {
      await c.stop();
      if (ctx.keep) ctx.progress(`  kept ${c.dir}`);
      else ctx.trash(c.dir);
    }
    await rspamd?.stop();
    rmSync(rspamdDir, { recursive: true, force: true });
    await dns.stop();
  }
  return { lines: report(runs, why), data: { runs, dnsQueries: dns.queries() } };
}

function report(runs: Record<string, Partial<Record<Setup, Figures[]>>>, postfixMissing: string | undefined): string[] {
  const lines = ['| server | setup | msgs/s (median; range) | ms CPU/msg (server) | ms CPU/msg (rspamd) | vs plain (medians) |', '| --- | --- | --- | --- | --- | --- |'];
  for (const [server, cells] of Object.entries(runs)) {
    const plain = cells.plain && summary(cells.plain);
    for (const setup of SETUPS) {
      const all = cells[setup];
      if (!all || all.length === 0) continue;
      const f = summary(all);
      const cost = plain && setup !== 'plain' ? `rate ${signed((f.rate / plain.rate - 1) * 100)} %, CPU ${signed((f.cpuMs / plain.cpuMs - 1) * 100)} %` : '';
      lines.push(`| ${server} | ${setup} | ${f.rate.toFixed(0)} (${f.rateMin.toFixed(0)}–${f.rateMax.toFixed(0)}) | ${f.cpuMs.toFixed(2)} | ${f.rspamdCpuMs?.toFixed(2) ?? ''} | ${cost} |`);
    }
  }
  if (postfixMissing) lines.push('', `Postfix: ${postfixMissing}.`);
  return lines;
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(1)}`;
}

export const antispam: ExtraScenario = {
  name: 'antispam',
  title: 'Checks at the door and rspamd as a milter: Postern and Postfix receiving (issue 20 §5)',
  quick: false, // full runs and --scenario only: rspamd and two Postfix set-ups would take --quick past its 4 minutes
  servers: ['postern', 'postfix'],
  run,
};
