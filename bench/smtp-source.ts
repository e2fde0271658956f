/*
 * bench/smtp-source.ts — Postfix's smtp-source (Debian package postfix) as
 * a second, independent load generator, written in C.
 *
 * It runs SESSIONS sessions in parallel. With `reuse` (-d) each session
 * keeps its connection and sends message after message over it (MAIL,
 * RCPT…, DATA, one command at a time); without, every message has its own
 * connection (connect, HELO/EHLO, MAIL, RCPT…, DATA, QUIT), so connection
 * set-up is part of every message. It does not pipeline, and it
 * stops at the first error reply. `-c` prints a counter (ending in CR)
 * after each completed DATA; the last one is the number of messages the
 * server answered 250. The run is bounded: killed after `timeoutMs`.
 */
import { spawn } from 'node:child_process';
import { BENCH_DOMAIN } from './servers/server.js';
import { limitPrefix, which } from './util.js';
import { userName } from './users.js';

export interface SourceOptions {
  readonly host: string;
  readonly port: number;
  readonly sessions: number;
  readonly messages: number;
  /** Body length (-l): smtp-source adds its own few header lines. */
  readonly size: number;
  readonly rcpts: number;
  /** -d: keep the connection and send the next message over it (as the reference figures were measured). */
  readonly reuse: boolean;
  readonly timeoutMs: number;
}

export interface SourceResult {
  /** Messages answered 250 (smtp-source's counter). */
  readonly completed: number;
  readonly elapsedMs: number;
  readonly status: number | null;
  readonly timedOut: boolean;
  /** smtp-source's error output (it stops at the first error reply). */
  readonly error: string;
}

export const smtpSourceUnavailable = (): string | undefined => (which('smtp-source') ? undefined : 'smtp-source not found (Debian package postfix)');

/** Parses smtp-source -c output: the last counter before a CR or LF. */
export function lastCounter(text: string): number {
  const m = /(\d+)[\r\n]*$/.exec(text.replace(/[\r\n]+$/, ''));
  return m ? Number(m[1]) : 0;
}

export function runSmtpSource(o: SourceOptions, onStart?: () => void): Promise<SourceResult> {
  const args = [
    '-c',
    ...(o.reuse ? ['-d'] : []),
    '-s', String(o.sessions),
    '-m', String(o.messages),
    '-l', String(o.size),
    '-r', String(o.rcpts),
    '-M', 'source.bench.test',
    '-f', 'source@source.bench.test',
    '-t', `${userName(0)}@${BENCH_DOMAIN}`,
    `${o.host}:${o.port}`,
  ];
  return new Promise((resolve) => {
    const prefix = limitPrefix();
    const child = prefix.length > 0 ? spawn(prefix[0] as string, [...prefix.slice(1), 'smtp-source', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('smtp-source', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const t0 = performance.now();
    onStart?.();
    let tail = '';
    let err = '';
    let timedOut = false;
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (d: string) => {
      tail = (tail + d).slice(-64);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 2000) err += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ completed: lastCounter(tail), elapsedMs: performance.now() - t0, status, timedOut, error: err.trim() });
    });
  });
}
