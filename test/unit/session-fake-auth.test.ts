/*
 * AUTH on a Session with a fake environment, and the SASL state machine
 * (smtp/sasl.ts) on its own: PLAIN, LOGIN, CRAM-MD5; success, failure,
 * cancel. A failed AUTH is answered after `smtp auth-fail-delay`: the
 * session returns that wait as delayMs and never sleeps itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { decodeBase64, saslContinue, saslStart, type SaslContext } from '../../src/smtp/sasl.js';
import { fakeSession, script, text } from '../helpers/fake-session-env.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
const USERS = { alice: 'secret' };

async function authSession(config = '', extra: { cram?: boolean; authFailLimit?: number } = {}) {
  const r = await fakeSession({ listener: { auth: 'optional' }, users: USERS, config: `smtp auth-without-tls\n${config}`, ...extra });
  await r.session.command('EHLO client.example');
  return r;
}

test('AUTH PLAIN with an initial response: 235, the user known, logged', async () => {
  const { session, fake } = await authSession();
  const r = await session.command(`AUTH PLAIN ${b64('\0alice\0secret')}`);
  assert.equal(text(r), '235 2.7.0 Authentication successful');
  assert.equal(r.delayMs, undefined);
  assert.equal(session.authUser, 'alice');
  assert.deepEqual(fake.events.find((e) => e.event === 'authentication')?.fields, { session: 's1', address: '192.0.2.7', user: 'alice', mechanism: 'PLAIN', result: 'ok' });
  assert.equal(text(await session.command(`AUTH PLAIN ${b64('\0alice\0secret')}`)), '503 5.5.1 Already authenticated');
  assert.ok(!((await session.command('EHLO c')).reply?.lines ?? []).some((l) => l.startsWith('AUTH')));
});

test('AUTH PLAIN without one: an empty 334, then the response', async () => {
  const { session } = await authSession();
  const r = await session.command('AUTH PLAIN');
  assert.deepEqual([r.reply?.code, r.reply?.lines, r.then], [334, [''], { mode: 'auth' }]);
  assert.equal(text(await session.authContinue(b64('alice\0alice\0secret'))), '235 2.7.0 Authentication successful');
});

test('AUTH PLAIN with a wrong password: 535 after the configured delay, returned as delayMs, counted', async () => {
  const { session, fake } = await authSession();
  const r = await session.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`);
  assert.equal(text(r), '535 5.7.8 Authentication credentials invalid');
  assert.equal(r.delayMs, 1000);
  assert.equal(session.authUser, undefined);
  assert.equal(fake.stats.get('smtp.auth.fail'), 1);
  assert.deepEqual(fake.events.find((e) => e.event === 'authentication')?.fields, { session: 's1', address: '192.0.2.7', user: 'alice', result: 'permfail', reason: 'wrong credentials', failures: 1 });
  const quick = await authSession('smtp auth-fail-delay 0\n');
  assert.equal((await quick.session.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`)).delayMs, undefined);
  const slow = await authSession('smtp auth-fail-delay 3s\n');
  assert.equal((await slow.session.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`)).delayMs, 3000);
});

test('AUTH PLAIN: a malformed response and a proxy authorization are failures too', async () => {
  const { session } = await authSession();
  const r = await session.command(`AUTH PLAIN ${b64('alice secret')}`);
  assert.deepEqual([text(r), r.delayMs], ['501 5.5.2 Malformed PLAIN response', 1000]);
  const p = await session.command(`AUTH PLAIN ${b64('bob\0alice\0secret')}`);
  assert.deepEqual([text(p), p.delayMs], ['535 5.7.8 Authentication credentials invalid', 1000]);
});

test('AUTH LOGIN: two prompts, then 235; a wrong password 535 with its delay', async () => {
  const { session, fake } = await authSession();
  const a = await session.command('AUTH LOGIN');
  assert.deepEqual([a.reply?.code, unb64(a.reply?.lines[0] ?? ''), a.then], [334, 'Username:', { mode: 'auth' }]);
  const b = await session.authContinue(b64('alice'));
  assert.deepEqual([b.reply?.code, unb64(b.reply?.lines[0] ?? ''), b.then], [334, 'Password:', { mode: 'auth' }]);
  assert.equal(text(await session.authContinue(b64('secret'))), '235 2.7.0 Authentication successful');
  assert.equal(fake.events.find((e) => e.event === 'authentication')?.fields.mechanism, 'LOGIN');

  const bad = await authSession('smtp auth-username-prompt "User?"\n');
  const p = await bad.session.command(`AUTH LOGIN ${b64('alice')}`);
  assert.equal(unb64(p.reply?.lines[0] ?? ''), 'Password:', 'an initial response is the user name');
  const f = await bad.session.authContinue(b64('nope'));
  assert.deepEqual([text(f), f.delayMs], ['535 5.7.8 Authentication credentials invalid', 1000]);
  assert.equal(unb64((await bad.session.command('AUTH LOGIN')).reply?.lines[0] ?? ''), 'User?');
});

test('AUTH cancelled with "*", or answered with bad base64: 501, not counted, no delay', async () => {
  const { session, fake } = await authSession();
  await session.command('AUTH LOGIN');
  const c = await session.authContinue('*');
  assert.deepEqual([text(c), c.delayMs, c.then], ['501 5.7.0 Authentication cancelled', undefined, undefined]);
  await session.command('AUTH PLAIN');
  const b = await session.authContinue('not base64!');
  assert.deepEqual([text(b), b.delayMs], ['501 5.5.2 Invalid base64 data', undefined]);
  assert.equal(fake.stats.get('smtp.auth.fail'), undefined);
  assert.equal(text(await session.authContinue('dGVzdA==')), '503 5.5.1 No authentication in progress');
});

test('AUTH CRAM-MD5: the challenge, the HMAC answer, 235; a wrong digest 535 with its delay', async () => {
  const { session, fake } = await authSession('', { cram: true });
  const r = await session.command('AUTH CRAM-MD5');
  const challenge = unb64(r.reply?.lines[0] ?? '');
  assert.match(challenge, /^<[0-9a-f]{16}\.\d+@mx\.test\.example>$/);
  const digest = createHmac('md5', 'secret').update(challenge).digest('hex');
  assert.equal(text(await session.authContinue(b64(`alice ${digest}`))), '235 2.7.0 Authentication successful');
  assert.equal(fake.events.find((e) => e.event === 'authentication')?.fields.mechanism, 'CRAM-MD5');

  const bad = await authSession('', { cram: true });
  await bad.session.command('AUTH CRAM-MD5');
  const f = await bad.session.authContinue(b64(`alice ${'0'.repeat(32)}`));
  assert.deepEqual([text(f), f.delayMs], ['535 5.7.8 Authentication credentials invalid', 1000]);
  const i = await bad.session.command(`AUTH CRAM-MD5 ${b64('x')}`);
  assert.deepEqual([text(i), i.delayMs], ['501 5.5.4 CRAM-MD5 takes no initial response', 1000]);
  assert.equal(text(await (await authSession()).session.command('AUTH CRAM-MD5')), '504 5.5.4 Unrecognized authentication mechanism');
});

test('AUTH refused before the exchange: no TLS, no EHLO, in a transaction, too many failures', async () => {
  const noTls = await fakeSession({ listener: { auth: 'optional' }, users: USERS });
  assert.deepEqual(await script(noTls.session, ['EHLO c', 'AUTH PLAIN']), ['250 HELP', '538 5.7.11 Encryption required for requested authentication mechanism']);
  const helo = await fakeSession({ listener: { auth: 'optional' }, users: USERS, config: 'smtp auth-without-tls\n' });
  assert.deepEqual(await script(helo.session, ['HELO c', 'AUTH PLAIN']), ['250 mx.test.example Hello c [192.0.2.7], pleased to meet you', '503 5.5.1 Send EHLO first']);
  const tx = await authSession();
  assert.deepEqual(await script(tx.session, ['MAIL FROM:<a@example.org>', 'AUTH PLAIN']), ['250 2.1.0 Ok', '503 5.5.1 AUTH not allowed during a mail transaction']);
  const none = await fakeSession({ config: 'smtp auth-without-tls\n' });
  assert.deepEqual(await script(none.session, ['EHLO c', 'AUTH PLAIN']), ['250 HELP', '503 5.5.1 Authentication not enabled']);
  const throttled = await authSession('', { authFailLimit: 1 });
  await throttled.session.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`);
  assert.equal(text(await throttled.session.command('AUTH PLAIN')), '454 4.7.0 Too many failed authentications from your address, try again later');
  assert.equal(throttled.fake.events.at(-1)?.fields.result, 'throttled');
});

test('sasl.ts: the steps as values, with credentials that are a plain object', async () => {
  const checked: string[] = [];
  const ctx: SaslContext = {
    credentials: {
      check: async (u, p) => (checked.push(`${u}:${p}`), u === 'err' ? { kind: 'error', reason: 'table down' } : p === 'pw' ? { kind: 'ok' } : { kind: 'refused' }),
      cramSecret: (u) => (u === 'err' ? { error: 'table down' } : undefined),
    },
    usernamePrompt: 'U',
    passwordPrompt: 'P',
    challenge: () => '<1.2@x>',
  };
  assert.deepEqual(await saslStart('PLAIN', b64('\0bob\0pw'), ctx), { kind: 'success', user: 'bob', mech: 'PLAIN' });
  assert.deepEqual(await saslStart('PLAIN', b64('\0err\0pw'), ctx), { kind: 'tempfail', reason: 'table down', user: 'err' });
  const login = await saslStart('LOGIN', undefined, ctx);
  assert.equal(login.kind, 'challenge');
  if (login.kind !== 'challenge') return;
  const pw = await saslContinue(login.exchange, b64('bob'), ctx);
  assert.deepEqual(pw.kind === 'challenge' ? pw.exchange : undefined, { mech: 'LOGIN', user: 'bob' });
  assert.deepEqual(await saslContinue({ mech: 'LOGIN', user: 'bob' }, b64('no'), ctx), { kind: 'failure', reason: 'wrong credentials', user: 'bob' });
  const cram = await saslStart('CRAM-MD5', undefined, ctx);
  assert.deepEqual(cram.kind === 'challenge' ? cram.exchange : undefined, { mech: 'CRAM-MD5', challenge: '<1.2@x>' });
  assert.deepEqual(await saslContinue({ mech: 'CRAM-MD5', challenge: '<1.2@x>' }, b64(`err ${'a'.repeat(32)}`), ctx), { kind: 'tempfail', reason: 'table down', user: 'err' });
  assert.deepEqual(checked, ['bob:pw', 'err:pw', 'bob:no']);
});

test('sasl.ts: strict base64 (RFC 4954 §4)', () => {
  const cases: [string, string | undefined][] = [
    ['=', ''],
    ['YQ==', 'a'],
    ['YWI=', 'ab'],
    ['YWJj', 'abc'],
    ['YQ=', undefined],
    ['Y Q==', undefined],
    ['YQ==YQ==', undefined],
    ['*', undefined],
    ['', ''],
  ];
  for (const [input, want] of cases) assert.equal(decodeBase64(input)?.toString('utf8'), want, JSON.stringify(input));
});
