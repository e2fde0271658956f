/*
 * bench/servers/haraka.ts — Haraka (npm package Haraka, installed by
 * bench/setup.ts into bench/.peers/haraka), run as `haraka -c DIR` with
 * Haraka's default configuration copied into DIR and these changes:
 * smtp.ini listen/nodes, plugins, host_list (the test domain, accepted by
 * rcpt_to.in_host_list), me, smtp_forward.ini.
 *
 * Haraka has no queue of its own and no local delivery: it cannot do the
 * maildir, lmtp-after-queueing or mda work (its cells say so). In relay
 * mode it runs queue/smtp_forward to smtp-sink, which forwards during the
 * client's DATA (before the 250) without storing the message: not the same
 * work as a queueing server (no ratio to Postfix is claimed).
 *
 * `haraka` runs one process (smtp.ini nodes=0); `haraka2` runs Node's
 * cluster with two workers (nodes=2).
 */
import { cpSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DOMAIN, LISTEN_HOST, SINK_HOST, exitStatus, logTail, stopTree, type RunningServer, type ServerKind, type StartOptions } from './server.js';
import { PEERS_DIR, spawnWithLimits, waitListening } from '../util.js';

export const HARAKA_DIR = join(PEERS_DIR, 'haraka');
const HARAKA_PKG = join(HARAKA_DIR, 'node_modules', 'Haraka');
const HARAKA_BIN = join(HARAKA_PKG, 'bin', 'haraka');

function harakaKind(name: string, nodes: number): ServerKind {
  return {
    name,
    method: {
      maildir: 'cannot: no queue, no local delivery',
      lmtp: 'cannot: no queue (queue/lmtp hands the message on during DATA)',
      mda: 'cannot: no queue, no local delivery',
      relay: `queue/smtp_forward to smtp-sink during DATA, nothing stored (${nodes === 0 ? 'one process' : `${nodes} cluster workers`})`,
    },
    cannot: (mode) => (mode === 'relay' ? undefined : mode === 'lmtp' ? 'Haraka has no queue: it cannot queue durably before delivering' : 'Haraka has no queue and no local delivery'),
    notSameWork: 'Haraka forwards during DATA and stores nothing',
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
      const plugins = ['rcpt_to.in_host_list', 'queue/smtp_forward'];
      writeFileSync(join(cfg, 'plugins'), plugins.join('\n') + '\n');
      writeFileSync(join(cfg, 'smtp_forward.ini'), `host=${SINK_HOST}\nport=${o.sinkPort ?? 9}\nenable_tls=false\n`);
      const logFile = join(dir, 'haraka.log');
      const child = spawnWithLimits(process.execPath, [HARAKA_BIN, '-c', dir], {
        cwd: HARAKA_DIR,
        logFile,
        env: { ...process.env },
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
        alive,
        stop: () => stopTree(child, 8000),
      };
    },
  };
}

export const haraka = harakaKind('haraka', 0);
export const haraka2 = harakaKind('haraka2', 2);
