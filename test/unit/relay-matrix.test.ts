/*
 * The open-relay matrix: every probe of nmap's smtp-open-relay script, plus
 * mixed case, trailing dots and unqualified addresses, sent from an
 * untrusted address (127.0.0.2) must be refused; from the trusted address
 * (127.0.0.1, `from src`) the probes whose destination is really elsewhere
 * are relayed and the rest still refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dialogue } from '../helpers/smtp-client.js';
import { startInProcess, type InProc } from '../helpers/inproc.js';

const IP = '127.0.0.1';
const SRV = 'mx.test.example';
const DOM = 'far.example';

/** [MAIL FROM, RCPT TO, relayed from a trusted source?] */
const PROBES: readonly [string, string, boolean][] = [
  ['<>', `<relaytest@${DOM}>`, true],
  [`<antispam@[${IP}]>`, `<relaytest@${DOM}>`, true],
  [`<antispam@${SRV}>`, `<relaytest%${DOM}@[${IP}]>`, false],
  [`<antispam@${SRV}>`, `<relaytest%${DOM}@${SRV}>`, false],
  [`<antispam@${SRV}>`, `<"relaytest@${DOM}">`, false],
  [`<antispam@${SRV}>`, `<"relaytest%${DOM}">`, false],
  [`<antispam@${SRV}>`, `<relaytest@${DOM}@[${IP}]>`, false],
  [`<antispam@${SRV}>`, `<"relaytest@${DOM}"@[${IP}]>`, false],
  [`<antispam@${SRV}>`, `<relaytest@${DOM}@${SRV}>`, false],
  [`<antispam@${SRV}>`, `<@[${IP}]:relaytest@${DOM}>`, true],
  [`<antispam@${SRV}>`, `<@${SRV}:relaytest@${DOM}>`, true],
  [`<antispam@${SRV}>`, `<${DOM}!relaytest>`, false],
  [`<antispam@${SRV}>`, `<${DOM}!relaytest@[${IP}]>`, false],
  [`<antispam@${SRV}>`, `<${DOM}!relaytest@${SRV}>`, false],
  [`<antispam@${SRV}>`, `<relaytest@[192.0.2.1]>`, true],
  [`<antispam@${SRV}>`, `<relaytest>`, false],
  [`<antispam@${SRV}>`, `<relaytest@FAR.Example>`, true],
  [`<antispam@${SRV}>`, `<relaytest@${DOM}.>`, true],
  [`<antispam@${SRV}>`, `<RelayTest@${SRV.toUpperCase()}.>`, false],
];

let srv: InProc;
before(async () => {
  srv = await startInProcess(`queue path "$DIR/spool"
hostname "${SRV}"
listen on 127.0.0.1 port 0
action "local" mbox
action "relay" relay
match from src 127.0.0.1 for any action "relay"
match from any for domain "test.example" action "local"
`);
});
after(async () => srv.close());

async function probe(local: string, from: string, to: string): Promise<number> {
  const c = await srv.client(local);
  try {
    const r = await dialogue(c, `S: 220\nC: EHLO nmap.test\nS: 250\nC: MAIL FROM:${from}\nS: 2\nC: RCPT TO:${to}`);
    void r;
    return (await c.reply()).code;
  } finally {
    c.close();
  }
}

for (const [from, to, relayed] of PROBES) {
  test(`probe MAIL FROM:${from} RCPT TO:${to}`, async () => {
    const untrusted = await probe('127.0.0.2', from, to);
    assert.ok(untrusted >= 500 && untrusted < 600, `untrusted source got ${untrusted}`);
    const trusted = await probe('127.0.0.1', from, to);
    if (relayed) assert.equal(trusted, 250, 'trusted source relays');
    else assert.ok(trusted >= 500, `trusted source: ${to} is not a real destination, got ${trusted}`);
  });
}

test('real local recipients are accepted from anywhere', async () => {
  assert.equal(await probe('127.0.0.2', '<x@far.example>', '<root@test.example>'), 250);
  assert.equal(await probe('127.0.0.2', '<x@far.example>', '<ROOT@Test.Example.>'), 250);
});
