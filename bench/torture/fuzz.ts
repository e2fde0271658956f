/*
 * bench/torture/fuzz.ts — a mutation fuzzer of whole SMTP dialogues.
 *
 * Seeds are honest exchanges (EHLO/MAIL/RCPT/DATA, BDAT, AUTH, STARTTLS,
 * the small commands); each case takes one, mutates it a few times (drop,
 * repeat or swap lines, splice in a line of another seed, flip or insert
 * bytes, NUL, bare CR or LF, an over-long line, a wrong BDAT size, a cut),
 * sends it in random pieces and reads until the server closes or a short
 * wait passes. A seeded PRNG makes a run repeatable (`--seed N`). What
 * counts as a failure is judged by the caller: the daemon exiting, a fault
 * in its log, a fresh client not greeted, sockets left behind.
 */
import type { Socket } from 'node:net';
import { tcp } from '../../test/helpers/sockets.js';
import { prng } from '../../test/helpers/prng.js';


const SEEDS: readonly (readonly string[])[] = [
  ['EHLO fuzz.test', 'MAIL FROM:<a@fuzz.test>', 'RCPT TO:<torture@torture.example>', 'DATA', 'Subject: fuzz', '', 'body', '.', 'QUIT'],
  ['EHLO fuzz.test', 'MAIL FROM:<a@fuzz.test> BODY=8BITMIME SIZE=20', 'RCPT TO:<torture@torture.example>', 'BDAT 12 LAST\r\nSubject: x\r\n', 'QUIT'],
  ['EHLO fuzz.test', 'MAIL FROM:<a@fuzz.test>', 'RCPT TO:<torture@torture.example>', 'BDAT 5\r\nab\r\nc', 'BDAT 0 LAST', 'QUIT'],
  ['EHLO fuzz.test', 'AUTH PLAIN AGFsaWNlAHNlY3JldA==', 'AUTH LOGIN', 'YWxpY2U=', 'c2VjcmV0', 'AUTH CRAM-MD5', '*', 'QUIT'],
  ['EHLO fuzz.test', 'STARTTLS', '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00', 'EHLO again'],
  ['HELO fuzz.test', 'VRFY root', 'EXPN staff', 'HELP', 'NOOP', 'RSET', 'ETRN torture.example', 'QUIT'],
  ['EHLO fuzz.test', 'MAIL FROM:<> RET=HDRS ENVID=x+2By', 'RCPT TO:<torture@torture.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;torture@torture.example', 'DATA', '..leading dot', '.', 'QUIT'],
];

export function mutate(rand: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const lines = [...pick(SEEDS)];
  const n = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(rand() * lines.length);
    const l = lines[i] ?? '';
    switch (Math.floor(rand() * 11)) {
      case 0: lines.splice(i, 1); break;
      case 1: lines.splice(i, 0, l); break;
      case 2: lines.splice(i, 0, pick(pick(SEEDS))); break;
      case 3: { const j = Math.floor(rand() * lines.length); lines[i] = lines[j] ?? ''; lines[j] = l; break; }
      case 4: { const p = Math.floor(rand() * (l.length + 1)); lines[i] = l.slice(0, p) + String.fromCharCode(Math.floor(rand() * 256)) + l.slice(p); break; }
      case 5: lines[i] = l + pick(['\0', '\r', '\n', '\r\n.\r\n', '\n.\n', '\xff\xfe']); break;
      case 6: lines[i] = l + 'A'.repeat(pick([500, 1000, 13000])); break;
      case 7: lines[i] = l.replace(/\d+/, String(pick([0, 1, 99999999999, -1, 4294967296]))); break;
      case 8: lines[i] = l.toLowerCase(); break;
      case 9: lines.length = i; break;
      default: lines[i] = l.replace(/[<>:]/, ''); break;
    }
  }
  const eol = rand() < 0.9 ? '\r\n' : pick(['\n', '\r']);
  return Buffer.from(lines.join(eol) + eol, 'latin1');
}

/** Send one case in random pieces; wait until the server closes or `waitMs` passes; then hang up. */
export async function runCase(port: number, from: string, bytes: Buffer, rand: () => number, waitMs: number): Promise<void> {
  let s: Socket;
  try {
    s = await tcp(port, from);
  } catch {
    return;
  }
  s.on('error', () => undefined);
  s.on('data', () => undefined);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  let at = 0;
  while (at < bytes.length && !s.destroyed) {
    const n = 1 + Math.floor(rand() * 200);
    s.write(bytes.subarray(at, at + n));
    at += n;
    if (rand() < 0.2) await new Promise((r) => setTimeout(r, Math.floor(rand() * 20)));
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, waitMs))]);
  if (rand() < 0.5) s.end();
  else s.destroy();
}
