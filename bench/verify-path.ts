/*
 * bench/verify-path.ts — CPU per message of the whole inbound check as the
 * daemon's event loop runs it on a small machine (verifier.ts → check.ts →
 * engine.ts, inline), DNS answered from memory: `node
 * dist/bench/verify-path.js [messages] [plain|rsa|ed|both]`. Add
 * --cpu-prof to node for a profile. Temporary measuring tool.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { MailAuthResolver } from '../src/mailauth/lib.js';
import { cachingResolver } from '../src/mailauth/dns.js';
import { TtlCache } from '../src/dns/ttl-cache.js';
import { signMessage } from '../src/mailauth/sign/sign-core.js';
import { InboundVerifier } from '../src/mailauth/verify/verifier.js';
import type { SigningKey } from '../src/mailauth/sign/keys.js';

const N = Number(process.argv[2] ?? 2000);
const kind = process.argv[3] ?? 'rsa';

const r = generateKeyPairSync('rsa', { modulusLength: 2048 });
const e = generateKeyPairSync('ed25519');
const records = new Map<string, string>([
  ['rsa._domainkey.bench.test', `v=DKIM1; k=rsa; p=${r.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`],
  ['ed._domainkey.bench.test', `v=DKIM1; k=ed25519; p=${Buffer.from(e.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url').toString('base64')}`],
  ['bench.test', 'v=spf1 ip4:192.0.2.0/24 -all'],
  ['_dmarc.bench.test', 'v=DMARC1; p=reject'],
]);
const rsa: SigningKey = { domain: 'bench.test', selector: 'rsa', algorithm: 'rsa-sha256', pem: r.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
const ed: SigningKey = { domain: 'bench.test', selector: 'ed', algorithm: 'ed25519-sha256', pem: e.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
// The daemon's TTL cache (dns/ttl-cache.ts), its questions answered from memory: TXT records, NXDOMAIN otherwise.
const cache = new TtlCache(async (name, type) => {
  const v = type === 'TXT' ? records.get(name) : undefined;
  const soa = { type: 'SOA', name: 'test', ttl: 300, data: { minimum: 300 } } as never;
  return v === undefined ? { kind: 'answer', rcode: 'NXDOMAIN', ad: false, answers: [], authorities: [soa] } : { kind: 'answer', rcode: 'NOERROR', ad: false, answers: [{ type: 'TXT', name, ttl: 300, data: [Buffer.from(v)] } as never], authorities: [] };
});
const resolver: MailAuthResolver = process.env.NO_MEMO ? (n, t) => cache.resolve(n, t) : cachingResolver(cache);
const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
const msg = Buffer.from(`Received: from load (load [192.0.2.1]) by mx.test; Mon, 07 Dec 2026 12:00:00 +0000\r\nFrom: A <a@bench.test>\r\nTo: b@example.org\r\nSubject: bench\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x@bench.test>\r\n\r\n${line.repeat(12)}`, 'latin1');
const keys = kind === 'rsa' ? [rsa] : kind === 'ed' ? [ed] : kind === 'both' ? [rsa, ed] : [];
const signed = keys.length > 0 ? Buffer.concat([Buffer.from(((await signMessage(msg, keys)) as { header: string }).header, 'latin1'), msg]) : msg;
const v = new InboundVerifier({ minKeyBits: 1024 } as never, resolver, 'mx.test', () => false);
const facts = { clientAddress: '192.0.2.1', fromSocket: false, helo: 'load.bench.test', sender: 'a@bench.test' };

async function one(): Promise<string> {
  await v.spfAtMail(facts);
  const c = v.begin(facts);
  c.push(signed);
  const o = await c.finish();
  let head = '';
  for await (const b of o.release) { head = b.toString('latin1'); break; }
  return head;
}
console.log((await one()).trim());
for (let i = 0; i < 200; i++) await one();
/** CPU time of the main thread alone, in µs (Linux: its /proc task's utime + stime, in clock ticks of 10 ms). */
function mainThreadUs(): number {
  const f = readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, 'latin1');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10_000;
}
const cpu0 = process.cpuUsage();
const main0 = mainThreadUs();
const t0 = performance.now();
for (let i = 0; i < N; i++) await one();
const cpu = process.cpuUsage(cpu0);
// The main thread's own share (the crypto runs on libuv's thread pool: async-crypto.ts).
const main = mainThreadUs() - main0;
console.log(`${kind}: ${((cpu.user + cpu.system) / N).toFixed(1)} µs CPU/msg, main thread ${(main / N).toFixed(1)} µs/msg, wall ${((performance.now() - t0) * 1000 / N).toFixed(1)} µs/msg (${signed.length} bytes)`);
