/*
 * The Obtuse rules file wired into the running daemon (the real `smtpd`
 * binary), with clients bound to 127.0.0.x source addresses:
 *
 *  - the seed-001 listing style configuration, adapted to loopback:
 *    127.0.0.1 is the internal network, 127.0.0.9 the mail hub, 127.0.0.2
 *    an outsider (noto when relaying), 127.0.0.3 and 127.0.3.0/24 the
 *    spammer's network (deny, with a %I message);
 *  - KNOWN / UNKNOWN, and OpenSMTPD's `from rdns`, with PTR and A records
 *    served by a real DNS server on loopback (`resolver "127.0.0.1:PORT"`).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicConfig, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';

const SEED001 = `# smtpd_check_rules in the style of seed 001's listing, on loopback:
#   internal network 127.0.0.1 (10.0.0.0/8 in the article), mail hub 127.0.0.9 (10.0.0.9),
#   our domain test.example, a spammer at 127.0.0.3 and on 127.0.3.0/24.
deny:127.0.0.3 127.0.3.0/24:ALL:ALL:550 Mail from %I refused; your network is a known source of spam
allow:127.0.0.9:ALL:ALL
allow:127.0.0.1:ALL:ALL
allow:ALL:ALL:*@test.example *@*.test.example postmaster
noto:ALL:ALL:ALL:550 Relaying to %T denied to %H (%I)
`;

const SMTPD_CONF = `# the seed-001 setup
queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
resolver "RESOLVER"
resolver timeout 2s
rules "$DIR/smtpd_check_rules"
action "local" mbox
action "relay" relay
match from any for domain "test.example" action "local"
match from any for local action "local"
match from src 127.0.0.9 for any action "relay"
match from local for any action "relay"
`;

let dns: DnsServerHandle;
let d: DaemonHandle;
let dir: string;

before(async () => {
  dns = await startDnsServer({
    '2.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'client2.outside.example' }],
    'client2.outside.example': [{ type: 'A', address: '127.0.0.2' }],
    // 127.0.0.3 claims a name that does not point back to it: not forward-confirmed.
    '3.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'liar.outside.example' }],
    'liar.outside.example': [{ type: 'A', address: '192.0.2.99' }],
    '9.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'hub.test.example' }],
    'hub.test.example': [{ type: 'A', address: '127.0.0.9' }],
  });
  dir = tempDir('postern-obtuse-');
  writeFileSync(join(dir, 'smtpd_check_rules'), SEED001);
  d = await startDaemon(SMTPD_CONF.replace('RESOLVER', dns.server), { dir });
});

after(async () => {
  d.cleanup();
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

async function from(address: string, script: string, port = d.port): Promise<Awaited<ReturnType<typeof dialogue>>> {
  const c = await RawClient.open(port, '127.0.0.1', address);
  try {
    return await dialogue(c, script);
  } finally {
    c.close();
  }
}

test('seed 001: the internal network may relay anywhere', async () => {
  await from('127.0.0.1', 'S: 220\nC: EHLO inside.test.example\nS: 250\nC: MAIL FROM:<staff@test.example>\nS: 250\nC: RCPT TO:<friend@elsewhere.example>\nS: 250 2.1.5\nC: QUIT\nS: 221');
});

test('seed 001: the mail hub may relay anywhere', async () => {
  await from('127.0.0.9', 'S: 220\nC: EHLO hub.test.example\nS: 250\nC: MAIL FROM:<list@test.example>\nS: 250\nC: RCPT TO:<member@elsewhere.example>\nS: 250 2.1.5\nC: QUIT\nS: 221');
});

test('seed 001: an outsider reaches our domain and postmaster, relaying is refused (noto) and the session goes on', async () => {
  const got = await from(
    '127.0.0.2',
    `S: 220
C: EHLO client2.outside.example
S: 250
C: MAIL FROM:<someone@outside.example>
S: 250
C: RCPT TO:<victim@elsewhere.example>
S: 550 5.7.1
C: RCPT TO:<root@test.example>
S: 250 2.1.5
C: RCPT TO:<postmaster>
S: 250 2.1.5
C: DATA
S: 354
C: Subject: hello
C:
C: from outside
C: .
S: 250 2.0.0
C: QUIT
S: 221`,
  );
  // %T and %H (the forward-confirmed name served by the DNS server) and %I in the rule's message.
  assert.equal(got[3]?.text, '550 5.7.1 Relaying to <victim@elsewhere.example> denied to client2.outside.example (127.0.0.2)');
});

test('seed 001: the spammer\'s network is denied with its address (%I), and the session is closed', async () => {
  for (const a of ['127.0.0.3', '127.0.3.7']) {
    const got = await from(a, 'S: 220\nC: EHLO spam.example\nS: 250\nC: MAIL FROM:<offer@spam.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 550\nCLOSED');
    assert.equal(got[3]?.text, `550 5.7.1 Mail from ${a} refused; your network is a known source of spam`);
  }
  await d.waitForLog(/smtp rejected .*reason=".*smtpd_check_rules:4: deny offer@spam\.example -> root@test\.example from 127\.0\.0\.3"/);
});

test('seed 001: what was accepted is in the queue, what was refused is not', async () => {
  await d.waitForLog(/smtp envelope .*from=<someone@outside\.example> to=<root@test\.example>/);
  assert.ok(!d.logs.some((l) => /smtp envelope .*to=<victim@elsewhere\.example>/.test(l)));
  assert.ok(!d.logs.some((l) => /smtp envelope .*from=<offer@spam\.example>/.test(l)));
});

/* -------------------------------------------------- KNOWN / UNKNOWN, rdns */

test('KNOWN and UNKNOWN come from forward-confirmed reverse DNS, served by a DNS server on loopback', async () => {
  const kdir = tempDir('postern-known-');
  writeFileSync(join(kdir, 'smtpd_check_rules'), 'noto:UNKNOWN:ALL:ALL:550 5.7.25 %I has no confirmed host name (%H)\nallow:KNOWN:ALL:ALL\n');
  const k = await startDaemon(SMTPD_CONF.replace('RESOLVER', dns.server), { dir: kdir });
  try {
    const rcpt = 'S: 220\nC: EHLO x.example\nS: 250\nC: MAIL FROM:<a@outside.example>\nS: 250\nC: RCPT TO:<root@test.example>\n';
    await from('127.0.0.2', `${rcpt}S: 250 2.1.5\nC: QUIT\nS: 221`, k.port);
    // 127.0.0.3's PTR name does not resolve back to it; 127.0.0.4 has no PTR at all.
    const liar = await from('127.0.0.3', `${rcpt}S: 550\nC: QUIT\nS: 221`, k.port);
    assert.equal(liar[3]?.text, '550 5.7.25 127.0.0.3 has no confirmed host name (UNKNOWN)');
    const none = await from('127.0.0.4', `${rcpt}S: 550\nC: QUIT\nS: 221`, k.port);
    assert.equal(none[3]?.text, '550 5.7.25 127.0.0.4 has no confirmed host name (UNKNOWN)');
    assert.ok(dns.queries().includes('PTR 3.0.0.127.in-addr.arpa'), dns.queries().join(', '));
    await k.waitForLog(/smtp connected .*address=127\.0\.0\.2 host=client2\.outside\.example/);
  } finally {
    k.cleanup();
    rmSync(kdir, { recursive: true, force: true });
  }
});

test('OpenSMTPD `from rdns` (and `from rdns <table>`) sees the same forward-confirmed name', async () => {
  const rdir = tempDir('postern-rdns-');
  const conf = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
resolver "${dns.server}"
resolver timeout 2s
table hubs { "hub.test.example" }
action "local" mbox
action "relay" relay
match from rdns <hubs> for any action "relay"
match from rdns for domain "test.example" action "local"
`;
  const r = await startDaemon(conf, { dir: rdir });
  try {
    const to = (rcpt: string, want: string): string => `S: 220\nC: EHLO x.example\nS: 250\nC: MAIL FROM:<a@outside.example>\nS: 250\nC: RCPT TO:<${rcpt}>\nS: ${want}\nC: QUIT\nS: 221`;
    await from('127.0.0.2', to('root@test.example', '250'), r.port);
    await from('127.0.0.2', to('x@elsewhere.example', '550 5.7.1'), r.port);
    await from('127.0.0.9', to('x@elsewhere.example', '250'), r.port);
    await from('127.0.0.3', to('root@test.example', '550 5.7.1'), r.port);
  } finally {
    r.cleanup();
    rmSync(rdir, { recursive: true, force: true });
  }
});

test('more rule forms end to end: host globs on the confirmed name, EXCEPT, sender globs, %F %T %U %H %C %%', async () => {
  const fdir = tempDir('postern-forms-');
  writeFileSync(
    join(fdir, 'smtpd_check_rules'),
    `noto:ALL:ALL:*@except.test.example EXCEPT root@except.test.example:550 %F may not write to %T (%U@%H)
allow:*.outside.example:ALL:ALL
noto:ALL:*spam*:ALL:550 5.7.1 100%% sure that %F is spam%C go away
allow:ALL:ALL:ALL
`,
  );
  const conf = SMTPD_CONF.replace('RESOLVER', dns.server).replace('match from any for local', 'match from any for domain "except.test.example" action "local"\nmatch from any for local');
  const f = await startDaemon(conf, { dir: fdir });
  try {
    const got = await from(
      '127.0.0.2',
      `S: 220
C: EHLO client2.outside.example
S: 250
C: MAIL FROM:<spammer@outside.example>
S: 250
C: RCPT TO:<x@except.test.example>
S: 550
C: RCPT TO:<root@except.test.example>
S: 250
C: QUIT
S: 221`,
      f.port,
    );
    assert.equal(got[3]?.text, '550 5.7.1 <spammer@outside.example> may not write to <x@except.test.example> (UNKNOWN@client2.outside.example)');
    // 127.0.0.4 has no host name: the host glob does not match it, the sender glob does.
    const spam = await from('127.0.0.4', 'S: 220\nC: EHLO x\nS: 250\nC: MAIL FROM:<spammer@outside.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 550\nC: QUIT\nS: 221', f.port);
    assert.equal(spam[3]?.text, '550 5.7.1 100% sure that <spammer@outside.example> is spam: go away');
    await from('127.0.0.4', 'S: 220\nC: EHLO x\nS: 250\nC: MAIL FROM:<friend@outside.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: QUIT\nS: 221', f.port);
  } finally {
    f.cleanup();
    rmSync(fdir, { recursive: true, force: true });
  }
});
