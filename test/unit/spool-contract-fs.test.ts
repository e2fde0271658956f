/*
 * The spool contract (spool-contract.ts) against the filesystem backend,
 * with its write-ahead journal (how the daemon runs it) and without (how
 * the commands open it, and every commit of a large message).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { spoolContract } from './spool-contract.js';

for (const journal of [true, false]) {
  let root = '';
  spoolContract(`fs spool, ${journal ? 'with' : 'without'} journal`, {
    make() {
      root = mkdtempSync(join(tmpdir(), 'postern-contract-'));
      return new FsSpool({ root, journal });
    },
    reopen() {
      return new FsSpool({ root, journal });
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  });
}
