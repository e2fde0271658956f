/*
 * ZMailer's smtp-policy database (PARAM policydb) end to end: ZMailer's
 * "3rd alternate" defaults (MX relay trust, DNS existence checks, RBLs),
 * its private-address and bulk-mail tags, smtp-policy.relay networks and
 * localnames — decided for clients at several addresses (`smtpserver -i
 * -T '[a.b.c.d]'`, the seed's policy test) against a real DNS server on
 * loopback; a freeze holds the message in the daemon's hold queue.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, basicConfig, startDaemon, tempDir } from '../helpers/daemon.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { spoolMessages } from '../helpers/inproc.js';

const POLICY = `# The "3rd alternate" of ZMailer's sample, with a test RBL zone
_default_dot		relaycustomer - acceptifmx - senderokwithdns - = _rbl1
_default_ipaddr		relaycustomer - acceptifmx - senderokwithdns - = _rbl0
.			= _default_dot
[0.0.0.0]/0		= _default_ipaddr
_rbl0			test-dns-rbl rbl.test rcpt-dns-rbl late.test
_rbl1			test-rcpt-dns-rbl +
_private_address	message "We reject your network" rejectnet + relaycustomer - relaytarget -
[192.168.0.0]/16	= _private_address
[192.168.16.0]/23	rejectnet - = _private_address
_full_rights		rejectnet - relaycustnet + relaytarget + = _rbl1
_localnames		rejectnet - relaycustnet - localdomain + relaytarget + = _rbl1
_relaytarget		relaytarget + = _rbl1
_bulk_mail		message "Your address is not liked source for email" rejectsource + message "This is not accepted relay target" relaytarget -
.nobody.example		= _bulk_mail
friend@			= _bulk_mail
frozen.example		freeze +
optout.example		test-rcpt-dns-rbl - relaytarget +
`;

let dns: DnsServerHandle;
let dir: string;
let bin: string;

before(async () => {
  dns = await startDnsServer({
    'good.example': [{ type: 'MX', priority: 10, exchange: 'mx.good.example' }],
    'mx.good.example': [{ type: 'A', address: '192.0.2.25' }],
    'backup.example': [{ type: 'MX', priority: 20, exchange: 'mx.test.example' }],
    'mx.test.example': [{ type: 'A', address: '127.0.0.1' }],
    'elsewhere.example': [{ type: 'MX', priority: 10, exchange: 'mx.good.example' }],
    'optout.example': [{ type: 'MX', priority: 10, exchange: 'mx.good.example' }],
    '9.113.0.203.rbl.test': [{ type: 'A', address: '127.0.0.2' }],
    '10.113.0.203.late.test': [{ type: 'A', address: '127.0.0.2' }],
    'broken.example': 'SERVFAIL',
  });
  dir = tempDir('postern-pdb-');
  mkdirSync(join(dir, 'db'));
  writeFileSync(join(dir, 'db/smtp-policy.src'), POLICY);
  writeFileSync(join(dir, 'db/smtp-policy.relay'), '[10.0.0.0]/8\n');
  writeFileSync(join(dir, 'db/smtp-policy.mx'), 'partner.example\n');
  writeFileSync(join(dir, 'db/localnames'), 'test.example\n');
  writeFileSync(join(dir, 'smtpserver.conf'), `PARAM policydb btree ${dir}/db/smtp-policy\n`);
  writeFileSync(join(dir, 'smtpd.conf'), basicConfig(`resolver "${dns.server}"\nresolver timeout 2s\n`).replaceAll('$DIR', dir));
  bin = join(dir, 'smtpserver');
  symlinkSync(join(REPO, 'bin/postern.js'), bin);
});

after(async () => {
  await dns.close();
});

/** One batch as if from `client`; the replies, one a line. */
function batch(client: string, lines: string[]): Promise<string[]> {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, [bin, '-C', join(dir, 'smtpserver.conf'), '-i', '-T', `[${client}]`, '-P', join(dir, 'spool')], { env: { ...process.env, POSTERN_CONFIG: join(dir, 'smtpd.conf') }, timeout: 30_000 }, (_e, stdout) =>
      resolve(String(stdout).split('\r\n').filter((l) => l !== '')),
    );
    p.stdin?.end(`${lines.join('\n')}\nQUIT\n`);
  });
}

test('rejectnet: a private network is refused at connect with the tag\'s message; a rejectnet - hole in it is not', async () => {
  const r = await batch('192.168.1.5', ['HELO x']);
  assert.match(r[0] ?? '', /^550 5\.7\.1 We reject your network/);
  const ok = await batch('192.168.16.9', ['HELO x', 'MAIL FROM:<a@good.example>', 'RCPT TO:<root@test.example>']);
  assert.match(ok[0] ?? '', /^220 /);
  assert.match(ok.at(-2) ?? '', /^250 2\.1\.5/);
});

test('smtp-policy.relay networks (= _full_rights) relay anywhere; others only to our domains, .mx domains and domains we are MX for', async () => {
  const inside = await batch('10.1.2.3', ['HELO x', 'MAIL FROM:<a@good.example>', 'RCPT TO:<u@elsewhere.example>']);
  assert.match(inside.at(-2) ?? '', /^250 2\.1\.5/, inside.join('\n'));
  const outside = await batch('198.51.100.7', [
    'HELO x',
    'MAIL FROM:<a@good.example>',
    'RCPT TO:<u@elsewhere.example>',
    'RCPT TO:<u@backup.example>',
    'RCPT TO:<u@partner.example>',
    'RCPT TO:<root@test.example>',
  ]);
  const [, , mail, other, backup, partner, local] = outside;
  assert.match(mail ?? '', /^250 2\.1\.0/);
  assert.match(other ?? '', /^550 5\.7\.1 Relaying to <u@elsewhere\.example> denied/, 'acceptifmx -: we are no MX of it');
  assert.match(backup ?? '', /^250 2\.1\.5/, 'acceptifmx: mx.test.example is us');
  assert.match(partner ?? '', /^250 2\.1\.5/, 'smtp-policy.mx');
  assert.match(local ?? '', /^250 2\.1\.5/, 'localnames');
});

test('senderokwithdns -, rejectsource on user@ and on .domain; a DNS failure is 451', async () => {
  const r = await batch('198.51.100.7', ['HELO x', 'MAIL FROM:<a@nowhere.example>', 'MAIL FROM:<friend@good.example>', 'MAIL FROM:<x@mail.nobody.example>', 'MAIL FROM:<x@broken.example>', 'MAIL FROM:<>']);
  assert.match(r[2] ?? '', /^550 5\.1\.8 Sender domain nowhere\.example has no DNS data/);
  assert.match(r[3] ?? '', /^550 5\.7\.1 Your address is not liked source for email/);
  assert.match(r[4] ?? '', /^550 5\.7\.1 Your address is not liked source for email/);
  assert.match(r[5] ?? '', /^451 4\.4\.3/);
  assert.match(r[6] ?? '', /^250 /, 'the null sender is not looked up');
});

test('test-dns-rbl refuses a listed client at connect; rcpt-dns-rbl refuses it at RCPT where test-rcpt-dns-rbl + applies, not where a domain opts out', async () => {
  const early = await batch('203.0.113.9', ['HELO x']);
  assert.match(early[0] ?? '', /^550 5\.7\.1 Your address \[203\.0\.113\.9\] is listed in rbl\.test/);
  const late = await batch('203.0.113.10', ['HELO x', 'MAIL FROM:<a@good.example>', 'RCPT TO:<root@test.example>', 'RCPT TO:<u@optout.example>']);
  assert.match(late[3] ?? '', /^550 5\.7\.1 Your address \[203\.0\.113\.10\] is listed in late\.test/);
  assert.match(late[4] ?? '', /^250 2\.1\.5/);
});

test('freeze +: the message is accepted and held (Postern\'s hold queue)', async () => {
  const d = await startDaemon(basicConfig(`resolver "${dns.server}"\nsmtpserver-conf "${dir}/smtpserver.conf"\n`), { dir: tempDir('postern-pdbd-') });
  try {
    const c = await RawClient.open(d.port, '127.0.0.1', '127.0.0.2');
    const r = await dialogue(c, 'S: 220\nC: HELO x\nS: 250\nC: MAIL FROM:<a@good.example>\nS: 250\nC: RCPT TO:<u@frozen.example>\nS: 250\nC: DATA\nS: 354\nR: Subject: cold\\r\\n\\r\\nbrr\\r\\n.\\r\\n\nS: 250\nC: QUIT\nS: 221');
    c.close();
    assert.equal(r.length, 7);
    await d.waitForLog(/smtp held .*msgid=/);
    const msgs = await spoolMessages(join(d.dir, 'spool'));
    const outcomes = msgs.flatMap((m) => [...m.stored.outcomes.values()].flat());
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o.kind === 'held'), JSON.stringify(outcomes));
  } finally {
    d.cleanup();
  }
});

test('freeze + under smtpserver -i: the daemon that takes the handed-on message holds it too', async () => {
  const r = await batch('198.51.100.7', ['HELO x', 'MAIL FROM:<a@good.example>', 'RCPT TO:<u@frozen.example>', 'DATA', 'Subject: cold batch', '', 'brr', '.']);
  assert.match(r.at(-2) ?? '', /^250 2\.0\.0 \S+ Message accepted/, r.join('\n'));
  const d = await startDaemon(basicConfig(`resolver "${dns.server}"\n`), { dir });
  try {
    await d.waitForLog(/enqueued \d+ message\(s\) left in offline/);
    const msgs = await spoolMessages(join(dir, 'spool'));
    const cold = msgs.find((m) => /cold batch/.test(m.body));
    const outcomes = [...(cold?.stored.outcomes.values() ?? [])].flat();
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o.kind === 'held'), JSON.stringify(outcomes));
  } finally {
    await d.stop();
  }
});
