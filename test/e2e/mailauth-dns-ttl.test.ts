/*
 * DNS answers are kept as long as their TTL says (dns/ttl-cache.ts), against
 * a real nsd on loopback: records with a 5-second TTL (the cache's floor)
 * change while Postern runs, and Postern sees each change once the TTL has
 * run out, not before: an SPF record (`mailauth verify spf-reject`: pass,
 * then 550 at MAIL), the sender domain's MX (a null MX: 550 5.7.27), and a
 * name that did not exist (kept by the SOA's MINIMUM of 5 s, RFC 2308).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { basicConfig, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient } from '../helpers/smtp-client.js';

const IP = '127.0.23.30';
const TTL_S = 5;
let dns: NsdHandle;
let d: DaemonHandle;

/** The zone ttl.test with a SOA MINIMUM of 5 s, the given records after it. */
function zone(records: readonly string[]): string {
  return [
    '$ORIGIN ttl.test.',
    '$TTL 300',
    '@ IN SOA ns.ttl.test. hostmaster.ttl.test. ( 1 3600 600 86400 5 )',
    '@ IN NS ns.ttl.test.',
    'ns IN A 127.0.0.1',
    `client IN A ${IP}`,
    `mx ${TTL_S} IN MX 10 mx1.ttl.test.`,
    'mx1 IN A 127.0.23.2',
    ...records,
    '',
  ].join('\n');
}

const BEFORE = zone([`spf ${TTL_S} IN TXT "v=spf1 ip4:${IP} -all"`, `mx ${TTL_S} IN MX 20 mx2.ttl.test.`]);
const AFTER = zone([`spf ${TTL_S} IN TXT "v=spf1 ip4:127.0.23.99 -all"`, `new ${TTL_S} IN TXT "v=spf1 -all"`]).replace(/^mx .*MX 10 .*$/m, `mx ${TTL_S} IN MX 0 .`);

before(async () => {
  dns = await startNsd({ address: '127.0.23.53', zones: { 'ttl.test': BEFORE } });
  d = await startDaemon(basicConfig(`resolver "${dns.server}"\nmailauth verify spf-reject`));
});

after(async () => {
  await d?.stop();
  d?.cleanup();
  await dns?.close();
});

/** The reply to MAIL FROM:<sender> from IP, as "CODE text". */
async function mailFrom(sender: string): Promise<string> {
  const c = await RawClient.open(d.port, '127.0.0.1', IP);
  try {
    await c.reply();
    c.send('EHLO client.ttl.test\r\n');
    await c.reply();
    c.send(`MAIL FROM:<${sender}>\r\n`);
    const r = await c.reply(20_000);
    c.send('QUIT\r\n');
    return r.text.startsWith(`${r.code}`) ? r.text : `${r.code} ${r.text}`;
  } finally {
    c.close();
  }
}

test('records with a short TTL change: Postern keeps the old answers for the TTL, then sees the new ones', async (t) => {
  const t0 = Date.now();
  assert.match(await mailFrom('a@spf.ttl.test'), /^250 /, 'SPF pass');
  assert.match(await mailFrom('a@mx.ttl.test'), /^250 /, 'a real MX');
  assert.match(await mailFrom('a@new.ttl.test'), /^250 /, 'no such name: SPF none');
  const t1 = Date.now(); // every answer was asked for after t0 and before t1

  await dns.setZones({ 'ttl.test': AFTER });
  // nsd now serves the new records; within the TTL Postern still answers from its cache (each checked only while surely within it, on a busy machine).
  const within = (): boolean => Date.now() - t0 < (TTL_S - 1.5) * 1000;
  if (within()) assert.match(await mailFrom('a@spf.ttl.test'), /^250 /, 'the old SPF record, cached');
  if (within()) assert.match(await mailFrom('a@mx.ttl.test'), /^250 /, 'the old MX, cached');
  if (within()) assert.match(await mailFrom('a@new.ttl.test'), /^250 /, 'the NXDOMAIN, cached');
  t.diagnostic(within() ? 'the cached answers were checked within the TTL' : 'the nsd restart was too slow to check the cached answers');

  await sleep(Math.max(0, t1 + TTL_S * 1000 + 500 - Date.now()));
  assert.match(await mailFrom('a@spf.ttl.test'), /^550 5\.7\.23 /, 'the new SPF record after its TTL');
  assert.match(await mailFrom('a@mx.ttl.test'), /^550 5\.7\.27 /, 'the null MX after its TTL');
  assert.match(await mailFrom('a@new.ttl.test'), /^550 5\.7\.23 /, 'the new name after the SOA minimum');
});
