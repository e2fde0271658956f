/*
 * mailauth/async-crypto.ts: DKIM signatures made and verified on libuv's
 * thread pool stay exactly right under concurrency — many jobs in flight at
 * once, each answer the one of its own message (our signer's signatures
 * all verify at mailauth; of many valid and tampered messages verified at
 * once, exactly the valid ones pass the fast path) — and a failed job
 * rejects (never a signature or a pass), so signing fails and verification
 * goes to mailauth's verifier.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { signAsync, verifyAsync } from '../../src/mailauth/async-crypto.js';
import { fastSign } from '../../src/mailauth/sign/fast-sign.js';
import { signMessage } from '../../src/mailauth/sign/sign-core.js';
import type { SigningKey } from '../../src/mailauth/sign/keys.js';
import { fastDkim } from '../../src/mailauth/verify/fast-dkim.js';
import { InlineEngine } from '../../src/mailauth/verify/engine.js';
import { dkimKeys } from '../helpers/dkim-keys.js';

const { rsa, ed, resolver, rsaK, edK } = dkimKeys();

function message(i: number): Buffer {
  return Buffer.from(`From: a@example.org\r\nTo: b@example.net\r\nSubject: number ${i}\r\nMessage-ID: <${i}@example.org>\r\n\r\nbody of message ${i}\r\n${'x'.repeat(i % 97)}\r\n`, 'latin1');
}

async function mailauthSays(msg: Buffer): Promise<string[]> {
  const e = new InlineEngine({ resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' }, 0);
  e.write(msg);
  return (await e.results(Promise.resolve(undefined))).dkim.map((d) => d.status.result);
}

test('200 messages signed at once, RSA and Ed25519 (dual): every signature is its own message’s', async () => {
  const msgs = Array.from({ length: 200 }, (_, i) => message(i));
  const headers = await Promise.all(msgs.map((m, i) => fastSign(m, i % 3 === 0 ? [rsaK, edK] : [rsaK])));
  const signed = msgs.map((m, i) => Buffer.concat([Buffer.from(headers[i] as string, 'latin1'), m]));
  // Verified through mailauth alone (no fast path), one at a time.
  for (const [i, m] of signed.entries()) assert.deepEqual(await mailauthSays(m), i % 3 === 0 ? ['pass', 'pass'] : ['pass'], `message ${i}`);
  // A signature moved to another message does not verify there (its body hash differs: neutral).
  const swapped = Buffer.concat([Buffer.from(headers[1] as string, 'latin1'), msgs[2] as Buffer]);
  assert.deepEqual(await mailauthSays(swapped), ['neutral']);
});

test('200 messages verified at once, half tampered: the fast path passes exactly the valid ones', async () => {
  const signed = await Promise.all(Array.from({ length: 200 }, async (_, i) => Buffer.concat([Buffer.from((await fastSign(message(i), i % 4 === 0 ? [edK] : [rsaK])) as string, 'latin1'), message(i)])));
  const cases = signed.map((m, i) => (i % 2 === 0 ? m : Buffer.from(m.toString('latin1').replace(`number ${i}`, `number ${i + 1}`), 'latin1')));
  const answers = await Promise.all(cases.map((m) => fastDkim(m, resolver, 1024)));
  for (const [i, a] of answers.entries()) {
    if (i % 2 === 0) assert.equal(a?.results[0]?.status.result, 'pass', `message ${i}`);
    else assert.equal(a, undefined, `tampered message ${i} left to mailauth`);
  }
  // The engine: mailauth's verifier gives the tampered ones their fail.
  assert.deepEqual(await mailauthSays(cases[1] as Buffer), ['fail']);
});

test('a job that fails rejects: no signature, no pass', async () => {
  const rsaPriv = crypto.createPrivateKey(rsa.pem);
  const edPub = crypto.createPublicKey(crypto.createPrivateKey(ed.pem));
  await assert.rejects(signAsync('rsa-sha256', Buffer.from('x'), crypto.createPublicKey(rsaPriv) as never));
  await assert.rejects(verifyAsync('rsa-sha256', Buffer.from('x'), edPub, Buffer.alloc(64)));
  // A good pair answers.
  const sig = await signAsync('rsa-sha256', Buffer.from('x'), rsaPriv);
  assert.equal(await verifyAsync('rsa-sha256', Buffer.from('x'), crypto.createPublicKey(rsaPriv), sig), true);
  assert.equal(await verifyAsync('rsa-sha256', Buffer.from('y'), crypto.createPublicKey(rsaPriv), sig), false);
  // Signing with a key that cannot sign fails the whole message (the delivery is deferred), never sends it unsigned.
  const bad: SigningKey = { ...edK, algorithm: 'rsa-sha256' };
  const a = await signMessage(message(1), [bad]).catch((e: unknown) => ({ error: (e as Error).message }));
  assert.ok('error' in a, JSON.stringify(a));
});
