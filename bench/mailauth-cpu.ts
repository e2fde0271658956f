/*
 * bench/mailauth-cpu.ts — what mail authentication costs the event loop,
 * per message: `node dist/bench/mailauth-cpu.js [messages]`.
 *
 * Measured with process.cpuUsage() of the main thread's process (the
 * worker threads' CPU counts there too, so the worker figures are also
 * taken as event-loop time: the main thread's busy time, through
 * performance.eventLoopUtilization()):
 *   - DKIM verification (mailauth's streaming verifier, RSA-2048 and
 *     Ed25519 signatures, keys served from memory: no DNS time);
 *   - DKIM signing on the calling thread (RSA-2048, Ed25519, both);
 *   - DKIM signing through the worker pool (sign-pool.ts): event-loop time;
 *   - the parts of one inbound check (RSA-signed 1 KB message, DNS answered
 *     from memory): SPF alone, DKIM alone, and the whole engine (DKIM, ARC,
 *     DMARC with its public-suffix lookup) — where verification's CPU goes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DkimVerifier, spf, type MailAuthResolver } from '../src/mailauth/lib.js';
import { InlineEngine } from '../src/mailauth/verify/engine.js';
import { signMessage } from '../src/mailauth/sign/sign-core.js';
import { SignPool } from '../src/mailauth/sign/sign-pool.js';
import { VerifyPool } from '../src/mailauth/verify/verify-pool.js';
import type { SigningKey } from '../src/mailauth/sign/keys.js';

const N = Number(process.argv[2] ?? 500);

function keys(): { rsa: SigningKey; ed: SigningKey; records: Map<string, string> } {
  const r = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const e = generateKeyPairSync('ed25519');
  const records = new Map<string, string>([
    ['rsa._domainkey.bench.test', `v=DKIM1; k=rsa; p=${r.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`],
    ['ed._domainkey.bench.test', `v=DKIM1; k=ed25519; p=${Buffer.from(e.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url').toString('base64')}`],
  ]);
  return {
    rsa: { domain: 'bench.test', selector: 'rsa', algorithm: 'rsa-sha256', pem: r.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    ed: { domain: 'bench.test', selector: 'ed', algorithm: 'ed25519-sha256', pem: e.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    records,
  };
}

function message(bytes: number): Buffer {
  const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
  const body = line.repeat(Math.max(1, Math.ceil(bytes / line.length)));
  return Buffer.from(`From: A <a@bench.test>\r\nTo: b@example.org\r\nSubject: bench\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x@bench.test>\r\n\r\n${body}`, 'latin1');
}

async function measure(name: string, n: number, fn: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 20; i++) await fn();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const perMsgCpu = (cpu.user + cpu.system) / 1000 / n;
  const perMsgLoop = elu.active / n;
  console.log(`${name.padEnd(44)} cpu ${perMsgCpu.toFixed(3)} ms/msg   event loop busy ${perMsgLoop.toFixed(3)} ms/msg   wall ${(wall / n).toFixed(3)} ms/msg`);
}

/** A step that runs `width` jobs at once every `width`-th call and nothing otherwise, so that per-call figures are per message. */
function batched(width: number, job: () => Promise<unknown>): () => Promise<void> {
  let calls = 0;
  return async () => {
    if (calls++ % width !== 0) return;
    await Promise.all(Array.from({ length: width }, job));
  };
}

async function main(): Promise<void> {
  const k = keys();
  const records = k.records;
  const resolver: MailAuthResolver = async (name) => {
    const r = records.get(name);
    if (r === undefined) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    return [[r]];
  };
  records.set('bench.test', 'v=spf1 ip4:192.0.2.0/24 -all');
  records.set('_dmarc.bench.test', 'v=DMARC1; p=reject');
  const one = message(1_000);
  const rsaSigned = Buffer.concat([Buffer.from(((await signMessage(one, [k.rsa])) as { header: string }).header, 'latin1'), one]);
  await measure('check part: SPF (one TXT, cached)', N, async () => void (await spf({ ip: '192.0.2.1', sender: 'a@bench.test', mta: 'mx.test', resolver: resolver as never, strict: true })));
  await measure('check part: DKIM RSA-2048 alone, 1 KB', N, async () => {
    const v = new DkimVerifier({ resolver, minBitLength: 1024 });
    const done = new Promise((r) => v.once('finish', r));
    v.end(rsaSigned);
    await done;
  });
  await measure('check part: DKIM+ARC+DMARC (engine), 1 KB', N, async () => {
    const e = new InlineEngine({ resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' });
    e.write(rsaSigned);
    await e.results(Promise.resolve(undefined));
  });
  for (const size of [2_000, 100_000]) {
    const msg = message(size);
    const signed = Buffer.concat([Buffer.from(((await signMessage(msg, [k.rsa, k.ed])) as { header: string }).header, 'latin1'), msg]);
    await measure(`verify RSA+Ed25519, ${size / 1000} KB`, N, async () => {
      const v = new DkimVerifier({ resolver, minBitLength: 1024 });
      const done = new Promise((r) => v.once('finish', r));
      for (let i = 0; i < signed.length; i += 16384) v.write(signed.subarray(i, i + 16384));
      v.end();
      await done;
    });
    // In workers: the keys' lookups go to a closed port (refused at once), so the figure is the main thread's hand-off plus the workers' hashing.
    const vpool = new VerifyPool({ servers: ['127.0.0.1:9'], timeoutMs: 500 });
    await measure(`verify in workers, ${size / 1000} KB (32 at once)`, N, batched(32, async () => {
      const e = vpool.engine(1024, '192.0.2.1');
      for (let i = 0; i < signed.length; i += 16384) e.write(signed.subarray(i, i + 16384));
      await e.results(Promise.resolve(undefined));
    }));
    await vpool.close();
    await measure(`sign RSA-2048 inline, ${size / 1000} KB`, N, async () => void (await signMessage(msg, [k.rsa])));
    await measure(`sign Ed25519 inline, ${size / 1000} KB`, N, async () => void (await signMessage(msg, [k.ed])));
    await measure(`sign RSA+Ed25519 inline, ${size / 1000} KB`, N, async () => void (await signMessage(msg, [k.rsa, k.ed])));
    const pool = new SignPool(undefined, 0);
    await measure(`sign RSA+Ed25519 in workers, ${size / 1000} KB (1 at a time)`, N, async () => void (await pool.sign(msg, [k.rsa, k.ed])));
    await measure(`sign RSA+Ed25519 in workers, ${size / 1000} KB (32 at once)`, N, batched(32, () => pool.sign(msg, [k.rsa, k.ed])));
    await pool.close();
  }
}

await main();
