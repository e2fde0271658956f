/*
 * http/start.ts — the HTTP listener as the daemon starts it: tokens read,
 * the TLS certificate of `http listen … tls pki NAME` loaded, the metrics'
 * scrape-time figures (queue, sessions, paused services, certificates)
 * bound to the running daemon. Throws a one-line reason when something
 * cannot be used, and the daemon refuses to start with it.
 */
import { readSecret } from '../privsep/secrets.js';
import type { Config, HttpOptions } from '../config/model.js';
import { queueSummary } from '../control/handlers.js';
import type { ControlServer } from '../control/server.js';
import type { ControlTarget } from '../control/target.js';
import type { Metrics } from '../metrics/registry.js';
import { CertWatch } from './certs.js';
import { HttpListener, type HttpLimits } from './server.js';
import { TokenStore } from './tokens.js';

export interface StartHttpDeps {
  readonly target: ControlTarget;
  readonly control: ControlServer;
  readonly metrics: Metrics;
  /** The configuration in force (it changes at reload). */
  config(): Config;
}

function tlsOf(config: Config, o: HttpOptions): { cert: Buffer; key: Buffer } | undefined {
  if (o.pki === undefined) return undefined;
  const p = config.pki.get(o.pki);
  if (p?.cert === undefined || p.key === undefined) throw new Error(`http listen: pki "${o.pki}" has no certificate or key`);
  try {
    return { cert: readSecret(p.cert), key: readSecret(p.key) };
  } catch (e) {
    throw new Error(`http listen: pki "${o.pki}": ${(e as Error).message}`);
  }
}

export async function startHttp(d: StartHttpDeps, limits: Partial<HttpLimits> = {}): Promise<HttpListener | undefined> {
  const config = d.config();
  const o = config.http;
  if (o === undefined) return undefined;
  const log = d.target.log;
  const tokens = TokenStore.load(o.tokens, (w) => log.warn(w));
  const certs = new CertWatch(() => d.config().pki, (w) => log.warn(w));
  const t = d.target;
  d.metrics.setSource({
    queue: () => {
      const views = t.runner.envelopes();
      const envelopes: Record<string, number> = {};
      for (const v of views) if (v.state !== 'delivered' && v.state !== 'failed') envelopes[v.state] = (envelopes[v.state] ?? 0) + 1;
      const q = queueSummary(t, views);
      return { messages: q.messages, bytes: q.bytes, envelopes, ...(q.oldest !== undefined ? { oldestSeconds: Math.max(0, (Date.now() - q.oldest) / 1000) } : {}) };
    },
    activeSessions: () => t.sessions(),
    paused: () => t.paused(),
    certificates: () => certs.list(),
  });
  const listener = new HttpListener(o, tokens, tlsOf(config, o), { control: d.control, metrics: d.metrics, log, certificates: () => certs.list() }, limits);
  await listener.listen();
  return listener;
}

/** At reload: the token files read again (a failure keeps the old ones and says why). */
export function reloadTokens(listener: HttpListener | undefined, config: Config, warn: (text: string) => void): void {
  const now = config.http;
  const was = listener?.options;
  if (was?.address !== now?.address || was?.port !== now?.port || was?.pki !== now?.pki) {
    warn('http: "http listen" changed; the HTTP listener keeps its address, port and TLS until smtpd restarts');
  }
  if (listener === undefined || config.http === undefined) return;
  try {
    listener.setTokens(TokenStore.load(config.http.tokens, warn));
  } catch (e) {
    warn(`http: tokens not reloaded, keeping the previous ones: ${(e as Error).message}`);
  }
}
