/*
 * mailauth/sign/fast-sign.ts: the signatures of our own signer verify at
 * mailauth's verifier and at dkimpy (Debian python3-dkim), RSA, Ed25519
 * and both, on messages with folded, repeated and oddly spaced fields and
 * bodies with trailing blank lines; the fields signed are mailauth's; and
 * what it leaves to mailauth (a bare LF) still gets a good signature
 * through sign-core.ts. (OpenDKIM checks the daemon's signatures in
 * e2e/mailauth-sign.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fastSign } from '../../src/mailauth/sign/fast-sign.js';
import { signMessage } from '../../src/mailauth/sign/sign-core.js';
import { InlineEngine } from '../../src/mailauth/verify/engine.js';
import { dkimpyVerifyMany } from '../helpers/dkimpy.js';
import { dkimKeys } from '../helpers/dkim-keys.js';

const { records, resolver, rsaK, edK } = dkimKeys();

const heads = [
  'From: "A, B" <a@example.org>\r\nTo: b@example.net\r\nSubject: hello\r\n  folded   line\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n',
  'Received: from a by b; Mon, 07 Dec 2026 12:00:00 +0000\r\nfrom: a@Example.ORG\r\nSubject:nospace \t\r\nX-Dup: 1\r\nCc: x@example.net,\r\n\ty@example.net\r\nCc: z@example.net\r\nMIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n',
  `From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nSubject: ${Buffer.from('Grüße', 'utf8').toString('latin1')}\r\nTo: d@example.net\r\nList-Id: <l.example.org>\r\nReferences: <1@x> <2@x> <3@x> <4@x> <5@x> <6@x> <7@x> <8@x> <9@x> <10@x> <11@x> <12@x>\r\n`,
];
const bodies = ['Hello\r\n', '', 'line  with   spaces \t \r\n\r\n\r\n', 'Lorem ipsum dolor sit amet.\r\n'.repeat(200), 'tab\there\r\n \r\nend\r\n'];

async function mailauthSays(msg: Buffer): Promise<string[]> {
  const e = new InlineEngine({ resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' }, 0);
  e.write(msg);
  return (await e.results(Promise.resolve(undefined))).dkim.map((d) => d.status.result);
}

test('our signatures verify at mailauth and dkimpy: RSA, Ed25519, both, on many messages', async () => {
  const signed: Buffer[] = [];
  for (const h of heads) {
    for (const b of bodies) {
      const msg = Buffer.from(`${h}\r\n${b}`, 'latin1');
      for (const keys of [[rsaK], [edK], [rsaK, edK]]) {
        const header = await fastSign(msg, keys);
        assert.ok(header !== undefined);
        assert.ok(header.split('\r\n').every((l) => l.length <= 78), header);
        signed.push(Buffer.concat([Buffer.from(header, 'latin1'), msg]));
      }
    }
  }
  const py = dkimpyVerifyMany(signed, records);
  for (const [i, m] of signed.entries()) {
    const sigs = (m.toString('latin1').match(/^DKIM-Signature:/gm) ?? []).length;
    assert.deepEqual(await mailauthSays(m), Array(sigs).fill('pass'), m.toString('latin1').slice(0, 600));
    assert.deepEqual(py[i], Array(sigs).fill(true), m.toString('latin1').slice(0, 600));
  }
});

test('the fields signed are mailauth defaults present in the message, every instance, from the bottom up', async () => {
  const msg = Buffer.from(`${heads[1]}\r\nx\r\n`, 'latin1');
  const h = /h=([^;]*);/.exec(((await fastSign(msg, [rsaK])) ?? '').replace(/\r\n /g, ' '))?.[1];
  assert.equal(h, 'Content-Type: MIME-Version: Cc: Cc: Subject: from');
});

test('a message with a bare LF, or without From, is left to mailauth, and still signed', async () => {
  const bare = Buffer.from('From: a@example.org\r\nSubject: x\r\n\r\nline one\nline two\r\n', 'latin1');
  assert.equal(await fastSign(bare, [rsaK]), undefined);
  assert.equal(await fastSign(Buffer.from('Subject: x\r\n\r\nx\r\n'), [rsaK]), undefined);
  const a = await signMessage(bare, [rsaK]);
  assert.ok('header' in a);
  assert.deepEqual(await mailauthSays(Buffer.concat([Buffer.from(a.header, 'latin1'), bare])), ['pass']);
});
