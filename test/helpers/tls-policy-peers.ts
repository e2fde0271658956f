/*
 * test/helpers/tls-policy-peers.ts — peers for the transport-security
 * tests: server certificates signed by a test CA (certs.ts makes the CA),
 * and an HTTPS server on loopback that serves MTA-STS policy files (or
 * misbehaves on purpose: too large, never finishing, wrong type) and takes
 * TLS-RPT POSTs; and a relay agent with a TLS policy engine (policyAgent).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { CertFiles } from './certs.js';
import { TEST_SELF } from './mta-peers.js';
import { RelayAgent } from '../../src/mta/agent.js';
import { MailLog } from '../../src/log/maillog.js';
import { Stats } from '../../src/stats.js';
import { Resolver } from '../../src/dns/resolver.js';
import type { Config } from '../../src/config/model.js';
import { TransportSecurity, type TransportSecurityOptions } from '../../src/transport-security/engine.js';
import { TlsRptStore } from '../../src/transport-security/tlsrpt-store.js';

function openssl(args: readonly string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

/** A server certificate for `names` (the first is the CN) signed by `ca`; `days` < 0 makes an expired one. */
export function signedCert(dir: string, name: string, ca: CertFiles, o: { names?: readonly string[]; days?: number } = {}): CertFiles & { pem: string } {
  const base = join(dir, name.replace(/[^a-z0-9.-]/gi, '_'));
  const cert = `${base}.crt`;
  const key = `${base}.key`;
  const ext = `${base}.ext`;
  const names = o.names ?? [name];
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', `${base}.csr`]);
  const days = o.days ?? 2;
  if (days >= 0) openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', String(days), '-extfile', ext, '-out', cert]);
  else openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-not_before', '20200101000000Z', '-not_after', '20200102000000Z', '-extfile', ext, '-out', cert]);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

export type PolicyBehaviour = { readonly body: string; readonly type?: string } | { readonly huge: number } | { readonly stall: true } | { readonly status: number };

export interface PolicyServer {
  readonly port: number;
  /** What to answer for a Host header (mta-sts.DOMAIN). */
  set(host: string, b: PolicyBehaviour): void;
  /** Requests seen, "HOST PATH". */
  readonly requests: string[];
  /** Bodies POSTed (TLS-RPT https: reports), with their content type. */
  readonly posts: { path: string; type: string; body: Buffer }[];
  close(): Promise<void>;
}

/** An HTTPS server on `address` with a certificate (for all the names it serves), on `port` (default: an ephemeral one). */
export async function startPolicyServer(address: string, cert: CertFiles, port = 0): Promise<PolicyServer> {
  const behaviours = new Map<string, PolicyBehaviour>();
  const requests: string[] = [];
  const posts: { path: string; type: string; body: Buffer }[] = [];
  const server = https.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
    const host = String(req.headers.host ?? '').toLowerCase();
    requests.push(`${host} ${req.url ?? ''}`);
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', type: String(req.headers['content-type'] ?? ''), body: Buffer.concat(chunks) });
        res.writeHead(201).end();
      });
      return;
    }
    const b = behaviours.get(host);
    if (b === undefined || req.url !== '/.well-known/mta-sts.txt') return void res.writeHead(404).end();
    if ('status' in b) return void res.writeHead(b.status).end();
    if ('stall' in b) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('version: STSv1\n');
      return; // never ends
    }
    if ('huge' in b) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const line = Buffer.from('mx: filler.example.test\n'.repeat(1000));
      let sent = 0;
      const more = (): void => {
        while (sent < b.huge) {
          sent += line.length;
          if (!res.write(line)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => undefined);
      more();
      return;
    }
    res.writeHead(200, { 'content-type': b.type ?? 'text/plain' }).end(b.body);
  });
  server.on('clientError', () => undefined);
  await new Promise<void>((r) => server.listen(port, address, r));
  return {
    port: (server.address() as AddressInfo).port,
    set: (host, b) => behaviours.set(host, b),
    requests,
    posts,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/* ------------------------------------------- the relay agent with a TLS policy engine */

export interface PolicyHarness {
  readonly agent: RelayAgent;
  readonly logs: string[];
  readonly report: TlsRptStore;
  readonly resolver: Resolver;
}

/**
 * A relay agent whose transport-security engine reads the inline table
 * `tlspol` of `config` (if any) and gets what else the test builds
 * (`sts`, `dane`) from `parts(resolver, log)`.
 */
export function policyAgent(o: {
  config: Config;
  dnsServer: string;
  port: number;
  tlsCa?: string;
  parts: (resolver: Resolver) => Pick<TransportSecurityOptions, 'sts' | 'dane'>;
}): PolicyHarness {
  const logs: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  const resolver = new Resolver({ servers: [o.dnsServer], timeoutMs: 2000 });
  const report = new TlsRptStore();
  const table = o.config.tables.get('tlspol');
  const transport = new TransportSecurity({
    log,
    table: (key) => {
      const v = table?.kind === 'map' ? table.entries.get(key) : undefined;
      return v === undefined ? { kind: 'notfound' } : { kind: 'found', value: v };
    },
    ...o.parts(resolver),
    report,
  });
  const agent = new RelayAgent({
    config: o.config,
    log,
    stats: new Stats(),
    resolver,
    local: TEST_SELF,
    credentials: () => undefined,
    transport,
    tuning: { port: o.port, ...(o.tlsCa !== undefined ? { tlsCa: o.tlsCa } : {}), timeouts: { connect: 3000, greeting: 5000, command: 5000, dataInit: 5000, dataBlock: 5000, dataDone: 5000, rset: 2000, quit: 1000 } },
  });
  return { agent, logs, report, resolver };
}
