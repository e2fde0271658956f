/*
 * The front door (queue/enqueue.ts) on its own, with a spool kept in
 * memory: the order of its checks, what each origin's log says, one
 * envelope recipient per final destination, held messages, and the reply
 * to a full disk (452 4.3.1) or another storage failure (451 4.3.0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import type { Envelope } from '../../src/mail/envelope.js';
import { reply } from '../../src/mail/reply.js';
import type { CommitVerdict } from '../../src/policy/policy.js';
import { PASS, type Verdict } from '../../src/policy/verdict.js';
import { FrontDoor, type EnvelopeRequest, type FrontDoorEnv, type Origin } from '../../src/queue/enqueue.js';
import type { MessageWriter } from '../../src/spool/spool.js';

const config = loadConfigText('hostname "mx.test.example"\nqueue path "/nonexistent"\nsmtp max-received 3\n', 't.conf', { cwd: '/' }).config!;
const facts = { id: 's1', clientAddress: '192.0.2.1', clientPort: 1, fromSocket: false, esmtp: true, tls: false, listener: 'l' };
const tx = { sender: null, params: { smtputf8: false }, rcptCount: 1 };

interface World {
  door: FrontDoor;
  events: string[];
  queued: { env: Envelope; held: boolean }[];
  outcomes: string[];
  removed: string[];
}

function world(opts: { data?: Verdict; commit?: CommitVerdict | ((c: { body?: unknown }) => CommitVerdict); failCommit?: NodeJS.ErrnoException; failWrite?: NodeJS.ErrnoException } = {}): World {
  const events: string[] = [];
  const queued: World['queued'] = [];
  const outcomes: string[] = [];
  const removed: string[] = [];
  let n = 0;
  const writer = (msgid: string): MessageWriter => {
    let size = 0;
    return {
      msgid,
      get size() {
        return size;
      },
      write(b) {
        if (opts.failWrite) throw opts.failWrite;
        size += b.length;
      },
      drain: async () => undefined,
      bodyFile: async () => ({ dir: '/spool', name: `incoming/${msgid}` }),
      async commit(e) {
        if (opts.failCommit) throw opts.failCommit;
        return { ...e, version: 1, msgid, size, recipients: e.recipients.map((r, i) => ({ ...r, evpid: `${msgid}0000000${i}` })) };
      },
      abort: async () => void events.push(`abort ${msgid}`),
    };
  };
  const env: FrontDoorEnv = {
    config,
    policy: {
      data: async () => opts.data ?? PASS,
      commit: async (_s, _t, c) => {
        const v = typeof opts.commit === 'function' ? opts.commit(c) : (opts.commit ?? PASS);
        if (v.kind === 'pass') return { kind: 'accept' };
        if (v.kind === 'hold') return { kind: 'accept', hold: v.reason };
        if (v.kind === 'accept') return { kind: 'accept' };
        if (v.kind === 'discard') return v;
        return { kind: 'reject', verdict: v };
      },
    },
    spool: {
      createMessage: async () => writer(`0000000${++n}`),
      appendOutcome: async (evpid, o) => void outcomes.push(`${evpid} ${o.kind}`),
      remove: async (m) => void removed.push(m),
    },
    log: { event: (s, e, f = {}) => void events.push(`${s} ${e} ${Object.entries(f).map(([k, v]) => `${k}=${v}`).join(' ')}`), error: (t) => void events.push(`error ${t}`) },
    stats: { inc: () => undefined },
    scheduler: { etrn: () => reply(250, undefined, 'ok'), enqueued: (e, o) => void queued.push({ env: e, held: o?.held === true }) },
    now: () => 1000,
  };
  return { door: new FrontDoor(env), events, queued, outcomes, removed };
}

const local = (user: string) => ({ address: `${user}@test.example`, action: 'local', rule: 'r:1', dest: { kind: 'user' as const, user } });
function request(recipients: EnvelopeRequest['recipients']): EnvelopeRequest {
  return { sender: 'a@b.example', recipients, body: '7BIT', smtputf8: false, arrival: 1, client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'l' } };
}
const one = request([{ address: 'root@test.example', params: {}, targets: [local('root')] }]);

async function send(w: World, content: string, origin: Origin = { kind: 'smtp', session: 's1' }, req = one) {
  const m = await w.door.open(origin, facts, tx);
  if (m.kind === 'reject') return { kind: 'open-refused' as const, reply: m.reply };
  m.writeOwnHeader('Received: from us\r\n');
  m.write(Buffer.from(content));
  return m.commit(req);
}

test('accepted: committed, logged in the session\'s words, handed to the scheduler, 250 with the msgid', async () => {
  const w = world();
  const r = await send(w, 'Subject: x\r\n\r\nbody\r\n');
  assert.equal(r.kind, 'queued');
  assert.equal(r.reply.code, 250);
  assert.match(r.reply.lines[0] ?? '', /^00000001 Message accepted for delivery$/);
  assert.equal(w.queued.length, 1);
  assert.ok(w.events.some((e) => /^smtp message session=s1 msgid=00000001 /.test(e)), w.events.join('\n'));
  assert.ok(w.events.some((e) => /^smtp envelope session=s1 msgid=00000001 evpid=0000000100000000 /.test(e)));
});

test('local mail is logged as local, with its user; reports are not logged here', async () => {
  const w = world();
  await send(w, 'x\r\n', { kind: 'local', uid: 1000, user: 'joe' });
  await send(w, 'x\r\n', { kind: 'bounce' });
  assert.ok(w.events.some((e) => /^local message msgid=00000001 .* uid=1000 user=joe$/.test(e)), w.events.join('\n'));
  assert.equal(w.events.filter((e) => / message /.test(e)).length, 1);
  assert.equal(w.queued.length, 2, 'both handed to the scheduler');
});

test('the data phase refuses before anything is stored', async () => {
  const w = world({ data: { kind: 'reject', reply: reply(554, '5.7.1', 'no'), reason: 'test' } });
  const r = await send(w, 'x');
  assert.equal(r.kind, 'open-refused');
  assert.equal(w.queued.length, 0);
});

test('the loop check counts Received: in the content, not our own header, and comes before the commit phase', async () => {
  let asked = 0;
  const w = world({ commit: () => (asked++, PASS) });
  const three = 'Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nbody\r\n';
  assert.equal((await send(w, three)).kind, 'queued', 'three of theirs and ours: at the limit, not past it');
  const r = await send(w, `Received: d\r\n${three}`);
  assert.equal(r.kind, 'refused');
  assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '554 5.4.6');
  assert.equal(asked, 1, 'a loop never reaches the commit phase');
  assert.ok(w.events.includes('abort 00000002'));
});

test('the commit phase sees the body as a file, and may reject, discard or hold', async () => {
  let file: unknown;
  const w = world({ commit: (c) => ((file = c.body), PASS) });
  await send(w, 'x\r\n');
  assert.deepEqual(await (file as { file(): Promise<unknown> }).file(), { dir: '/spool', name: 'incoming/00000001' });

  const rej = world({ commit: { kind: 'reject', reply: reply(550, '5.7.1', 'That is spam'), reason: 'filter' } });
  const r1 = await send(rej, 'x\r\n');
  assert.deepEqual([r1.kind, r1.reply.code, rej.queued.length], ['refused', 550, 0]);
  assert.ok(rej.events.some((e) => /^smtp rejected session=s1 msgid=00000001 reason=filter$/.test(e)));

  const dis = world({ commit: { kind: 'discard', reply: reply(250, '2.7.0', 'ok'), reason: 'filter' } });
  const r2 = await send(dis, 'x\r\n');
  assert.deepEqual([r2.kind, r2.reply.code, dis.queued.length], ['discarded', 250, 0]);

  const hold = world({ commit: { kind: 'hold', reason: 'frozen' } });
  const r3 = await send(hold, 'x\r\n');
  assert.equal(r3.kind, 'queued');
  assert.deepEqual(hold.outcomes, ['0000000100000000 held']);
  assert.deepEqual(hold.queued.map((q) => q.held), [true]);
});

test('a full disk is 452 4.3.1; another storage failure 451 4.3.0; nothing is queued', async () => {
  const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
  for (const w of [world({ failCommit: full }), world({ failWrite: full })]) {
    const r = await send(w, 'x\r\n');
    assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '452 4.3.1');
    assert.equal(w.queued.length, 0);
  }
  const quota = world({ failCommit: Object.assign(new Error('quota'), { code: 'EDQUOT' }) });
  assert.equal((await send(quota, 'x\r\n')).reply.code, 452);
  const io = world({ failCommit: Object.assign(new Error('i/o error'), { code: 'EIO' }) });
  const r = await send(io, 'x\r\n');
  assert.equal(`${r.reply.code} ${r.reply.enhanced}`, '451 4.3.0');
});

test('one envelope recipient per final destination, whichever RCPTs and aliases led there', async () => {
  const w = world();
  const remote = (a: string) => ({ address: a, action: 'relay', rule: 'r:2', dest: { kind: 'remote' as const } });
  const req = request([
    { address: 'root@test.example', params: {}, targets: [local('root')] },
    { address: 'ROOT@test.example', params: {}, targets: [local('root')] },
    { address: 'postmaster@test.example', params: {}, targets: [local('root'), remote('x@far.example')] },
    { address: 'list@test.example', params: { notify: 'NEVER' }, targets: [remote('x@far.example'), remote('y@far.example'), local('joe')] },
  ]);
  const r = await send(w, 'x\r\n', { kind: 'smtp', session: 's1' }, req);
  assert.equal(r.kind, 'queued');
  if (r.kind !== 'queued') return;
  assert.deepEqual(r.envelope.recipients.map((x) => `${x.address}${x.original ? ` (${x.original})` : ''}`), ['root@test.example', 'x@far.example (postmaster@test.example)', 'y@far.example (list@test.example)', 'joe@test.example (list@test.example)']);
});
