/*
 * bench/servers/haraka.ts — Haraka (npm package Haraka, installed by
 * bench/setup.ts into bench/.peers/haraka), run as `haraka -c DIR` with
 * Haraka's default configuration copied into DIR and these changes:
 * smtp.ini listen/nodes, plugins, host_list (the test domain, accepted by
 * rcpt_to.in_host_list), me, smtp_forward.ini.
 *
 * Haraka has no queue of its own: queue mode is `queue/discard` (told to
 * discard by YES_REALLY_DO_DISCARD), preceded by a four-line plugin of the
 * harness, bench_count, which counts messages reaching the queue hook in
 * memory and writes the count to a file every 100 ms (one file per
 * worker). Nothing touches the disk per message, so its figures are those
 * of a server with no durability at all. relay mode: queue/smtp_forward to
 * smtp-sink, which forwards during the client's DATA (before the 250),
 * without storing the message either.
 *
 * `haraka` runs one process (smtp.ini nodes=0); `haraka2` runs Node's
 * cluster with two workers (nodes=2).
 */
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DOMAIN, LISTEN_HOST, SINK_HOST, exitStatus, logTail, stopTree, type RunningServer, type ServerKind, type StartOptions } from './server.js';
import { PEERS_DIR, spawnWithLimits, waitListening } from '../util.js';

export const HARAKA_DIR = join(PEERS_DIR, 'haraka');
const HARAKA_PKG = join(HARAKA_DIR, 'node_modules', 'Haraka');
const HARAKA_BIN = join(HARAKA_PKG, 'bin', 'haraka');

/** The harness's counting plugin (CommonJS, loaded by Haraka's plugin loader). */
export const BENCH_COUNT_PLUGIN = `// bench_count: written by Postern's benchmark harness (bench/servers/haraka.ts).
// Counts messages that reach the queue hook, in memory; writes the count to
// $BENCH_COUNT_DIR/count.<pid> every 100 ms (write, then rename: never read
// half written). The next queue plugin decides what happens to the message.
const fs = require('node:fs');
let count = 0;
exports.register = function () {
    const file = process.env.BENCH_COUNT_DIR + '/count.' + process.pid;
    setInterval(() => {
        fs.writeFileSync(file + '.tmp', String(count));
        fs.renameSync(file + '.tmp', file);
    }, 100).unref();
};
exports.hook_queue = function (next) {
    count++;
    next();
};
`;

function harakaKind(name: string, nodes: number): ServerKind {
  return {
    name,
    method: {
      queue: `nothing written: a counting plugin, then queue/discard (in memory only; ${nodes === 0 ? 'one process' : `${nodes} cluster workers`}); counted by that plugin`,
      relay: 'queue/smtp_forward to smtp-sink during DATA (not stored); counted at the sink',
    },
    unavailable: () => (existsSync(HARAKA_BIN) ? undefined : `${HARAKA_BIN} missing (bench/setup.ts installs it)`),
    version: () => {
      try {
        const v = (JSON.parse(readFileSync(join(HARAKA_PKG, 'package.json'), 'utf8')) as { version: string }).version;
        return `Haraka ${v}${nodes ? `, ${nodes} workers` : ''}, Node ${process.version}`;
      } catch {
        return 'Haraka (version unknown)';
      }
    },
    async start(o: StartOptions): Promise<RunningServer> {
      const dir = o.workDir;
      const cfg = join(dir, 'config');
      mkdirSync(join(dir, 'plugins'), { recursive: true });
      cpSync(join(HARAKA_PKG, 'config'), cfg, { recursive: true });
      writeFileSync(join(cfg, 'smtp.ini'), `[main]\nlisten=${LISTEN_HOST}:${o.port}\nnodes=${nodes}\nforce_shutdown_timeout=5\n`);
      writeFileSync(join(cfg, 'host_list'), `${BENCH_DOMAIN}\n`);
      writeFileSync(join(cfg, 'me'), 'haraka.bench.localhost\n');
      const plugins = o.mode === 'queue' ? ['rcpt_to.in_host_list', 'bench_count', 'queue/discard'] : ['rcpt_to.in_host_list', 'queue/smtp_forward'];
      writeFileSync(join(cfg, 'plugins'), plugins.join('\n') + '\n');
      writeFileSync(join(cfg, 'smtp_forward.ini'), `host=${SINK_HOST}\nport=${o.sinkPort ?? 9}\nenable_tls=false\n`);
      writeFileSync(join(dir, 'plugins', 'bench_count.js'), BENCH_COUNT_PLUGIN);
      const counts = join(dir, 'counts');
      mkdirSync(counts, { recursive: true });
      const logFile = join(dir, 'haraka.log');
      const child = spawnWithLimits(process.execPath, [HARAKA_BIN, '-c', dir], {
        cwd: HARAKA_DIR,
        logFile,
        env: { ...process.env, BENCH_COUNT_DIR: counts, YES_REALLY_DO_DISCARD: '1' },
      });
      const alive = (): boolean => child.exitCode === null && child.signalCode === null;
      try {
        await waitListening(LISTEN_HOST, o.port, 30_000, alive);
      } catch (e) {
        await stopTree(child, 2000);
        throw new Error(`haraka did not start (${exitStatus(child)}): ${(e as Error).message}: ${logTail(logFile)}`);
      }
      return {
        kind: name,
        host: LISTEN_HOST,
        port: o.port,
        rootPid: child.pid as number,
        logFile,
        arrived: async () => {
          await new Promise((r) => setTimeout(r, 150)); // the plugin writes every 100 ms
          let n = 0;
          for (const f of readdirSync(counts)) if (!f.endsWith('.tmp')) n += Number(readFileSync(join(counts, f), 'utf8')) || 0;
          return n;
        },
        alive,
        stop: () => stopTree(child, 8000),
      };
    },
  };
}

export const haraka = harakaKind('haraka', 0);
export const haraka2 = harakaKind('haraka2', 2);
