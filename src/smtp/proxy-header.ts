/*
 * smtp/proxy-header.ts — reading the PROXY protocol v2 header
 * (wire/proxy-v2.ts) off a fresh connection on a `proxy-v2` listener,
 * before the session exists: the session, the connection limits and the
 * policy then see the client the proxy speaks for.
 */
import type { Socket } from 'node:net';
import { parseProxyV2, PROXY_V2_MAX, type Endpoint } from '../wire/proxy-v2.js';

/** How long a proxy has to send its header. */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;

export interface ProxiedConnection {
  /** The real client and the address it reached; undefined: the connection's own (LOCAL, UNSPEC). */
  readonly source?: Endpoint;
  readonly destination?: Endpoint;
}

/**
 * Resolves once the header is in, with the socket paused and any bytes that
 * followed it pushed back for the session to read; rejects (with why) on a
 * header that is not one, a connection that ends first, or the time limit.
 */
export function readProxyHeader(socket: Socket, timeoutMs = PROXY_HEADER_TIMEOUT_MS): Promise<ProxiedConnection> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(why));
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const h = parseProxyV2(buf);
      if (h.kind === 'incomplete') {
        if (buf.length > PROXY_V2_MAX) fail('PROXY header too long');
        return;
      }
      if (h.kind === 'invalid') return fail(h.reason);
      cleanup();
      socket.pause();
      if (buf.length > h.length) socket.unshift(buf.subarray(h.length));
      resolve(h.kind === 'proxy' ? { source: h.source, destination: h.destination } : {});
    };
    const onEnd = (): void => fail('connection closed before the PROXY header');
    const onError = (e: Error): void => fail(`connection error before the PROXY header: ${e.message}`);
    const timer = setTimeout(() => fail(`no PROXY header within ${timeoutMs / 1000} s`), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
  });
}
