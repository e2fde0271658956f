/*
 * The content of a large received message waits in a private file while it
 * is checked (src/mailauth/verify/spill.ts, check.ts): it comes back whole
 * and in order after the Authentication-Results field, the file is removed,
 * and a file that cannot be written refuses the message with 451 4.3.0
 * (never stores a part of it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageCheck } from '../../src/mailauth/verify/check.js';

const opts = { spfReject: false, dmarcReject: false, quarantine: 'tag', minKeyBits: 1024 } as never;

function check(spillDir: string): MessageCheck {
  return new MessageCheck({ opts, authservId: 'mx.test.example', holdLimit: 1024 * 1024, spf: async () => undefined, spillDir }, undefined);
}

async function all(it: readonly Buffer[] | AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

test('past the memory bound the content goes to a file and comes back whole; the file is removed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-spill-'));
  try {
    const c = check(dir);
    const head = Buffer.from('Authentication-Results: mx.test.example; dkim=pass (forged)\r\nSubject: big\r\n\r\n');
    const chunk = Buffer.alloc(256 * 1024, 'y');
    const sent = [head, ...Array.from({ length: 12 }, (_, i) => Buffer.concat([chunk, Buffer.from(`-${i}-\r\n`)]))];
    for (const b of sent) assert.deepEqual(c.push(b), [], 'nothing is released before the end');
    assert.equal(readdirSync(dir).length, 1, 'one spill folder while the message is received');
    const out = await c.finish();
    assert.equal(out.verdict.kind, 'accept');
    const got = await all(out.release);
    const expected = Buffer.concat(sent).toString('latin1').replace('Authentication-Results: mx.test.example; dkim=pass (forged)\r\n', '');
    assert.equal(got.toString('latin1'), expected, 'the content, in order, without the forged field of ours');
    assert.equal(readdirSync(dir).length, 0, 'the file is gone once read');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a spill file that cannot be written: 451 4.3.0, nothing released', async () => {
  const missing = join(tmpdir(), 'postern-spill-missing-folder', 'below');
  assert.ok(!existsSync(missing));
  const c = check(missing);
  for (let i = 0; i < 6; i++) c.push(Buffer.alloc(256 * 1024, 'z'));
  const out = await c.finish();
  assert.equal(out.verdict.kind, 'refuse');
  assert.match(out.verdict.kind === 'refuse' ? `${out.verdict.reply.code} ${out.verdict.reply.enhanced ?? ''} ${out.verdict.reply.lines.join(' ')}` : '', /^451 4\.3\.0 /);
  assert.equal((await all(out.release)).length, 0);
});

test('an aborted message leaves no file behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-spill-'));
  try {
    const c = check(dir);
    for (let i = 0; i < 6; i++) c.push(Buffer.alloc(256 * 1024, 'a'));
    c.abort();
    assert.equal(readdirSync(dir).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
