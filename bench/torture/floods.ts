/*
 * bench/torture/floods.ts — clients that hold a connection without using
 * it: STARTTLS then a hang-up, smtps with a FIN before or during the
 * ClientHello, a NOOP drip, a command line one byte at a time, a thousand
 * idle sessions (and how long an honest client waits for its 220 meanwhile),
 * and TLS 1.2 renegotiation. Each check ends by asking the kernel whether
 * the daemon let every socket go (no CLOSE-WAIT build-up).
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { closedWithin, readUntil, serverSockets, tcp, total, waitUntil } from '../../test/helpers/sockets.js';
import type { Daemon } from './daemon.js';
import { row, type Row } from './report.js';

/** 127.0.<a>.<b>: many source addresses on loopback. */
export const source = (i: number): string => `127.0.${1 + Math.floor(i / 200) % 200}.${2 + (i % 200)}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settled(port: number, ms: number): Promise<{ ok: boolean; left: string }> {
  const ok = await waitUntil(() => total(serverSockets(port)) === 0, ms);
  return { ok, left: JSON.stringify(Object.fromEntries(serverSockets(port))) };
}

async function timeTo220(port: number, from = '127.0.0.1'): Promise<number> {
  const t0 = performance.now();
  const s = await tcp(port, from);
  s.on('error', () => undefined);
  try {
    await readUntil(s, /^220 .*\r\n/m, 10_000);
    return performance.now() - t0;
  } finally {
    s.destroy();
  }
}

/** Run `n` jobs, at most `par` at once; returns how many threw. */
async function pool(n: number, par: number, job: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await job(i).catch(() => failed++);
    }
  };
  await Promise.all(Array.from({ length: par }, worker));
  return failed;
}

export async function starttlsFlood(d: Daemon, port: number, n: number): Promise<Row> {
  const t0 = performance.now();
  const failed = await pool(n, 100, async (i) => {
    const s = await tcp(port, source(i));
    s.on('error', () => undefined);
    await readUntil(s, /^220 .*\r\n/m);
    s.write('EHLO flood.test\r\nSTARTTLS\r\n');
    await readUntil(s, /^220 2\.0\.0.*\r\n/m);
    s.end();
  });
  const st = await settled(port, 15_000);
  const ms220 = await timeTo220(port).catch(() => NaN);
  return row('abandoned STARTTLS flood', st.ok && failed === 0 && ms220 < 5000, `${n} clients (${failed} failed) in ${Math.round(performance.now() - t0)} ms; sockets left ${st.left}; fresh 220 in ${ms220.toFixed(0)} ms`);
}

export async function smtpsFlood(d: Daemon, port: number, n: number): Promise<Row> {
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00, 0x00, 0xec, 0x03, 0x03]);
  const failed = await pool(n, 100, async (i) => {
    const s = await tcp(port, source(i));
    s.on('error', () => undefined);
    if (i % 2 === 1) s.write(hello);
    s.end();
    if (!(await closedWithin(s, 10_000))) throw new Error('held');
  });
  const st = await settled(port, 15_000);
  return row('abandoned SMTPS flood', st.ok && failed === 0, `${n} clients (FIN before / during the ClientHello), ${failed} held; sockets left ${st.left}`);
}

/** A NOOP every 500 ms: the session lifetime must end it with 421 4.4.2. */
export async function noopDrip(port: number, lifetimeMs: number): Promise<Row> {
  const s = await tcp(port, '127.0.9.1');
  s.on('error', () => undefined);
  let got = await readUntil(s, /^220 .*\r\n/m);
  const t0 = performance.now();
  let noops = 0;
  let closed = false;
  s.once('close', () => (closed = true));
  let buf = '';
  s.on('data', (x: Buffer) => (buf += x.toString('latin1')));
  while (!closed && performance.now() - t0 < lifetimeMs + 10_000) {
    s.write('NOOP\r\n');
    noops++;
    await sleep(500);
  }
  got = buf;
  const ms = performance.now() - t0;
  s.destroy();
  const ok = closed && /421 4\.4\.2 /.test(got);
  return row('slow commands (NOOP drip)', ok, `${noops} NOOPs, closed after ${(ms / 1000).toFixed(1)} s (lifetime ${lifetimeMs / 1000} s), ${/421 4\.4\.2[^\r]*/.exec(got)?.[0] ?? 'no 421'}`);
}

/** A command line one byte every 300 ms: the command deadline must end it. */
export async function slowLine(port: number, commandTimeoutMs: number): Promise<Row> {
  const s = await tcp(port, '127.0.9.2');
  s.on('error', () => undefined);
  await readUntil(s, /^220 .*\r\n/m);
  const line = `EHLO ${'x'.repeat(400)}`;
  let closed = false;
  s.once('close', () => (closed = true));
  let buf = '';
  s.on('data', (x: Buffer) => (buf += x.toString('latin1')));
  const t0 = performance.now();
  for (let i = 0; i < line.length && !closed && performance.now() - t0 < commandTimeoutMs + 10_000; i++) {
    s.write(line[i] as string);
    await sleep(300);
  }
  const ms = performance.now() - t0;
  s.destroy();
  return row('slow line (byte drip)', closed && /421 4\.4\.2/.test(buf), `closed after ${(ms / 1000).toFixed(1)} s (command timeout ${commandTimeoutMs / 1000} s)`);
}

/** n idle sessions from many addresses; an honest client's time to 220 meanwhile; then all released by the deadline. */
export async function idleCrowd(port: number, n: number, commandTimeoutMs: number): Promise<Row> {
  const held: Socket[] = [];
  const failed = await pool(n, 100, async (i) => {
    const s = await tcp(port, source(1000 + i));
    s.on('error', () => undefined);
    held.push(s);
    await readUntil(s, /^220 .*\r\n/m, 10_000);
  });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push(await timeTo220(port, '127.0.9.3').catch(() => NaN));
  const worst = Math.max(...times);
  const released = await Promise.all(held.map((s) => closedWithin(s, commandTimeoutMs + 15_000)));
  const left = released.filter((x) => !x).length;
  for (const s of held) s.destroy();
  const st = await settled(port, 10_000);
  return row('idle crowd', failed === 0 && worst < 2000 && left === 0 && st.ok, `${n} idle sessions (${failed} not greeted); honest client's 220 in ≤ ${worst.toFixed(0)} ms; ${n - left} closed by the command deadline`);
}

/** openssl s_client -tls1_2, then R: refused, disconnected, logged. */
export async function renegotiation(d: Daemon, port: number): Promise<Row> {
  const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (x: Buffer) => (out += x.toString()));
  p.stderr.on('data', (x: Buffer) => (out += x.toString()));
  p.stdin.on('error', () => undefined);
  p.on('error', () => undefined);
  const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  await waitUntil(() => /250[ -]/.test(out), 5000);
  for (let i = 0; i < 5; i++) {
    p.stdin.write('R\n');
    await sleep(200);
  }
  p.stdin.write('NOOP\n');
  const t = setTimeout(() => p.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(t);
  const logged = await d.waitForLog(/smtp tls-renegotiation .*result=refused/, 3000);
  const answered = /^250 2\.0\.0 Ok/m.test(out);
  return row('TLS renegotiation', logged !== undefined && !answered, `${logged !== undefined ? 'refused and logged' : 'not logged'}; ${answered ? 'session went on' : 'disconnected'}`);
}
