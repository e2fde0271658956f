/*
 * The antispam phase's skips (antispam/phase.ts): greylisting passes
 * authenticated clients and this machine, and defers the others; the
 * recipient rate limit answers 450 4.7.1; the HELO syntax and sender
 * domain checks set to 450 answer 4.5.2 and 4.1.8 (the 550s are tested
 * end to end). The DNS here is a stub object:
 * these checks ask it nothing (the DNS-dependent checks are tested end to
 * end against nsd in test/e2e/antispam*.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { antispamPhase } from '../../src/antispam/phase.js';
import { FileGreylistStore } from '../../src/antispam/greylist/store-file.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionFacts, TxFacts } from '../../src/policy/policy.js';

const NO_DNS = {
  resolve4: async (): Promise<string[]> => [],
  resolve6: async (): Promise<string[]> => [],
  resolveMx: async (): Promise<{ exchange: string; priority: number }[]> => [],
};

function phase() {
  const dir = mkdtempSync(join(tmpdir(), 'postern-asp-'));
  return antispamPhase({
    settings: {
      greylist: { delayMs: 60_000, retryWindowMs: 3_600_000, lifetimeMs: 86_400_000, allowlistAfter: 0 },
      rateLimits: [{ what: 'recipients', max: 2, windowMs: 3_600_000, per: 'client', code: 450, pos: { file: 'smtpd.conf', line: 3, col: 1 } }],
    },
    dns: NO_DNS,
    isLocalAddress: (ip) => ip === '127.0.0.1',
    queuePath: dir,
    warn: () => undefined,
    greylistStore: new FileGreylistStore(join(dir, 'g.json')),
    now: () => 1_000_000,
  });
}

const session = (o: Partial<SessionFacts>): SessionFacts => ({ id: 's1', clientAddress: '192.0.2.9', clientPort: 1000, fromSocket: false, esmtp: true, tls: false, listener: 'x', ...o });
const tx: TxFacts = { sender: { local: 'a', domain: 'x.example', utf8: false } as never, params: {} as never, rcptCount: 0 };
const rcpt = { local: 'r', domain: 'y.example' } as never;

test('greylisting defers a stranger, passes an authenticated client and this machine', async () => {
  const p = phase();
  const v = await p.rcpt!(session({}), tx, rcpt);
  assert.equal(v.kind, 'reject');
  if (v.kind === 'reject') assert.deepEqual([v.reply.code, v.reply.enhanced], [450, '4.7.1']);
  assert.equal((await p.rcpt!(session({ id: 's2', clientAddress: '198.51.100.1', authUser: 'alice' }), tx, rcpt)).kind, 'pass');
  assert.equal((await p.rcpt!(session({ id: 's3', clientAddress: '127.0.0.1' }), tx, rcpt)).kind, 'pass');
});

test('the recipient rate limit answers 450 4.7.1 past its count', async () => {
  const p = phase();
  const s = session({ clientAddress: '203.0.113.5', authUser: 'bob' });
  assert.equal((await p.rcpt!(s, tx, rcpt)).kind, 'pass');
  assert.equal((await p.rcpt!(s, tx, rcpt)).kind, 'pass');
  const v = await p.rcpt!(s, tx, rcpt);
  assert.equal(v.kind, 'reject');
  if (v.kind === 'reject') assert.match(`${v.reply.code} ${v.reply.enhanced} ${v.reply.lines[0]}`, /^450 4\.7\.1 Error: too many recipients from \[203\.0\.113\.5\]/);
});

test('the checks configured to answer 450 do so with the temporary enhanced codes: HELO syntax 450 4.5.2, sender domain 450 4.1.8', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-asp-'));
  const p = antispamPhase({
    settings: { helo: { syntax: 450 }, senderDomain: 450, rateLimits: [] },
    dns: NO_DNS,
    isLocalAddress: () => false,
    queuePath: dir,
    warn: () => undefined,
    now: () => 1_000_000,
  });
  const h = await p.helo!(session({}), 'bad_name!');
  assert.equal(h.kind, 'reject');
  if (h.kind === 'reject') assert.match(`${h.reply.code} ${h.reply.enhanced} ${h.reply.lines[0]}`, /^450 4\.5\.2 Helo command rejected/);
  const m = await p.mail!(session({}), { ...tx, sender: { local: 'a', domain: 'nowhere.example', utf8: false } as never });
  assert.equal(m.kind, 'reject');
  if (m.kind === 'reject') assert.equal(`${m.reply.code} ${m.reply.enhanced} ${m.reply.lines[0]}`, '450 4.1.8 Sender address rejected: domain nowhere.example not found');
});
