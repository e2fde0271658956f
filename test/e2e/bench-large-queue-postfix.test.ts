/*
 * test/e2e/bench-large-queue-postfix.test.ts — the Postfix side of the
 * large-queue benchmark (bench/large-queue-postfix.ts) writes a queue that
 * Postfix takes as its own: one deferred queue file copied N times, each
 * copy named after its inode as `postsuper -s` would name it (so
 * `postsuper -s`, Postfix's structure check, finds nothing to rename), and
 * the instance, started on it, takes every copy as a message of its own and
 * delivers each once when the destination comes back (smtp-sink).
 * Needs root and Postfix (as the benchmark does); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { measurePostfixQueue, preparePostfixQueue, shortQueueId } from '../../bench/large-queue-postfix.js';
import { postfix } from '../../bench/servers/postfix.js';
import { run, workFolder } from '../../bench/util.js';

/** Where nothing listens while the queue is written and measured, then smtp-sink (this file's loopback address). */
const DOWN_HOST = '127.0.24.77';

describe('the large-queue benchmark: Postfix', () => {
  it('names each queue-file copy as postsuper -s would, and Postfix delivers every copy once', { skip: postfix.unavailable() }, async () => {
    const dir = workFolder('postern-test-pf-queue-');
    try {
      const count = 200;
      const p = await preparePostfixQueue({ count, downHost: DOWN_HOST, dir });
      const top = join(dir, 'queue', 'deferred');
      const files = readdirSync(top).flatMap((sub) => readdirSync(join(top, sub)).map((f) => ({ sub, f })));
      assert.equal(files.length, count);
      for (const { sub, f } of files) {
        assert.equal(f[0], sub, `${f} is in its hash folder`);
        assert.equal(f.slice(5), statSync(join(top, sub, f)).ino.toString(16).toUpperCase(), `${f} ends in its inode number`);
      }
      assert.equal(shortQueueId(1, 0x1a2b), '09E371A2B');
      // Postfix's own structure check agrees: nothing to rename.
      const check = run('postsuper', ['-c', join(dir, 'conf'), '-s']);
      assert.equal(check.status, 0, check.stderr);
      assert.doesNotMatch(check.stderr, /Renamed to match inode number/);
      const r = await measurePostfixQueue(p, { downHost: DOWN_HOST, drainMs: 60_000, seenCapMs: 60_000 });
      assert.equal(r.loadedCount, count, 'qmgr took every copy once');
      assert.equal(r.delivered, count, 'every copy delivered once the destination is back');
      const ids = new Set(readdirSync(dir).includes('maillog') ? [...run('grep', ['-o', 'postfix/smtp\\[[0-9]*\\]: [0-9A-F]*: to=<user0@down.test>.*status=sent', join(dir, 'maillog')]).stdout.matchAll(/: ([0-9A-F]+): to=/g)].map((m) => m[1]) : []);
      assert.equal(ids.size, count, 'each sent under a queue id of its own');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
