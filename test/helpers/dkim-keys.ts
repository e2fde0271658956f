/*
 * test/helpers/dkim-keys.ts — one RSA-2048 and one Ed25519 DKIM key of
 * example.org (selectors rsa and ed), their records answered by a resolver
 * from memory, and the signing keys: for the unit tests of our signer and
 * verifier (mailauth-fast-sign, mailauth-async-crypto).
 */
import type { MailAuthResolver } from '../../src/mailauth/lib.js';
import type { SigningKey } from '../../src/mailauth/sign/keys.js';
import { ed25519Key, rsaKey } from './dkimpy.js';

export function dkimKeys(): {
  readonly rsa: ReturnType<typeof rsaKey>;
  readonly ed: ReturnType<typeof ed25519Key>;
  readonly records: Record<string, string>;
  readonly resolver: MailAuthResolver;
  readonly rsaK: SigningKey;
  readonly edK: SigningKey;
} {
  const rsa = rsaKey(2048);
  const ed = ed25519Key();
  const records: Record<string, string> = { 'rsa._domainkey.example.org': rsa.record, 'ed._domainkey.example.org': ed.record };
  const resolver: MailAuthResolver = async (name) => {
    const r = records[name.toLowerCase()];
    if (r === undefined) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return [[r]];
  };
  return {
    rsa,
    ed,
    records,
    resolver,
    rsaK: { domain: 'example.org', selector: 'rsa', algorithm: 'rsa-sha256', pem: rsa.pem },
    edK: { domain: 'example.org', selector: 'ed', algorithm: 'ed25519-sha256', pem: ed.pem },
  };
}
