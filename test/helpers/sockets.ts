/*
 * test/helpers/sockets.ts — what the kernel says about a server's sockets
 * (`ss -tan`), and small waits for hostile-client tests: a daemon that
 * never releases a connection shows it here as ESTAB or CLOSE-WAIT.
 */
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';

/**
 * Server-side TCP sockets on `port` that the daemon may still hold, counted by state: every state
 * but LISTEN and TIME-WAIT (the kernel's alone, after the server closed first).
 */
export function serverSockets(port: number): Map<string, number> {
  const r = spawnSync('ss', ['-tanH'], { encoding: 'utf8' });
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    const state = f[0];
    const local = f[3];
    if (state === undefined || local === undefined || state === 'LISTEN' || state === 'TIME-WAIT') continue;
    if (!local.endsWith(`:${port}`)) continue;
    out.set(state, (out.get(state) ?? 0) + 1);
  }
  return out;
}

export function total(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** Poll `cond` every 100 ms until it holds or timeoutMs passes; returns whether it held. */
export async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Open a TCP connection from `localAddress` (any 127.x.y.z works on Linux loopback). */
export function tcp(port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, localAddress, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Read from `s` until `re` matches what arrived (latin1), or reject after timeoutMs. */
export function readUntil(s: Socket, re: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (e?: Error): void => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('close', onClose);
      if (e) reject(e);
      else resolve(buf);
    };
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      if (re.test(buf)) done();
    };
    const onClose = (): void => done(new Error(`closed before ${re} (got ${JSON.stringify(buf)})`));
    const t = setTimeout(() => done(new Error(`timeout waiting for ${re} (got ${JSON.stringify(buf)})`)), timeoutMs);
    s.on('data', onData);
    s.once('close', onClose);
  });
}

/** Resolves true when `s` closes within timeoutMs. */
export function closedWithin(s: Socket, timeoutMs: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
