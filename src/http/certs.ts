/*
 * http/certs.ts — when each configured certificate (`pki NAME cert "FILE"`)
 * expires, for /metrics and the dashboard. The files are read at most once
 * a minute (a renewed certificate shows up without a reload); one that
 * cannot be read or parsed is left out and said once in the log.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Pki } from '../config/model.js';

export interface CertExpiry {
  readonly name: string;
  /** ms since the epoch. */
  readonly notAfter: number;
  readonly subject: string;
}

export class CertWatch {
  private cached: { at: number; list: CertExpiry[] } | undefined;
  private readonly complained = new Set<string>();

  constructor(
    private pki: () => ReadonlyMap<string, Pki>,
    private readonly warn: (text: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  list(): readonly CertExpiry[] {
    const now = this.now();
    if (this.cached && now - this.cached.at < 60_000) return this.cached.list;
    const list: CertExpiry[] = [];
    for (const p of this.pki().values()) {
      if (p.cert === undefined) continue;
      try {
        const pem = readFileSync(p.cert, 'utf8');
        const x = new X509Certificate(pem);
        list.push({ name: p.name, notAfter: Date.parse(x.validTo), subject: x.subject.replace(/\n/g, ', ') });
      } catch (e) {
        if (!this.complained.has(p.cert)) this.warn(`metrics: certificate of pki ${p.name} (${p.cert}): ${(e as Error).message}`);
        this.complained.add(p.cert);
      }
    }
    this.cached = { at: now, list };
    return list;
  }
}
