/*
 * BDAT (RFC 3030) on a Session with a fake environment: chunks to a
 * committed message, chunks refused after they are read, and (issue 14)
 * a chunk that would pass the size limit refused before it is read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeSession, openTransaction, sendBdat, text } from '../helpers/fake-session-env.js';
import { bdatReadLimit, parseBdat } from '../../src/smtp/bdat.js';

test('BDAT chunks then BDAT 0 LAST: 250 per chunk, then the message', async () => {
  const { session, fake } = await fakeSession();
  await openTransaction(session);
  const a = await sendBdat(session, 'Subject: c\r\n\r\nfirst\r\n', false);
  assert.equal(a.start.reply, undefined, 'the reply comes after the chunk');
  assert.deepEqual(a.start.then, { mode: 'bytes', n: 21 });
  assert.equal(a.end, '250 2.0.0 21 octets received');
  assert.deepEqual([session.state, session.txPhase], ['bdat', 'bdat']);
  assert.equal(text(await session.command('DATA')), '503 5.5.1 DATA not allowed during BDAT');
  const b = await sendBdat(session, '', true);
  assert.equal(b.end, '250 2.0.0 00000001 Message accepted for delivery');
  assert.ok(fake.committed[0]?.body.endsWith('Subject: c\r\n\r\nfirst\r\n'));
  assert.deepEqual([session.state, session.inTransaction], ['helo', false]);
});

test('BDAT content is normalized: bare LF becomes CRLF', async () => {
  const { session, fake } = await fakeSession();
  await openTransaction(session);
  assert.match((await sendBdat(session, 'Subject: lf\n\nline\n', true)).end, /^250 2\.0\.0 00000001/);
  assert.ok(fake.committed[0]?.body.endsWith('Subject: lf\r\n\r\nline\r\n'));
});

test('BDAT without MAIL or without recipients: the chunk is read, then refused', async () => {
  const { session } = await fakeSession();
  await session.command('EHLO c');
  assert.equal((await sendBdat(session, 'NOOP\r\n', false)).end, '503 5.5.1 Need MAIL command');
  await session.command('MAIL FROM:<a@example.org>');
  assert.equal((await sendBdat(session, 'x', true)).end, '503 5.5.1 Need RCPT command');
  assert.deepEqual([session.state, session.inTransaction], ['helo', false], 'LAST ends the transaction');
});

test('BDAT larger than the size limit: 552 at once, the chunk read and thrown away, nothing stored', async () => {
  const { session, fake } = await fakeSession({ config: 'smtp max-message-size 1K\n' });
  await openTransaction(session);
  const r = await session.command('BDAT 3000 LAST');
  assert.equal(text(r), '552 5.3.4 Message size exceeds fixed maximum message size');
  assert.equal(r.reply?.close, undefined);
  assert.deepEqual(r.then, { mode: 'bytes', n: 3000 });
  await session.bdatChunk(Buffer.alloc(3000, 'x'));
  assert.equal(await session.bdatEnd(3000), undefined, 'answered already');
  assert.deepEqual([session.state, session.inTransaction, fake.committed.length, fake.aborted.length], ['helo', false, 0, 0]);
  assert.equal(text(await session.command('NOOP')), '250 2.0.0 Ok');
});

test('BDAT: the chunk that takes the message past the limit is refused at once; later chunks up to LAST get 552 too', async () => {
  const { session, fake } = await fakeSession({ config: 'smtp max-message-size 1K\n' });
  await openTransaction(session);
  assert.equal((await sendBdat(session, 'y'.repeat(600), false)).end, '250 2.0.0 600 octets received');
  const over = await sendBdat(session, 'z'.repeat(600), false);
  assert.equal(text(over.start), '552 5.3.4 Message size exceeds fixed maximum message size');
  assert.equal(over.end, '(none)');
  assert.deepEqual(fake.aborted, ['00000001'], 'what was stored is thrown away at once');
  assert.deepEqual([session.state, session.txPhase], ['bdat', 'bdat-refused']);
  const next = await sendBdat(session, 'w', true);
  assert.equal(next.start.reply, undefined);
  assert.equal(next.end, '552 5.3.4 Message size exceeds fixed maximum message size');
  assert.deepEqual([session.state, session.inTransaction, fake.committed.length], ['helo', false, 0]);
});

test('BDAT with a size too large to read: 552 and the session ends; without a size: 501 and the end', async () => {
  const { session } = await fakeSession();
  await openTransaction(session);
  const r = await session.command('BDAT 99999999999 LAST');
  assert.deepEqual([text(r), r.reply?.close, r.then], ['552 5.3.4 Message size exceeds fixed maximum message size', true, undefined]);
  assert.equal(session.inTransaction, false);
  const s2 = (await fakeSession()).session;
  await s2.command('EHLO c');
  assert.equal(text(await s2.command(`BDAT ${bdatReadLimit(36700160) + 1}`)), '552 5.3.4 Message size exceeds fixed maximum message size');
  const s3 = (await fakeSession()).session;
  const bad = await s3.command('BDAT lots');
  assert.deepEqual([text(bad), bad.reply?.close], ['501 5.5.4 Syntax: BDAT size [LAST]; closing connection', true]);
});

test('BDAT: the words', () => {
  assert.deepEqual(parseBdat('10 last'), { n: 10, last: true });
  assert.deepEqual(parseBdat(' 0 '), { n: 0, last: false });
  assert.equal(parseBdat('-1'), undefined);
  assert.equal(parseBdat('1234567890123456'), undefined);
  assert.equal(bdatReadLimit(1024), 64 * 1024 * 1024);
  assert.equal(bdatReadLimit(100 * 1024 * 1024), 100 * 1024 * 1024);
});

test('BDAT refused by the data phase: read, then the verdict', async () => {
  const { session } = await fakeSession({ policy: { data: async () => ({ kind: 'reject', reply: { code: 550, enhanced: '5.7.1', lines: ['no data for you'] }, reason: 'test' }) } });
  await openTransaction(session);
  assert.equal((await sendBdat(session, 'abc', true)).end, '550 5.7.1 no data for you');
  assert.equal(session.inTransaction, false);
});
