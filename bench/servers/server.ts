/*
 * bench/servers/server.ts — what the harness needs from each server under
 * test, and the child-process plumbing they share.
 *
 * Every server accepts mail for one test domain (bench.test) on a loopback
 * port, queues it durably, and delivers it — the same work for all, in one
 * of these modes:
 *
 *   maildir  to ~/Maildir of the unprivileged local user named by the local
 *            part (bench/users.ts), as that user; counted in its new/;
 *   lmtp     to the harness's Dovecot over LMTP (bench/dovecot.ts); counted
 *            in Dovecot's mailboxes;
 *   mda      through procmail (the user's ~/.procmailrc files it into
 *            ~/Maildir/); counted there;
 *   relay    to smtp-sink; counted at the sink.
 *
 * Each kind documents how it does that (`method`), and the report prints
 * it next to the figures, since the servers differ in what "durably" means.
 * A kind that cannot do a mode's work says why (`cannot`): its cell says
 * so and no ratio is claimed.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { processTree, running } from '../proc.js';
import { signal, sleep, waitExit } from '../util.js';

export type Mode = 'maildir' | 'lmtp' | 'mda' | 'relay';

export const MODES: readonly Mode[] = ['maildir', 'lmtp', 'mda', 'relay'];

/** The test domain every server accepts mail for, and the sink's address. */
export const BENCH_DOMAIN = 'bench.test';
export const LISTEN_HOST = '127.0.0.1';
export const SINK_HOST = '127.0.0.3';
/** The MDA of the mda mode, the same command line for every server (procmail reads the user's ~/.procmailrc). */
export const MDA_COMMAND = '/usr/bin/procmail -f -';

/** Where a server delivers in one mode (smtp-sink's or Dovecot's port on loopback). */
export interface Destination {
  readonly sinkPort?: number;
  readonly lmtpPort?: number;
}

/** The smtpd.conf action (OpenSMTPD syntax, shared by Postern and OpenSMTPD) of each mode. */
export function smtpdAction(mode: Mode, d: Destination): string {
  switch (mode) {
    case 'maildir':
      return 'action "bench" maildir';
    case 'lmtp':
      return `action "bench" lmtp "${LISTEN_HOST}:${d.lmtpPort ?? 24}"`;
    case 'mda':
      return `action "bench" mda "${MDA_COMMAND}"`;
    case 'relay':
      return `action "bench" relay host smtp+notls://${SINK_HOST}:${d.sinkPort ?? 9}`;
  }
}

/**
 * The smtpd.conf lines Postern and OpenSMTPD share: the listener, the
 * mode's action, the match for the test domain — and no limit on
 * messages per session (Postfix and Haraka set none; smtp-source -d sends
 * all its messages over one connection).
 */
export function smtpdConfBody(port: number, mode: Mode, d: Destination): string[] {
  return [
    'smtp limit max-mails 1000000',
    `listen on ${LISTEN_HOST} port ${port}`,
    smtpdAction(mode, d),
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
  /** lmtp mode: the port of the harness's Dovecot LMTP listener on 127.0.0.1. */
  readonly lmtpPort?: number;
  /** A fresh folder for this instance (configuration, queue, log). */
  readonly workDir: string;
  /** Postern only: write a V8 CPU profile (node --cpu-prof) into this folder at exit. */
  readonly cpuProfileDir?: string;
  /** Postern only: raise its connection limits (50 per address, 800 in all by default) to this many. */
  readonly maxConnections?: number;
  /** Postern only: the DNS server to use ("127.0.0.1:PORT", bench/dns.ts); the system's when absent. */
  readonly resolver?: string;
  /** Mail authentication (scenarios auth-verify, auth-sign): what to do, the key, and the DNS server serving the records. */
  readonly auth?: AuthOptions;
}

export interface AuthOptions {
  readonly work: 'verify' | 'sign';
  readonly domain: string;
  readonly selector: string;
  readonly keyFile: string;
  /** nsd's address (port 53: OpenDKIM's Nameservers takes no port). */
  readonly dnsAddress: string;
}

export interface RunningServer {
  readonly kind: string;
  readonly host: string;
  readonly port: number;
  /** The root of the server's process tree (memory and CPU are summed over it). */
  readonly rootPid: number;
  readonly logFile: string;
  /** Messages the server counts itself (the sink as a server); otherwise counted at the destination. */
  arrived?(): Promise<number>;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface ServerKind {
  readonly name: string;
  /** How the mode is realised for this server (printed in the report). */
  readonly method: Readonly<Record<Mode, string>>;
  /** undefined when it can run here, else the reason it cannot. */
  unavailable(): string | undefined;
  /** undefined when it can do the mode's work, else why not (its cell says so, no ratio is claimed). */
  cannot?(mode: Mode): string | undefined;
  /** Set when what it does is not the same work as the others (no ratio to Postfix is claimed): why. */
  readonly notSameWork?: string;
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
  // A zombie is done: once its parent is gone, init reaps it when it gets round to it (1.6 s here for Postfix's).
  for (let i = 0; i < 30; i++) {
    const left = tree.filter((p) => p !== pid && running(p));
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
