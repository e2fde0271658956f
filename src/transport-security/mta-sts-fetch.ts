/*
 * transport-security/mta-sts-fetch.ts — get an MTA-STS policy file over
 * HTTPS (RFC 8461 §3.3): https://mta-sts.DOMAIN/.well-known/mta-sts.txt,
 * the certificate verified against mta-sts.DOMAIN, no redirects followed,
 * status 200 only, media type text/plain, at most `maxBytes` (64 KiB by
 * default, as the RFC suggests) and `timeoutMs` in all (a server that
 * trickles its answer is cut off at the deadline, not at each read).
 * Every failure is a value with the reason, never a throw.
 */
import https from 'node:https';
import tls from 'node:tls';

export interface FetchOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Extra trusted CAs (tests, private roots); the system's are always trusted. */
  readonly ca?: readonly (string | Buffer)[];
  /** Addresses of a host name through Postern's own resolver (else the system's). */
  readonly resolve?: (host: string) => Promise<string[]>;
  /** The HTTPS port (443; tests change it). */
  readonly port?: number;
}

export type FetchResult = { readonly kind: 'ok'; readonly body: string } | { readonly kind: 'error'; readonly reason: string; readonly tlsFailure: boolean };

export const DEFAULT_FETCH: FetchOptions = { timeoutMs: 20_000, maxBytes: 64 * 1024 };

export async function fetchStsPolicy(domain: string, o: FetchOptions): Promise<FetchResult> {
  const host = `mta-sts.${domain}`;
  let address: string | undefined;
  if (o.resolve !== undefined) {
    try {
      address = (await o.resolve(host))[0];
    } catch (e) {
      return { kind: 'error', reason: `no address for ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, tlsFailure: false };
    }
    if (address === undefined) return { kind: 'error', reason: `no address for ${host}`, tlsFailure: false };
  }
  return get(host, address, o);
}

function get(host: string, address: string | undefined, o: FetchOptions): Promise<FetchResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: FetchResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = https.request({
      host: address ?? host,
      port: o.port ?? 443,
      servername: host,
      path: '/.well-known/mta-sts.txt',
      method: 'GET',
      headers: { host, accept: 'text/plain', 'user-agent': 'Postern MTA-STS' },
      ...(o.ca !== undefined ? { ca: [...tls.rootCertificates, ...o.ca] } : {}),
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
      rejectUnauthorized: true,
      agent: false,
    });
    const timer = setTimeout(() => done({ kind: 'error', reason: `no complete answer from ${host} within ${Math.round(o.timeoutMs / 100) / 10} s`, tlsFailure: false }), o.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      const tlsFailure = /certificate|CERT|self.signed|altname|SSL|TLS/i.test(`${e.code ?? ''} ${e.message}`);
      done({ kind: 'error', reason: `fetching the policy from ${host}: ${e.code ?? e.message}${e.code !== undefined && e.message !== e.code ? ` (${e.message})` : ''}`, tlsFailure });
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) return done({ kind: 'error', reason: `${host} answered HTTP ${res.statusCode ?? '?'} for the policy`, tlsFailure: false });
      const type = String(res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'text/plain') return done({ kind: 'error', reason: `${host} sent the policy as "${type ?? ''}", not text/plain`, tlsFailure: false });
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > o.maxBytes) return done({ kind: 'error', reason: `the policy from ${host} is too large (${declared} bytes, at most ${o.maxBytes})`, tlsFailure: false });
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) return done({ kind: 'error', reason: `the policy from ${host} is too large (more than ${o.maxBytes} bytes)`, tlsFailure: false });
        chunks.push(c);
      });
      res.on('error', (e) => done({ kind: 'error', reason: `reading the policy from ${host}: ${e.message}`, tlsFailure: false }));
      res.on('end', () => done({ kind: 'ok', body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end();
  });
}
