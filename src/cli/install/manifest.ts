/*
 * cli/install/manifest.ts — what `postern install` did, so that
 * `postern uninstall` undoes exactly that and nothing else.
 *
 * Kept as JSON in STATE_DIR/install.json (rewritten after every step, so
 * an install that fails half-way can still be undone). Entries, in the
 * order they were made; uninstall walks them backwards:
 *   dir          a folder install created (removed if empty)
 *   file         a file install wrote, with its SHA-256 (kept if changed since)
 *   link         a symbolic link install made
 *   saved        another program's file moved aside (--force): `path` → `saved`
 *   alternative  an update-alternatives entry (name, path)
 *   user         a system user (and its group) install created
 *   spool        the spool folder (kept while it holds files, unless --purge)
 *   service      the systemd unit enabled and started
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export type Entry =
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'file'; readonly path: string; readonly sha256: string }
  | { readonly kind: 'link'; readonly path: string; readonly target: string }
  | { readonly kind: 'saved'; readonly path: string; readonly saved: string }
  | { readonly kind: 'alternative'; readonly name: string; readonly path: string }
  | { readonly kind: 'user'; readonly name: string }
  | { readonly kind: 'spool'; readonly path: string }
  | { readonly kind: 'service'; readonly unit: string };

export interface Manifest {
  readonly version: 1;
  readonly entries: Entry[];
}

export const MANIFEST_NAME = 'install.json';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Staged paths: the manifest lives in STATE_DIR under the staging root. */
export function readManifest(stateDirStaged: string): Manifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(stateDirStaged, MANIFEST_NAME), 'utf8')) as Manifest;
    return m.version === 1 && Array.isArray(m.entries) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Atomically (temp file, rename). */
export function writeManifest(stateDirStaged: string, m: Manifest): void {
  const path = join(stateDirStaged, MANIFEST_NAME);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(m, null, 1)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
