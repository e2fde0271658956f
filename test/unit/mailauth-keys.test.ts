/*
 * DKIM keys for signing (mailauth/sign/keys.ts) made with the openssl
 * commands docs/mail-authentication.md gives, their printed TXT records
 * used to verify what Postern signs (mailauth/sign/sign-core.ts, checked
 * by the verify engine); unusable keys and key entries; the From: domain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { KeyTable, type SigningKey } from '../../src/mailauth/sign/keys.js';
import { signMessage } from '../../src/mailauth/sign/sign-core.js';
import { fromDomain } from '../../src/mailauth/sign/signer.js';
import { InlineEngine } from '../../src/mailauth/verify/engine.js';
import type { Lookup } from '../../src/table/table.js';
import type { MailAuthResolver } from '../../src/mailauth/lib.js';

/** The commands of docs/mail-authentication.md ("Making a key and its DNS record"), as written there. */
function docCommands(): { rsa: string; ed: string } {
  const doc = readFileSync(new URL('../../../docs/mail-authentication.md', import.meta.url), 'utf8');
  const block = /```sh\n([^]*?)```/.exec(doc)?.[1] ?? '';
  const cmds = block.split('\n').filter((l) => l.startsWith('openssl') || l.startsWith('printf'));
  assert.equal(cmds.length, 4, 'two commands per key type in the guide');
  return { rsa: cmds.slice(0, 2).join('\n'), ed: cmds.slice(2, 4).join('\n') };
}

function runDoc(script: string, dir: string): string {
  return execFileSync('/bin/sh', ['-c', script.replaceAll('/etc/mail/dkim/', `${dir}/`)], { encoding: 'utf8' }).trim();
}

const table = (entries: Record<string, string>) => new KeyTable((k): Lookup => (entries[k] !== undefined ? { kind: 'found', value: entries[k] } : { kind: 'notfound' }));

test('keys made with the documented openssl commands sign, and their printed records verify', async () => {
  const dir = tempDir('postern-keys-');
  const cmds = docCommands();
  const rsaRecord = runDoc(cmds.rsa, dir);
  const edRecord = runDoc(cmds.ed, dir);
  assert.match(rsaRecord, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]{390,}=*$/);
  assert.match(edRecord, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  const keys = table({ 'example.org': `rsa2026:${dir}/example.org.rsa.pem, ed2026:${dir}/example.org.ed25519.pem` }).keysFor('mail.example.org');
  assert.equal(keys.kind, 'keys');
  const list = (keys as { keys: readonly SigningKey[] }).keys;
  assert.deepEqual(list.map((k) => [k.domain, k.selector, k.algorithm]), [
    ['example.org', 'rsa2026', 'rsa-sha256'],
    ['example.org', 'ed2026', 'ed25519-sha256'],
  ]);
  const msg = Buffer.from('From: A <a@mail.example.org>\r\nTo: b@example.net\r\nSubject: keys\r\n\r\nbody\r\n');
  const signed = await signMessage(msg, list);
  assert.ok('header' in signed, JSON.stringify(signed));
  const records: Record<string, string> = { 'rsa2026._domainkey.example.org': rsaRecord, 'ed2026._domainkey.example.org': edRecord };
  const resolver: MailAuthResolver = async (name) => {
    const r = records[name];
    if (r === undefined) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    return [[r]];
  };
  const engine = new InlineEngine({ resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' });
  engine.write(Buffer.concat([Buffer.from(signed.header, 'latin1'), msg]));
  const r = await engine.results(Promise.resolve(undefined));
  assert.deepEqual(r.dkim.map((s) => `${s.status.result} ${s.selector}`), ['pass rsa2026', 'pass ed2026']);
});

test('unusable keys and entries: an error that names the key, never a signature', () => {
  const dir = tempDir('postern-keys-');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:768', '-out', join(dir, 'short.pem')], { stdio: 'ignore' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'ec.pem')], { stdio: 'ignore' });
  writeFileSync(join(dir, 'huge.pem'), 'x'.repeat(100_000));
  writeFileSync(join(dir, 'junk.pem'), '-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n');
  const t = table({
    'short.test': `s:${dir}/short.pem`,
    'ec.test': `s:${dir}/ec.pem`,
    'huge.test': `s:${dir}/huge.pem`,
    'junk.test': `s:${dir}/junk.pem`,
    'gone.test': `s:${dir}/gone.pem`,
    'relative.test': 's:keys/k.pem',
    'noselector.test': `${dir}/k.pem`,
  });
  const why = (d: string): string => {
    const r = t.keysFor(d);
    assert.equal(r.kind, 'error', d);
    return (r as { reason: string }).reason;
  };
  assert.match(why('short.test'), /an RSA key of 768 bits is too short/);
  assert.match(why('ec.test'), /a ec key; DKIM signs with RSA or Ed25519/);
  assert.match(why('huge.test'), /larger than 65536 bytes: not a key/);
  assert.match(why('junk.test'), /not a private key/);
  assert.match(why('gone.test'), /cannot read .*gone\.pem: ENOENT/);
  assert.match(why('relative.test'), /is not "selector:\/path\/to\/key\.pem"/);
  assert.match(why('noselector.test'), /is not "selector:\/path\/to\/key\.pem"/);
  assert.deepEqual(t.keysFor('other.test'), { kind: 'none' });
  assert.deepEqual(new KeyTable(() => ({ kind: 'error', reason: 'db down' })).keysFor('x.test'), { kind: 'error', reason: 'db down' });
});

test('the From: domain that picks the keys', () => {
  const d = (h: string): string | undefined => fromDomain(Buffer.from(`${h}\r\nSubject: x\r\n\r\nFrom: body@not.this\r\n`));
  assert.equal(d('From: Alice <alice@Example.ORG>'), 'example.org');
  assert.equal(d('From: alice@example.org (Alice at work@elsewhere.test)'), 'example.org');
  assert.equal(d('From: "Bob @ Sales" <bob@sales.example.org>'), 'sales.example.org');
  assert.equal(d('from:\r\n\t<carol@example.net>'), 'example.net');
  assert.equal(d('From: a@one.test, b@two.test'), undefined, 'two authors: no single domain');
  assert.equal(d('Sender: a@x.test'), undefined, 'no From:');
});
