/*
 * bench/servers/sink.ts — Postfix's smtp-sink (Debian package postfix):
 * the destination of the relay scenario and, with smtp-source or the
 * harness's load generator in front of it, the physical limit of the
 * machine (client and loopback, nothing stored).
 *
 * `smtp-sink -c` prints "sess=N quit=N mesg=N" (ending in CR) each time a
 * session ends or a message's final dot arrives; the last mesg= is the
 * number of messages received. It runs as `nobody` when started by root
 * (smtp-sink refuses to keep root privileges).
 */
import type { ChildProcess } from 'node:child_process';
import { LISTEN_HOST, SINK_HOST, exitStatus, stopTree, type RunningServer, type ServerKind, type StartOptions } from './server.js';
import { isRoot, run, sleep, spawnWithLimits, waitListening, which } from '../util.js';

export interface Sink {
  readonly host: string;
  readonly port: number;
  readonly rootPid: number;
  /** Messages received so far. */
  messages(): number;
  /** performance.now() of the last message received (0 before the first). */
  lastMessageAt(): number;
  alive(): boolean;
  stop(): Promise<void>;
}

export function sinkUnavailable(): string | undefined {
  return which('smtp-sink') ? undefined : 'smtp-sink not found (Debian package postfix)';
}

/** Parses the last "mesg=N" of smtp-sink -c output; undefined when there is none. */
export function lastMessageCount(text: string): number | undefined {
  const i = text.lastIndexOf('mesg=');
  if (i < 0) return undefined;
  const m = /^mesg=(\d+)/.exec(text.slice(i));
  return m ? Number(m[1]) : undefined;
}

export async function startSink(port: number, host = SINK_HOST): Promise<Sink> {
  const args = ['-c', ...(isRoot() ? ['-u', 'nobody'] : []), `${host}:${port}`, '1024'];
  const child: ChildProcess = spawnWithLimits('smtp-sink', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let lastAt = 0;
  let tail = '';
  let stderr = '';
  child.stdout?.setEncoding('latin1');
  child.stdout?.on('data', (chunk: string) => {
    const text = tail + chunk;
    // Only up to the last CR: a counter cut in the middle of its digits waits for the next chunk.
    const n = lastMessageCount(text.slice(0, Math.max(0, text.lastIndexOf('\r'))));
    if (n !== undefined && n > count) {
      count = n;
      lastAt = performance.now();
    }
    tail = text.slice(-64);
  });
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  try {
    await waitListening(host, port, 10_000, alive);
  } catch (e) {
    await stopTree(child, 1000);
    throw new Error(`smtp-sink did not start (${exitStatus(child)}): ${(e as Error).message} ${stderr}`);
  }
  return {
    host,
    port,
    rootPid: child.pid as number,
    messages: () => count,
    lastMessageAt: () => lastAt,
    alive,
    stop: () => stopTree(child, 2000),
  };
}

/**
 * A destination that comes back: smtp-sink starts at host:port, `retry`
 * tells the server to deliver now, and arrivals are counted until `count`
 * arrived or `ms` passed; the time runs from the retry to the last arrival
 * (or to the end of the wait). `secondHalfRate`: the rate over the second
 * half of the wait alone, once the server has got going (Postfix's qmgr
 * ramps up for many seconds after a flush); the overall rate when all had
 * arrived before the half.
 */
export async function drainToSink(host: string, port: number, count: number, ms: number, retry: () => unknown): Promise<{ delivered: number; seconds: number; rate: number; secondHalfRate: number }> {
  const sink = await startSink(port, host);
  try {
    const ts = performance.now();
    await retry();
    let half: { at: number; count: number } | undefined;
    while (sink.messages() < count && performance.now() - ts < ms) {
      await sleep(250);
      if (!half && performance.now() - ts >= ms / 2) half = { at: performance.now(), count: sink.messages() };
    }
    const delivered = sink.messages();
    const end = delivered >= count ? sink.lastMessageAt() : performance.now();
    const seconds = (end - ts) / 1000;
    const rate = Math.round(delivered / Math.max(0.001, seconds));
    const secondHalfRate = half && end > half.at + 1000 ? Math.round(((delivered - half.count) * 1000) / (end - half.at)) : rate;
    return { delivered, seconds: Math.round(seconds * 10) / 10, rate, secondHalfRate };
  } finally {
    await sink.stop();
  }
}

/** smtp-sink as a server under test: the ceiling of the client and loopback, nothing stored. */
export const sinkKind: ServerKind = {
  name: 'sink',
  method: {
    maildir: 'smtp-sink: answers 250 and stores nothing — the physical limit of client and loopback; counted by its own counter',
    lmtp: 'as in maildir',
    mda: 'as in maildir',
    relay: 'as in maildir',
  },
  notSameWork: 'smtp-sink stores and delivers nothing: the ceiling of client and loopback',
  unavailable: sinkUnavailable,
  version: () => `smtp-sink (Postfix ${run('postconf', ['-h', 'mail_version']).stdout.trim()})`,
  async start(o: StartOptions): Promise<RunningServer> {
    const s = await startSink(o.port, LISTEN_HOST);
    return { kind: 'sink', host: LISTEN_HOST, port: o.port, rootPid: s.rootPid, logFile: '', arrived: async () => s.messages(), alive: s.alive, stop: s.stop };
  },
};
