/*
 * mailauth/key-cache.ts: one KeyObject per key for mailauth's calls, and
 * whatever is not a plain key input passed through unchanged. Real keys
 * (node:crypto), a real DKIM signature made and verified through mailauth.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { memoized } from '../../src/mailauth/key-cache.js';
import { DkimVerifier, dkimSign } from '../../src/mailauth/lib.js';

const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const spki = pair.publicKey.export({ type: 'spki', format: 'der' });

function counting(): { parse: (input: unknown) => KeyObject; calls: () => number } {
  let n = 0;
  return {
    parse: (input) => {
      n++;
      return crypto.createPublicKey(input as crypto.PublicKeyInput);
    },
    calls: () => n,
  };
}

test('the same bytes, format and type give the same KeyObject; other bytes another', () => {
  const c = counting();
  const parse = memoized(c.parse);
  const a = parse({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const b = parse({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  assert.equal(a, b);
  assert.equal(c.calls(), 1);
  const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  assert.notEqual(parse({ key: other, format: 'der', type: 'spki' }), a);
  assert.equal(parse(pem), parse(pem));
  assert.equal(c.calls(), 3);
});

test('inputs that are not plain key bytes are not kept; a key that does not parse is not kept', () => {
  const c = counting();
  const parse = memoized(c.parse);
  parse(pair.privateKey);
  parse(pair.privateKey);
  parse({ key: pem, format: 'pem', passphrase: 'x' });
  assert.equal(c.calls(), 3);
  assert.throws(() => parse({ key: Buffer.from('not a key'), format: 'der', type: 'spki' }));
  assert.throws(() => parse({ key: Buffer.from('not a key'), format: 'der', type: 'spki' }));
  assert.equal(c.calls(), 5);
});

test('bounded: past the limit the oldest entry is parsed again', () => {
  const c = counting();
  const parse = memoized(c.parse, 2);
  const keys = [0, 1, 2].map(() => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }));
  for (const k of keys) parse({ key: k, format: 'der', type: 'spki' });
  parse({ key: keys[2], format: 'der', type: 'spki' });
  assert.equal(c.calls(), 3);
  parse({ key: keys[0], format: 'der', type: 'spki' });
  assert.equal(c.calls(), 4);
});

test('mailauth signs and verifies with the cache installed (lib.ts), many times over one key', async () => {
  const msg = Buffer.from('From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n');
  const resolver = async (name: string): Promise<unknown[]> => {
    if (name === 'k._domainkey.example.org') return [[`v=DKIM1; k=rsa; p=${spki.toString('base64')}`]];
    const e = new Error('no data') as NodeJS.ErrnoException;
    e.code = 'ENOTFOUND';
    throw e;
  };
  for (let i = 0; i < 3; i++) {
    const s = await dkimSign(msg, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'example.org', selector: 'k', privateKey: pem, algorithm: 'rsa-sha256' }] });
    const v = new DkimVerifier({ resolver, minBitLength: 1024 });
    const done = new Promise((resolve) => v.once('finish', resolve));
    v.end(Buffer.concat([Buffer.from(s.signatures ?? ''), msg]));
    await done;
    assert.equal(v.results[0]?.status.result, 'pass');
  }
});
