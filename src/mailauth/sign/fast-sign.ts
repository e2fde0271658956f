/*
 * mailauth/sign/fast-sign.ts — DKIM-Signature fields made without
 * mailauth's signer, for the common message: relaxed/relaxed (RFC 6376
 * §3.4.2, §3.4.4), rsa-sha256 or ed25519-sha256 (RFC 8463: the key signs
 * the SHA-256 of the header data), the fields mailauth signs by default
 * (every instance present, from the bottom up, as it does), t= now. Beside
 * the ~0.3 ms of the RSA-2048 signature itself, mailauth's signer spent
 * about as much again on its streams and formatting per 1 KB message
 * (docs/architecture.md "Mail authentication").
 *
 * A message of plain CRLF lines with a header section only (dkim-canon.ts),
 * and ASCII domain and selector; anything else answers undefined and
 * mailauth signs it (sign-core.ts). Private keys are parsed once per PEM.
 * The signatures verify at mailauth, dkimpy and OpenDKIM
 * (test/unit/mailauth-fast-sign, e2e/mailauth-sign).
 */
import crypto, { type KeyObject } from 'node:crypto';
import { signAsync } from '../async-crypto.js';
import { canonBody, canonField, messageParts, type Field } from '../dkim-canon.js';
import type { SigningKey } from './keys.js';

/** mailauth's default list of signed fields (lib/tools.js defaultDKIMFieldNames), lower case. */
const SIGNED = new Set(
  [
    'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Content-ID', 'Content-Description',
    'Resent-Date', 'Resent-From', 'Resent-Sender', 'Resent-To', 'Resent-Cc', 'Resent-Message-ID', 'In-Reply-To', 'References',
    'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive', 'BIMI-Selector',
  ].map((n) => n.toLowerCase()),
);
const NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/i;
const MAX_KEYS = 100;

const privateKeys = new Map<string, KeyObject>();

function privateKey(pem: string): KeyObject {
  let k = privateKeys.get(pem);
  if (k === undefined) {
    k = crypto.createPrivateKey(pem);
    if (privateKeys.size >= MAX_KEYS) privateKeys.delete(privateKeys.keys().next().value as string);
    privateKeys.set(pem, k);
  }
  return k;
}

/**
 * The DKIM-Signature fields (each with CRLF) for `msg`, one per key, or
 * undefined to leave it to mailauth. The signatures are made on libuv's
 * thread pool (async-crypto.ts); a failed one rejects.
 */
export async function fastSign(msg: Buffer, keys: readonly SigningKey[], now = Date.now()): Promise<string | undefined> {
  const parts = messageParts(msg);
  if (parts === undefined || keys.some((k) => !NAME.test(k.domain) || !NAME.test(k.selector))) return undefined;
  const signed: Field[] = [];
  for (let i = parts.fields.length - 1; i >= 0; i--) {
    const f = parts.fields[i] as Field;
    if (SIGNED.has(f.name)) signed.push(f);
  }
  if (!signed.some((f) => f.name === 'from')) return undefined;
  const h = signed.map((f) => f.raw.slice(0, f.raw.indexOf(':'))).join(': ');
  const data = signed.map((f) => `${canonField(f.raw, 'relaxed')}\r\n`).join('');
  const bh = crypto.createHash('sha256').update(canonBody(parts.body, 'relaxed'), 'latin1').digest('base64');
  const t = Math.floor(now / 1000);
  const fields = keys.map(async (k) => {
    const head = `DKIM-Signature: v=1; a=${k.algorithm}; c=relaxed/relaxed; d=${k.domain}; h=${h}; q=dns/txt; s=${k.selector}; t=${t}; bh=${bh}; b=`;
    const input = Buffer.from(data + canonField(head, 'relaxed'), 'latin1');
    const key = privateKey(k.pem);
    const b = (await signAsync(k.algorithm, input, key)).toString('base64');
    return `${fold(head)}\r\n ${wrap(b)}\r\n`;
  });
  return (await Promise.all(fields)).join('');
}

/** The b= value in lines of 72 characters (a loop of slices: the lookahead regex it replaces cost ~5 µs a signature). */
function wrap(b: string): string {
  let out = b.slice(0, 72);
  for (let i = 72; i < b.length; i += 72) out += `\r\n ${b.slice(i, i + 72)}`;
  return out;
}

/** The field folded at its spaces into lines of at most 78 characters (relaxed canonicalization reads it as before). */
function fold(head: string): string {
  let out = '';
  let line = '';
  for (const word of head.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > 76) {
      out += `${line}\r\n`;
      line = ` ${word}`;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return `${out}${line}`;
}
