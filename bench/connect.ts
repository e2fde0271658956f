/*
 * bench/connect.ts — a TCP connection from an optional source address,
 * with a time limit and Nagle off: what the load generator and the idle
 * sessions open by the thousand.
 */
import net from 'node:net';

/** Connect, or reject with `fail("connect timeout" | "connect ECONNREFUSED" …)`. */
export function connectWithin(host: string, port: number, localAddress: string | undefined, timeoutMs: number, fail: (msg: string) => Error = (m) => new Error(m)): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(localAddress ? { host, port, localAddress } : { host, port });
    s.setNoDelay(true);
    const t = setTimeout(() => {
      s.destroy();
      reject(fail('connect timeout'));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(fail(`connect ${e.code ?? e.message}`));
    });
  });
}
