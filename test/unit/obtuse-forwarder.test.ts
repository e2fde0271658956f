/*
 * smtpfwdd's loop (daemon/obtuse/forwarder.ts) over a spool in memory and
 * real programs as "sendmail": a message leaves the spool only when the
 * program exits 0; a failure waits retryMs, then doubles; what sendmail
 * gets is the argument vector and the body with LF line ends.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Forwarder } from '../../src/daemon/obtuse/forwarder.js';
import type { Envelope } from '../../src/mail/envelope.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-fwd-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function memorySpool(messages: Record<string, { sender: string; rcpts: string[]; body: string }>) {
  const removed: string[] = [];
  const store = new Map(Object.entries(messages));
  return {
    removed,
    async list() {
      return [...store.keys()];
    },
    async load(msgid: string) {
      const m = store.get(msgid);
      if (!m) throw new Error('gone');
      const envelope = { msgid, sender: m.sender, smtputf8: false, recipients: m.rcpts.map((address, i) => ({ evpid: `${msgid}0000000${i}`, address, action: 'x' })) } as unknown as Envelope;
      return { envelope, outcomes: new Map() };
    },
    openBody(msgid: string) {
      return Readable.from([Buffer.from(store.get(msgid)?.body ?? '')]);
    },
    async remove(msgid: string) {
      store.delete(msgid);
      removed.push(msgid);
    },
  };
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

function script(name: string, body: string): string {
  const p = join(DIR, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

test('sendmail gets -oi -f SENDER -- RECIPIENTS and the body with LF; the message is removed after exit 0', async () => {
  const out = join(DIR, 'out');
  const sm = script('sm-ok', `printf '%s\\n' "$@" > ${out}.args; cat > ${out}.body`);
  const spool = memorySpool({ '0000000a': { sender: 'a@b.example', rcpts: ['c@d.example', 'e@f.example'], body: 'Subject: x\r\n\r\nbody\r\n' } });
  await new Forwarder({ spool, log: quiet, sendmail: sm }).pass();
  assert.deepEqual(spool.removed, ['0000000a']);
  assert.equal(readFileSync(`${out}.args`, 'utf8'), '-oi\n-f\na@b.example\n--\nc@d.example\ne@f.example\n');
  assert.equal(readFileSync(`${out}.body`, 'utf8'), 'Subject: x\n\nbody\n');
});

test('a failing sendmail keeps the message; it is tried again after retryMs, then after twice that', async () => {
  const count = join(DIR, 'count');
  const flag = join(DIR, 'works');
  const sm = script('sm-flaky', `cat > /dev/null; echo x >> ${count}; test -e ${flag} || { echo 'try later' >&2; exit 75; }`);
  const spool = memorySpool({ '0000000b': { sender: '', rcpts: ['postmaster@d.example'], body: 'x\r\n' } });
  const warnings: string[] = [];
  const f = new Forwarder({ spool, log: { ...quiet, warn: (l: string) => void warnings.push(l) }, sendmail: sm, retryMs: 200, maxRetryMs: 10_000 });
  const tries = (): number => (existsSync(count) ? readFileSync(count, 'utf8').split('\n').filter(Boolean).length : 0);
  await f.pass();
  assert.equal(tries(), 1);
  assert.deepEqual(spool.removed, []);
  assert.match(warnings[0] ?? '', /0000000b: .*sm-flaky exited 75: try later; kept for a retry/);
  await f.pass();
  assert.equal(tries(), 1, 'not before retryMs');
  await new Promise((r) => setTimeout(r, 250));
  await f.pass();
  assert.equal(tries(), 2);
  await new Promise((r) => setTimeout(r, 250));
  await f.pass();
  assert.equal(tries(), 2, 'the second wait is twice the first');
  writeFileSync(flag, '');
  await new Promise((r) => setTimeout(r, 200));
  await f.pass();
  assert.equal(tries(), 3);
  assert.deepEqual(spool.removed, ['0000000b']);
});

test('a missing sendmail, or an envelope whose address does not parse, keeps the message', async () => {
  const spool = memorySpool({
    '0000000c': { sender: 'a@b.example', rcpts: ['c@d.example'], body: 'x\r\n' },
    '0000000d': { sender: 'a@b.example', rcpts: ['-oQ/tmp/x'], body: 'x\r\n' },
  });
  const errors: string[] = [];
  await new Forwarder({ spool, log: { ...quiet, error: (l: string) => void errors.push(l) }, sendmail: join(DIR, 'no-such-sendmail') }).pass();
  assert.deepEqual(spool.removed, []);
  assert.ok(errors.some((e) => /0000000d: kept in the spool: recipient "-oQ\/tmp\/x" is not an address/.test(e)), errors.join('\n'));
});
