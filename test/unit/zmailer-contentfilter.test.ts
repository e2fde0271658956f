/*
 * The content filter interface with real shell scripts as filters: the
 * three answers (and discard), what the filter gets on stdin and where it
 * runs, the time limit, crashes, and how many run at once.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentFilter, parseAnswer, Semaphore, type ContentFilterOptions, type FilterResult } from '../../src/policy/zmailer/contentfilter.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-cf-'));
const SPOOL = join(DIR, 'spool');
mkdirSync(join(SPOOL, 'queue'), { recursive: true });
writeFileSync(join(SPOOL, 'queue', 'msg1'), 'Subject: hello\r\n\r\nbody\r\n');
after(() => rmSync(DIR, { recursive: true, force: true }));

/** Write an executable /bin/sh script and return its path. */
function script(name: string, body: string): string {
  const path = join(DIR, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

async function run(body: string, opts: Partial<ContentFilterOptions> = {}, rel = 'queue/msg1'): Promise<FilterResult> {
  const f = new ContentFilter({ path: script(`f${Math.random().toString(36).slice(2)}`, body), cwd: SPOOL, timeoutMs: 5000, ...opts });
  return f.check(rel);
}

function summary(r: FilterResult): string {
  return `${r.disposition}${r.reply ? ` ${r.reply.code} ${r.reply.enhanced} ${r.reply.lines.join(' ')}` : ''}`;
}

test('accept: "0"', async () => {
  const r = await run('read path; echo 0');
  assert.equal(summary(r), 'accept');
  assert.equal(r.reason, 'content filter: 0');
});

test('reject: "-1" with and without its own reply', async () => {
  assert.equal(summary(await run('read p; echo -1')), 'reject 550 5.7.1 Message content rejected');
  assert.equal(summary(await run('read p; echo "-1 554 5.7.1 Spam detected, score 17"')), 'reject 554 5.7.1 Spam detected, score 17');
  assert.equal(summary(await run('read p; echo "-1 451 4.7.1 Try later"')), 'reject 451 4.7.1 Try later');
  assert.equal(summary(await run('read p; echo "-5 looks like spam"')), 'reject 550 5.7.1 looks like spam');
});

test('freeze: "1" (held, the usual reply unless the filter gives one)', async () => {
  assert.equal(summary(await run('read p; echo 1')), 'freeze');
  assert.equal(summary(await run('read p; echo "1 550 5.7.1 That is spam, rejected!"')), 'freeze 550 5.7.1 That is spam, rejected!');
});

test('discard: a negative answer with a 2xx reply', async () => {
  assert.equal(summary(await run('read p; echo "-1 250 2.7.1 Glad to see some spam, immediately destroyed"')), 'discard 250 2.7.1 Glad to see some spam, immediately destroyed');
});

test('the filter gets the relative path and a newline on stdin, and runs in the spool folder', async () => {
  const log = join(DIR, 'stdin.log');
  const r = await run(`cat > ${log}; if [ -f "$(cat ${log})" ] && [ "$(pwd)" = "${SPOOL}" ]; then echo 0; else echo -1; fi`);
  assert.equal(summary(r), 'accept');
  assert.equal(readFileSync(log, 'utf8'), 'queue/msg1\n');
});

test('no shell is involved: the path is an argument-free program, metacharacters stay inert', async () => {
  const marker = join(DIR, 'pwned');
  const f = new ContentFilter({ path: script('args', `printf '%s' "$#" > ${DIR}/argc; read p; echo 0`), cwd: SPOOL, args: [`; touch ${marker}`] });
  assert.equal(summary(await f.check('queue/msg1')), 'accept');
  assert.equal(readFileSync(join(DIR, 'argc'), 'utf8'), '1');
  assert.throws(() => readFileSync(marker));
});

test('noise before the answer is skipped (later ZMailer writes "#hungry" first)', async () => {
  assert.equal(summary(await run('echo "#hungry"; read p; echo "scanning $p"; echo "0 250 2.6.0 Message OK!"')), 'accept 250 2.6.0 Message OK!');
});

test('an accept with a refusal code keeps the usual reply', async () => {
  const r = await run('read p; echo "0 550 5.7.1 odd"');
  assert.equal(summary(r), 'accept');
  assert.match(r.reason, /refusal code ignored/);
});

test('time limit: a filter that hangs is killed and the client gets 451', async () => {
  const started = Date.now();
  const r = await run('read p; sleep 10; echo 0', { timeoutMs: 300 });
  assert.equal(summary(r), 'tempfail 451 4.3.0 Temporary failure in content analysis, please try again later');
  assert.match(r.reason, /longer than 300 ms/);
  assert.ok(Date.now() - started < 3000);
});

test('crashes: non-zero exit or a signal without an answer is a 451', async () => {
  const exit = await run('read p; echo "segfault" >&2; exit 3');
  assert.equal(exit.disposition, 'tempfail');
  assert.equal(exit.reason, 'content filter failed (exit status 3): "segfault"');
  const killed = await run('read p; kill -KILL $$');
  assert.equal(killed.disposition, 'tempfail');
  assert.match(killed.reason, /killed by SIGKILL/);
  const missing = await new ContentFilter({ path: join(DIR, 'no-such-filter'), cwd: SPOOL }).check('queue/msg1');
  assert.equal(missing.disposition, 'tempfail');
  assert.match(missing.reason, /ENOENT/);
});

test('a filter that answers nothing usable but exits 0 freezes the message (ZMailer’s default)', async () => {
  const r = await run('read p; echo "I have no idea"');
  assert.equal(summary(r), 'freeze');
  assert.match(r.reason, /nothing usable \("I have no idea"\)/);
});

test('an answer counts even if the filter fails afterwards; a filter that never reads stdin is fine', async () => {
  assert.equal(summary(await run('read p; echo -1; exit 9')), 'reject 550 5.7.1 Message content rejected');
  assert.equal(summary(await run('echo 0')), 'accept');
});

test('unsafe spool paths are never passed', async () => {
  for (const bad of ['/etc/passwd', '../x', 'a/../../b', 'a\nb', '']) {
    assert.equal((await run('read p; echo 0', {}, bad)).disposition, 'tempfail', JSON.stringify(bad));
  }
});

test('at most maxParallel filters run at once; the others wait their turn', async () => {
  const log = join(DIR, 'par.log');
  writeFileSync(log, '');
  const f = new ContentFilter({ path: script('par', `read p; echo s >> ${log}; sleep 0.3; echo e >> ${log}; echo 0`), cwd: SPOOL, maxParallel: 2, timeoutMs: 10_000 });
  const jobs = Array.from({ length: 5 }, () => f.check('queue/msg1'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(f.running, 2);
  assert.equal(f.waiting, 3);
  const results = await Promise.all(jobs);
  assert.deepEqual(results.map((r) => r.disposition), ['accept', 'accept', 'accept', 'accept', 'accept']);
  let now = 0;
  let max = 0;
  for (const ev of readFileSync(log, 'utf8').trim().split('\n')) {
    now += ev === 's' ? 1 : -1;
    max = Math.max(max, now);
  }
  assert.equal(max, 2);
  assert.equal(f.running, 0);
});

test('waiting for a free filter counts against the time limit', async () => {
  const f = new ContentFilter({ path: script('slow', 'read p; sleep 1; echo 0'), cwd: SPOOL, maxParallel: 1, timeoutMs: 400 });
  const t0 = performance.now();
  const [a, b] = await Promise.all([f.check('queue/msg1'), f.check('queue/msg1')]);
  const elapsed = performance.now() - t0;
  assert.equal(a.disposition, 'tempfail');
  assert.equal(b.disposition, 'tempfail');
  // Either its wait ran out, or the slot freed just as it did and no time was left: never a fresh 400 ms.
  assert.match(b.reason, /no content filter free within 400 ms|took longer than 400 ms/);
  assert.ok(elapsed < 750, `both done in ${elapsed.toFixed(0)} ms: the wait must count against the limit`);
});

test('parseAnswer: the answer line grammar', () => {
  const rows: [string, string | undefined][] = [
    ['0', 'accept'],
    ['+0', 'accept'],
    ['  0  ', 'accept'],
    ['-1\n0', 'reject 550 5.7.1 Message content rejected'],
    ['1 250 2.6.0 held', 'freeze 250 2.6.0 held'],
    ['-1 550 spam', 'reject 550 5.7.1 spam'],
    ['-1 550 4.7.1 bad class', 'reject 550 5.7.1 bad class'],
    ['-1 250', 'discard 250 2.6.0 Message accepted'],
    ['x 0', undefined],
    ['', undefined],
  ];
  for (const [out, want] of rows) {
    const r = parseAnswer(out);
    assert.equal(r === undefined ? undefined : summary(r), want, JSON.stringify(out));
  }
});

test('Semaphore: order and release-once', async () => {
  const s = new Semaphore(1);
  const order: number[] = [];
  const r1 = await s.acquire();
  const p2 = s.acquire().then((r) => (order.push(2), r));
  const p3 = s.acquire().then((r) => (order.push(3), r));
  assert.equal(s.queued, 2);
  r1();
  r1();
  (await p2)();
  (await p3)();
  assert.deepEqual(order, [2, 3]);
  assert.equal(s.available, 1);
  assert.throws(() => new Semaphore(0), RangeError);
});
