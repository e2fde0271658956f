/*
 * http/static.ts — the dashboard's files (web/ in the package: index.html,
 * dashboard.css, dashboard.js), served as they are: no build step, no CDN.
 * Only the names listed here are served; they are read once, at start.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** web/ beside dist/ (the module is dist/src/http/static.js). */
export const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
};

export interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

/** The files, read from `dir`; missing ones are left out (and named in `missing`). */
export function loadStatic(dir = WEB_DIR): { files: Map<string, StaticFile>; missing: string[] } {
  const files = new Map<string, StaticFile>();
  const missing: string[] = [];
  for (const [path, f] of Object.entries(FILES)) {
    try {
      files.set(path, { body: readFileSync(join(dir, f.file)), type: f.type });
    } catch {
      missing.push(f.file);
    }
  }
  return { files, missing };
}
