/*
 * filter/chain.ts: filters asked in order — the first refusal wins, a junk
 * verdict is kept while the chain goes on, a rewrite is what the next filter
 * sees, bypass stops the chain at that phase — and at the end of the
 * message each filter sees the message as the ones before it left it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterChain } from '../../src/filter/chain.js';
import { PROCEED, type FilterSession, type FilterVerdict, type MessageVerdict } from '../../src/filter/filter.js';
import { reply } from '../../src/mail/reply.js';
import type { SessionFacts } from '../../src/policy/policy.js';

const FACTS: SessionFacts = { id: 's1', clientAddress: '192.0.2.1', clientPort: 1234, fromSocket: false, esmtp: true, tls: false, listener: '192.0.2.2:25' };

function member(mail: (sender: string) => FilterVerdict, message?: (bytes: Buffer) => MessageVerdict, seen: string[] = []): FilterSession {
  const p = Promise.resolve(PROCEED);
  return {
    connect: () => p,
    helo: () => p,
    mail: (_s, sender) => {
      seen.push(sender);
      return Promise.resolve(mail(sender));
    },
    rcpt: () => p,
    data: () => p,
    message: (_s, m) => {
      seen.push(m.bytes.toString());
      return Promise.resolve(message ? message(m.bytes) : { kind: 'accept' });
    },
    abort: () => undefined,
    close: () => undefined,
  };
}

test('envelope phases: refusal wins, junk kept, rewrite passed on, bypass stops', async () => {
  const seen: string[] = [];
  const refuse: FilterVerdict = { kind: 'reject', reply: reply(550, '5.7.1', 'no'), reason: 'r' };
  const chain = new FilterChain([member(() => ({ kind: 'junk', reason: 'j' })), member((s) => (s === 'a@x' ? { kind: 'rewrite', value: 'b@x', reason: 'w' } : PROCEED)), member(() => PROCEED, undefined, seen)]);
  assert.deepEqual(await chain.mail(FACTS, 'a@x', []), { kind: 'rewrite', value: 'b@x', reason: 'filter rewrite' });
  assert.deepEqual(seen, ['b@x'], 'the third filter saw the rewritten sender');
  assert.equal((await chain.mail(FACTS, 'c@x', [])).kind, 'junk');
  assert.equal((await new FilterChain([member(() => PROCEED), member(() => refuse)]).mail(FACTS, 'a@x', [])).kind, 'reject');
  const after: string[] = [];
  assert.equal((await new FilterChain([member(() => ({ kind: 'bypass' })), member(() => refuse, undefined, after)]).mail(FACTS, 'a@x', [])).kind, 'proceed');
  assert.deepEqual(after, [], 'bypass: the rest of the chain is not asked');
});

test('the message: each filter sees the one before it left it; the edits add up', async () => {
  const seen: string[] = [];
  const chain = new FilterChain([
    member(() => PROCEED, () => ({ kind: 'accept', edits: { headers: [{ op: 'add', name: 'X-One', value: '1' }], addRcpts: ['new@x'], delRcpts: [], sender: 's2@x' } })),
    member(() => PROCEED, () => ({ kind: 'accept', edits: { headers: [], delRcpts: ['a@x'], addRcpts: [], quarantine: 'why' } }), seen),
  ]);
  const v = await chain.message(FACTS, { msgid: 'm', sender: 's@x', recipients: ['a@x'], bytes: Buffer.from('Subject: s\r\n\r\nbody\r\n') });
  assert.equal(seen[0], 'Subject: s\r\nX-One: 1\r\n\r\nbody\r\n');
  assert.equal(v.kind, 'accept');
  const e = v.kind === 'accept' ? v.edits : undefined;
  assert.equal(e?.message?.toString(), 'Subject: s\r\nX-One: 1\r\n\r\nbody\r\n');
  assert.equal(e?.sender, 's2@x');
  assert.deepEqual([e?.addRcpts, e?.delRcpts, e?.quarantine], [['new@x'], ['a@x'], 'why']);
  const refused = await new FilterChain([member(() => PROCEED, () => ({ kind: 'discard', reason: 'd' })), member(() => PROCEED, undefined, seen)]).message(FACTS, { msgid: 'm', sender: '', recipients: [], bytes: Buffer.alloc(0) });
  assert.equal(refused.kind, 'discard');
});
