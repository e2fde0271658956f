/*
 * bench/mailauth-env.ts — what the mail-authentication scenarios
 * (`auth-plain`, `auth-verify`, `auth-sign`: bench/scenarios.ts) share across servers:
 * one RSA-2048 DKIM key, a real authoritative DNS server on loopback (nsd,
 * test/helpers/nsd.ts) publishing the sender domain's SPF, DKIM and DMARC
 * records, and — for verification — one message signed with that key, the
 * one the load generator sends (`load.js --message-file`).
 *
 * nsd listens on port 53 of an address of its own (127.0.0.53 is systemd's;
 * this is 127.0.0.153 unless POSTERN_BENCH_DNS says otherwise), because
 * OpenDKIM's `Nameservers` takes addresses only, no port. Postern is
 * pointed at the same server (`resolver`), so both look up the same records
 * over the same loopback.
 *
 * The load connects from AUTH_SOURCE (127.0.0.20, or POSTERN_BENCH_AUTH_SOURCE),
 * not 127.0.0.1: mail from an address of the host is `from local`, which
 * Postern does not verify (nor does OpenDKIM from its InternalHosts). The
 * SPF record permits that address.
 *
 * nsd also serves BENCH_DOMAIN's parent (`test`) as an empty zone: DMARC's
 * tree walk (RFC 9989 §4.10) asks for `_dmarc.test` too, and a name outside
 * every zone of nsd's is REFUSED — a failure no resolver in production gives
 * (a recursive one answers NXDOMAIN), which Postern rightly does not cache,
 * so every message asked again (1 query a message, 3 % of Postern's CPU in
 * the auth-verify profile of 2026-12-07 19:19).
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNsd, type NsdHandle } from '../test/helpers/nsd.js';
import { signMessage } from '../src/mailauth/sign/sign-core.js';
import { buildMessage, LOAD_DEFAULTS } from './load.js';
import { BENCH_DOMAIN } from './servers/server.js';

export type AuthWork = 'verify' | 'sign';

/** The domain of the load's sender (and From:), whose records nsd serves. */
export const AUTH_DOMAIN = LOAD_DEFAULTS.sender.split('@')[1] as string;
export const AUTH_SELECTOR = 'bench2026';
export const AUTH_SOURCE = process.env.POSTERN_BENCH_AUTH_SOURCE ?? '127.0.0.20';

export interface AuthEnv {
  /** nsd's address (port 53). */
  readonly dnsAddress: string;
  /** "ADDRESS:53", for Postern's `resolver`. */
  readonly resolver: string;
  /** The private key (PKCS#8 PEM, readable by _postern and OpenDKIM). */
  readonly keyFile: string;
  /** The message of the verify scenario, signed, with its final dot. */
  readonly signedMessageFile: string;
  close(): Promise<void>;
}

/** Every server in one scenario uses the same environment; it is made once per run. */
let shared: Promise<AuthEnv> | undefined;

/** `folder` makes the environment's folder, once (removed by closeAuthEnv). */
export function authEnv(folder: () => string, size: number): Promise<AuthEnv> {
  shared ??= makeAuthEnv(folder(), size).catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

export async function closeAuthEnv(): Promise<void> {
  const e = shared;
  shared = undefined;
  if (e) await (await e).close();
}

async function makeAuthEnv(dir: string, size: number): Promise<AuthEnv> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keyFile = join(dir, `${AUTH_SELECTOR}.pem`);
  writeFileSync(keyFile, pem, { mode: 0o644 });
  const p = pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const relative = AUTH_DOMAIN.endsWith(`.${BENCH_DOMAIN}`) ? AUTH_DOMAIN.slice(0, -BENCH_DOMAIN.length - 1) : '@';
  const chunks = `v=DKIM1; k=rsa; p=${p}`.match(/.{1,200}/g) ?? [];
  const dnsAddress = process.env.POSTERN_BENCH_DNS ?? '127.0.0.153';
  const reverseZone = `${AUTH_SOURCE.split('.').slice(0, 3).reverse().join('.')}.in-addr.arpa`;
  const dns: NsdHandle = await startNsd({
    address: dnsAddress,
    port: 53,
    zones: {
      [BENCH_DOMAIN]: [
        `${relative} TXT "v=spf1 ip4:${AUTH_SOURCE} -all"`,
        `${AUTH_SELECTOR}._domainkey.${relative} TXT ${chunks.map((c) => `"${c}"`).join(' ')}`,
        `_dmarc.${relative} TXT "v=DMARC1; p=reject"`,
        `load A ${AUTH_SOURCE}`,
      ],
      [BENCH_DOMAIN.slice(BENCH_DOMAIN.indexOf('.') + 1)]: [],
      [reverseZone]: [`${AUTH_SOURCE.split('.')[3]} PTR load.${BENCH_DOMAIN}.`],
    },
  });
  const key = { domain: AUTH_DOMAIN, selector: AUTH_SELECTOR, algorithm: 'rsa-sha256' as const, pem };
  const plain = buildMessage(size, { sender: LOAD_DEFAULTS.sender, rcpt: `rcpt0@${BENCH_DOMAIN}` });
  const content = plain.subarray(0, plain.length - 3); // without ".\r\n"
  const signed = await signMessage(content, [key]);
  if ('error' in signed) throw new Error(`signing the verify scenario's message: ${signed.error}`);
  const signedMessageFile = join(dir, 'signed.eml');
  writeFileSync(signedMessageFile, Buffer.concat([Buffer.from(signed.header, 'latin1'), content, Buffer.from('.\r\n')]));
  return { dnsAddress, resolver: dns.server, keyFile, signedMessageFile, close: async () => {
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    } };
}
