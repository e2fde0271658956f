/*
 * A Session on a fake environment (test/helpers/fake-session-env.ts): no
 * socket, no daemon. Replies are values; these tests check them, the
 * session's state as others read it, and what reached the fake spool,
 * scheduler and log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/smtp/session.js';
import { commandTable } from '../../src/smtp/commands.js';
import { fakeSession, fakeSessionEnv, openTransaction, script, sendData, text } from '../helpers/fake-session-env.js';

test('the greeting is a 220 with our name; the session is then ready', async () => {
  const fake = fakeSessionEnv();
  const s = new Session('s1', fake.env, fake.peer);
  assert.equal(s.state, 'connect');
  const g = await s.greet();
  assert.equal(text(g), '220 mx.test.example ESMTP Postern');
  assert.equal(g.reply.close, undefined);
  assert.equal(s.state, 'ready');
});

test('a connect verdict that refuses closes at once, with its delay', async () => {
  const fake = fakeSessionEnv({ policy: { connect: async () => ({ kind: 'reject', reply: { code: 554, enhanced: '5.7.1', lines: ['go away'] }, reason: 'test', delayMs: 5 }) } });
  const s = new Session('s1', fake.env, fake.peer);
  const g = await s.greet();
  assert.deepEqual([g.reply.code, g.reply.close, g.delayMs], [554, true, 5]);
  assert.equal(s.state, 'connect');
});

test('EHLO lists the extensions; STARTTLS and AUTH only where the listener offers them', async () => {
  const plain = await fakeSession();
  const r = await plain.session.command('EHLO client.example');
  assert.deepEqual(r.reply?.lines, ['mx.test.example Hello client.example [192.0.2.7], pleased to meet you', 'PIPELINING', 'SIZE 36700160', '8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'ETRN', 'HELP']);
  assert.deepEqual([plain.session.state, plain.session.helo, plain.session.esmtp], ['helo', 'client.example', true]);

  const tls = await fakeSession({ listener: { tls: 'starttls', auth: 'optional' }, cram: true });
  const kw = (await tls.session.command('EHLO c')).reply?.lines ?? [];
  assert.ok(kw.includes('STARTTLS'));
  assert.ok(!kw.some((k) => k.startsWith('AUTH')), 'no AUTH before TLS');
  tls.session.tlsEstablished({ version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
  const after = (await tls.session.command('EHLO c')).reply?.lines ?? [];
  assert.ok(!after.includes('STARTTLS'));
  assert.ok(after.includes('AUTH PLAIN LOGIN CRAM-MD5'));

  const off = await fakeSession({ config: 'smtp disable CHUNKING ETRN\n' });
  const l = (await off.session.command('EHLO c')).reply?.lines ?? [];
  assert.ok(!l.includes('CHUNKING') && !l.includes('ETRN'));
  assert.equal(text(await off.session.command('BDAT 0 LAST')), '500 5.5.1 Command unrecognized');
});

test('HELO: one line, no extensions; bad names are refused', async () => {
  const { session } = await fakeSession();
  assert.deepEqual(await script(session, ['HELO', 'HELO a b', 'HELO client.example']), ['501 5.5.4 Syntax: HELO hostname', '501 5.5.2 Invalid domain name', '250 mx.test.example Hello client.example [192.0.2.7], pleased to meet you']);
  assert.equal(session.esmtp, false);
});

test('commands out of sequence get their 503 and change nothing', async () => {
  const { session } = await fakeSession();
  assert.deepEqual(await script(session, ['MAIL FROM:<a@example.org>', 'RCPT TO:<b@test.example>', 'DATA', 'ETRN test.example', 'AUTH PLAIN']), [
    '503 5.5.1 Send HELO/EHLO first',
    '503 5.5.1 Need MAIL before RCPT',
    '503 5.5.1 Need MAIL command',
    '503 5.5.1 Send HELO/EHLO first',
    '503 5.5.1 Send EHLO first',
  ]);
  assert.equal(session.state, 'ready');
  assert.deepEqual(await script(session, ['EHLO c', 'MAIL FROM:<a@example.org>', 'MAIL FROM:<a@example.org>', 'ETRN test.example', 'DATA']), [
    '250 HELP',
    '250 2.1.0 Ok',
    '503 5.5.1 Sender already specified',
    '503 5.5.1 ETRN not allowed during a mail transaction',
    '503 5.5.1 Need RCPT command',
  ]);
  assert.equal(session.state, 'mail');
});

test('MAIL, RCPT, DATA: a committed message, its Received: header, the scheduler told', async () => {
  const { session, fake } = await fakeSession();
  await openTransaction(session, ['root@test.example', 'ROOT@test.example', 'other@test.example']);
  assert.equal(session.txPhase, 'envelope');
  const { start, end } = await sendData(session, 'Subject: hi\r\n\r\nbody\r\n');
  assert.equal(text(start), '354 End data with <CR><LF>.<CR><LF>');
  assert.deepEqual(start.then, { mode: 'data', maxSize: 36700160 });
  assert.equal(end, '250 2.0.0 00000001 Message accepted for delivery');
  assert.equal(fake.committed.length, 1);
  const m = fake.committed[0];
  assert.equal(m?.envelope.sender, 'a@example.org');
  assert.deepEqual(m?.envelope.recipients.map((r) => r.address), ['root@test.example', 'other@test.example'], 'a duplicate RCPT is kept once');
  assert.match(m?.body ?? '', /^Received: from client\.example \(unknown \[192\.0\.2\.7\]\)\r\n\tby mx\.test\.example \(Postern\) with ESMTP id 00000001;/);
  assert.ok(m?.body.endsWith('Subject: hi\r\n\r\nbody\r\n'));
  assert.equal(fake.enqueued.length, 1);
  assert.deepEqual([session.state, session.inTransaction, session.messages], ['helo', false, 1]);
  assert.ok(fake.events.some((e) => e.event === 'message' && e.fields.msgid === '00000001'));
});

test('DATA over the size limit: 552, the stored part thrown away, the session goes on', async () => {
  const { session, fake } = await fakeSession({ config: 'smtp max-message-size 1K\n' });
  await openTransaction(session);
  const { end } = await sendData(session, 'x'.repeat(2000));
  assert.equal(end, '552 5.3.4 Message size exceeds fixed maximum message size');
  assert.deepEqual([fake.committed.length, fake.aborted], [0, ['00000001']]);
  assert.deepEqual([session.state, session.inTransaction], ['helo', false]);
});

test('RSET drops the transaction, never the session', async () => {
  const { session, fake } = await fakeSession();
  await openTransaction(session);
  assert.deepEqual(await script(session, ['RSET x', 'RSET']), ['501 5.5.4 Syntax: RSET (no parameters)', '250 2.0.0 Reset state']);
  assert.deepEqual([session.state, session.inTransaction, session.helo], ['helo', false, 'client.example']);
  assert.equal(text(await session.command('RCPT TO:<root@test.example>')), '503 5.5.1 Need MAIL before RCPT');
  assert.equal(fake.committed.length, 0);
});

test('QUIT closes; NOOP, HELP, ETRN answer', async () => {
  const { session, fake } = await fakeSession();
  assert.deepEqual(await script(session, ['NOOP', 'HELP', 'EHLO c', 'ETRN @Test.Example']), ['250 2.0.0 Ok', '214 2.0.0 End of HELP info', '250 HELP', '250 2.0.0 Queuing for node @test.example started']);
  assert.deepEqual(fake.etrn, ['@test.example']);
  const q = await session.command('QUIT');
  assert.deepEqual([q.reply?.code, q.reply?.close], [221, true]);
});

test('STARTTLS: a result that asks the connection to upgrade; afterwards the session starts over', async () => {
  const { session } = await fakeSession({ listener: { tls: 'starttls' } });
  await session.command('EHLO c');
  const r = await session.command('STARTTLS');
  assert.equal(text(r), '220 2.0.0 Ready to start TLS');
  assert.deepEqual(r.then, { mode: 'starttls' });
  session.tlsEstablished({ version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' });
  assert.deepEqual([session.state, session.helo, session.tls, session.tlsInfo?.version], ['ready', undefined, true, 'TLSv1.3']);
  assert.deepEqual(await script(session, ['STARTTLS', 'EHLO c', 'STARTTLS x']), ['503 5.5.1 TLS already active', '250 HELP', '501 5.5.4 Syntax: STARTTLS (no parameters)']);

  const none = await fakeSession();
  assert.equal(text(await none.session.command('STARTTLS')), '502 5.5.1 STARTTLS not available on this listener');
  const busy = await fakeSession({ listener: { tls: 'starttls' } });
  await openTransaction(busy.session);
  assert.equal(text(await busy.session.command('STARTTLS')), '503 5.5.1 STARTTLS not allowed during a mail transaction');
});

test('every state change goes through enter(), traced "old -> new"', async () => {
  const fake = fakeSessionEnv();
  const traces: string[] = [];
  const env = { ...fake.env, log: { ...fake.env.log, tracing: () => true, trace: (_k: string, t: string) => void traces.push(t) } };
  const s = new Session('s9', env, fake.peer);
  await s.greet();
  await openTransaction(s);
  await s.command('RSET');
  s.end();
  assert.deepEqual(traces, ['session s9: connect -> ready', 'session s9: ready -> helo', 'session s9: helo -> mail', 'session s9: mail -> helo', 'session s9: helo -> closed']);
});

test('junk commands: NOOP, RSET, VRFY, HELP and unknown verbs count; past the limit 421 4.7.0 and close', async () => {
  const { session } = await fakeSession({ config: 'smtp limit max-junk-commands 4\n' });
  assert.deepEqual(await script(session, ['NOOP', 'RSET', 'VRFY root', 'XYZZY']), ['250 2.0.0 Ok', '250 2.0.0 Reset state', '252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery', '500 5.5.1 Command unrecognized']);
  const r = await session.command('HELP');
  assert.equal(text(r), '421 4.7.0 mx.test.example Too many junk commands, closing connection');
  assert.equal(r.reply?.close, true);
});

test('junk commands: EHLO, MAIL, RCPT do not count, and an accepted message starts the count again (as Postfix)', async () => {
  const { session } = await fakeSession({ config: 'smtp limit max-junk-commands 2\n' });
  assert.deepEqual(await script(session, ['NOOP', 'NOOP']), ['250 2.0.0 Ok', '250 2.0.0 Ok']);
  await openTransaction(session);
  assert.match((await sendData(session, 'Subject: x\r\n\r\n')).end, /^250 2\.0\.0/);
  assert.deepEqual(await script(session, ['NOOP', 'NOOP', 'NOOP']), ['250 2.0.0 Ok', '250 2.0.0 Ok', '421 4.7.0 mx.test.example Too many junk commands, closing connection']);
});

test('junk commands: the default limit is 100; 0 turns it off', async () => {
  const { session } = await fakeSession();
  const replies = await script(session, Array.from({ length: 101 }, () => 'NOOP'));
  assert.equal(replies.filter((r) => r === '250 2.0.0 Ok').length, 100);
  assert.match(replies[100] ?? '', /^421 4\.7\.0/);
  const off = await fakeSession({ config: 'smtp limit max-junk-commands 0\n' });
  const many = await script(off.session, Array.from({ length: 300 }, () => 'NOOP'));
  assert.ok(many.every((r) => r === '250 2.0.0 Ok'));
});

test('unknown commands: 421 at max-unknown-commands, before the junk limit', async () => {
  const { session } = await fakeSession({ config: 'smtp limit max-unknown-commands 3\n' });
  assert.deepEqual(await script(session, ['FOO', 'BAR', 'BAZ']), ['500 5.5.1 Command unrecognized', '500 5.5.1 Command unrecognized', '421 4.7.0 mx.test.example Too many unrecognized commands, closing connection']);
});

test('the command table is data: states, policy phase and handler per verb', () => {
  const t = commandTable(Session.prototype);
  const mail = t.get('MAIL');
  assert.deepEqual([mail?.states, mail?.sloppyStates, mail?.phase, mail?.handler], [['helo'], ['ready'], 'mail', Session.prototype.mailCommand]);
  assert.equal(t.get('RCPT')?.phase, 'rcpt');
  assert.equal(t.get('BDAT')?.extension, 'CHUNKING');
  assert.deepEqual([...t.values()].filter((c) => c.junk).map((c) => c.verb).sort(), ['HELP', 'NOOP', 'RSET', 'VRFY']);
  assert.equal(t.get('RCPT')?.sequenceError('bdat').lines[0], 'RCPT not allowed during BDAT');
});
