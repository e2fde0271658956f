/*
 * bench/servers/server.ts — what the harness needs from each server under
 * test, and the child-process plumbing they share.
 *
 * Every server accepts mail for one test domain (bench.test) on a loopback
 * port, in one of two modes, the same for all:
 *
 *   queue  accept, store durably as the server does for real mail, then
 *          discard (or keep, delivery paused); counted where it was stored;
 *   relay  accept, queue, and relay to smtp-sink; counted at the sink.
 *
 * Each kind documents how it meets that (`method`), and the report prints
 * it next to the figures, since the servers differ in what "durably" means.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { processTree } from '../proc.js';
import { isAlive, signal, sleep, waitExit } from '../util.js';

export type Mode = 'queue' | 'relay';

/** The test domain every server accepts mail for, and the sink's address. */
export const BENCH_DOMAIN = 'bench.test';
export const LISTEN_HOST = '127.0.0.1';
export const SINK_HOST = '127.0.0.3';

/**
 * The smtpd.conf lines Postern and OpenSMTPD share: the listener, the relay
 * action to the sink, the match for the test domain — and no limit on
 * messages per session (Postfix and Haraka set none; smtp-source -d sends
 * all its messages over one connection).
 */
export function smtpdConfBody(port: number, sinkPort: number): string[] {
  return [
    'smtp limit max-mails 1000000',
    `listen on ${LISTEN_HOST} port ${port}`,
    `action "bench" relay host smtp+notls://${SINK_HOST}:${sinkPort}`,
    `match from any for domain "${BENCH_DOMAIN}" action "bench"`,
    '',
  ];
}

/** Entries of QUEUE/<bucket>/ that `counts`, over every bucket (0 when QUEUE is missing). */
export function countInBuckets(queue: string, counts: (name: string) => boolean = () => true): number {
  let buckets: string[];
  try {
    buckets = readdirSync(queue);
  } catch {
    return 0;
  }
  let n = 0;
  for (const b of buckets) {
    try {
      for (const f of readdirSync(join(queue, b))) if (counts(f)) n++;
    } catch {
      /* a bucket that vanished */
    }
  }
  return n;
}

export interface StartOptions {
  readonly mode: Mode;
  readonly port: number;
  /** relay mode: where to relay (smtp-sink). */
  readonly sinkPort?: number;
  /** A fresh folder for this instance (configuration, queue, log). */
  readonly workDir: string;
  /** Postern only: write a V8 CPU profile (node --cpu-prof) into this folder at exit. */
  readonly cpuProfileDir?: string;
  /** Postern only: raise its connection limits (50 per address, 800 in all by default) to this many. */
  readonly maxConnections?: number;
  /** Postern only: the DNS server to use ("127.0.0.1:PORT", bench/dns.ts); the system's when absent. */
  readonly resolver?: string;
}

export interface RunningServer {
  readonly kind: string;
  readonly host: string;
  readonly port: number;
  /** The root of the server's process tree (memory and CPU are summed over it). */
  readonly rootPid: number;
  readonly logFile: string;
  /** queue mode: messages stored (or discarded after storing) so far. */
  arrived(): Promise<number>;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface ServerKind {
  readonly name: string;
  /** How the mode is realised for this server (printed in the report). */
  readonly method: Readonly<Record<Mode, string>>;
  /** undefined when it can run here, else the reason it cannot. */
  unavailable(): string | undefined;
  version(): string;
  start(o: StartOptions): Promise<RunningServer>;
}

/**
 * Stops a server started as `child`: SIGTERM to the root, then SIGKILL to
 * whatever is left of the tree after `graceMs` (the tree is listed before
 * the root dies, since its children are re-parented then).
 */
export async function stopTree(child: ChildProcess, graceMs: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const tree = processTree(pid);
  if (child.exitCode === null && child.signalCode === null) signal(pid, 'SIGTERM');
  const exited = await waitExit(child, graceMs);
  if (!exited) signal(pid, 'SIGKILL');
  await waitExit(child, 2000);
  // Children the root did not take with it (Postfix's daemons notice their master's death only at their next timeout).
  for (let i = 0; i < 30; i++) {
    const left = tree.filter((p) => p !== pid && isAlive(p));
    if (left.length === 0) return;
    if (i >= 3) for (const p of left) signal(p, 'SIGKILL');
    await sleep(100);
  }
}

/** The last lines of a log file, on one line (for error messages: the folder is removed afterwards). */
export function logTail(file: string, lines = 3): string {
  try {
    const text = readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
    return text ? `log: ${text.slice(-600)}` : 'empty log';
  } catch {
    return 'no log';
  }
}

/** The child's exit as a short phrase, for error messages. */
export function exitStatus(child: ChildProcess): string {
  return child.exitCode !== null ? `status ${child.exitCode}` : child.signalCode ? `signal ${child.signalCode}` : 'running';
}
