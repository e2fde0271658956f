/*
 * The policy dry run, `smtpd -b '[ADDRESS]'`, driven through standard
 * input: a whole session as if the client were ADDRESS, every reply
 * followed by "# …" lines naming the phase and rule that decided it, and
 * nothing queued or delivered.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPD, tempDir } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';

const RULES = `deny:127.0.0.3:ALL:ALL:550 Mail from %I refused; your network is a known source of spam
allow:127.0.0.1:ALL:ALL
debug:ALL:*@outside.example:ALL
allow:ALL:ALL:*@test.example postmaster
noto_delay:ALL:ALL:ALL:550 Relaying to %T denied to %H (%I)
`;

const ZMAILER = `PARAM hdr220 %H dry-run greeting for %i
PARAM tarpit 20 2
PARAM contentfilter $DIR/filter.sh
*.spam.example   !Go away
*                ve
`;

let dir: string;
let dns: DnsServerHandle;
let conf: string;

before(async () => {
  dns = await startDnsServer({
    '2.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'client2.outside.example' }],
    'client2.outside.example': [{ type: 'A', address: '127.0.0.2' }],
  });
  dir = tempDir('postern-dryrun-');
  writeFileSync(join(dir, 'rules'), RULES);
  writeFileSync(join(dir, 'filter.sh'), `#!/bin/sh\nread path\necho "$path" >> ${dir}/filtered\nif grep -q SPAMSPAM "$path"; then echo "-1 550 5.7.1 That is spam"; else echo 0; fi\n`);
  chmodSync(join(dir, 'filter.sh'), 0o755);
  writeFileSync(join(dir, 'smtpserver.conf'), ZMAILER.replaceAll('$DIR', dir));
  conf = join(dir, 'smtpd.conf');
  writeFileSync(
    conf,
    `queue path "${dir}/spool"
mbox path "${dir}/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 2525
resolver "${dns.server}"
resolver timeout 2s
rules "${dir}/rules"
smtpserver-conf "${dir}/smtpserver.conf"
action "local" mbox
action "relay" relay
match from any for domain "test.example" action "local"
match from any for local action "local"
match from local for any action "relay"
`,
  );
});

after(async () => {
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

const dryRun = (address: string, input: string) => run(process.execPath, [SMTPD, '-f', conf, '-b', address], { input, timeoutMs: 30_000 });

/** The reply lines and the comment lines that follow each, as [reply, comments][]. */
function parse(out: string): { reply: string; notes: string[] }[] {
  const res: { reply: string; notes: string[] }[] = [];
  for (const line of out.split('\r\n')) {
    if (line === '') continue;
    if (line.startsWith('# ')) res.at(-1)?.notes.push(line.slice(2));
    else if (/^\d{3} /.test(line)) res.push({ reply: line, notes: [] });
  }
  return res;
}

test('a whole session from an outsider: each reply with the phase and rule that decided it; nothing is queued', async () => {
  const r = await dryRun(
    '[127.0.0.2]',
    ['EHLO client2.outside.example', 'MAIL FROM:<someone@outside.example>', 'RCPT TO:<victim@elsewhere.example>', 'RCPT TO:<root@test.example>', 'DATA', 'Subject: hi', '', 'hello', '.', 'QUIT', ''].join('\n'),
  );
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^# dry run: a session from \[127\.0\.0\.2\]; nothing is queued or delivered\r\n# client host name: client2\.outside\.example\r\n/);
  const steps = parse(out);
  assert.deepEqual(
    steps.map((s) => s.reply.slice(0, 3)),
    ['220', '250', '250', '550', '250', '354', '250', '221'],
    out,
  );
  const [greet, , , noto, ok, , accepted, quit] = steps;
  assert.equal(greet?.reply, '220 mx.test.example dry-run greeting for [127.0.0.2]');
  assert.ok(greet?.notes.some((n) => /^connect: connection limits 100 per address, 800 in total/.test(n)), greet?.notes.join('\n'));
  // The rules file: the deciding rule with FILE:LINE and its text, the debug rule on the way, the delay not waited.
  assert.equal(noto?.reply, '550 5.7.1 Relaying to <victim@elsewhere.example> denied to client2.outside.example (127.0.0.2)');
  const rulesNote = noto?.notes.find((n) => n.startsWith('rcpt: rules file: noto: '));
  assert.ok(rulesNote?.includes(`${dir}/rules:5: noto_delay:ALL:ALL:ALL:550 Relaying to %T denied to %H (%I)`), noto?.notes.join('\n'));
  assert.ok(rulesNote?.includes(`debug ${dir}/rules:3 matched`), rulesNote);
  assert.ok(noto?.notes.includes('delay: the rule makes this reply wait 60 s (not waited in a dry run)'), noto?.notes.join('\n'));
  assert.ok(noto?.notes.includes('tarpit/error limit: this reply would wait 20 s after 1 error(s) (not waited in a dry run)'), noto?.notes.join('\n'));
  // Accepted: the rules file's allow, then the smtpd.conf rule that chose the action.
  assert.ok(ok?.notes.some((n) => n.startsWith(`rcpt: rules file: allow: ${dir}/rules:4:`)), ok?.notes.join('\n'));
  assert.ok(ok?.notes.includes(`rcpt: smtpd.conf: rule ${conf}:11 matches: action "local"`), ok?.notes.join('\n'));
  // The content filter ran on the message, which was then thrown away.
  assert.ok(accepted?.notes.includes('commit: content-filter: content filter: 0'), accepted?.notes.join('\n'));
  assert.ok(accepted?.notes.some((n) => /^dry run: message [0-9a-f]{8} thrown away, not queued$/.test(n)), accepted?.notes.join('\n'));
  assert.ok(quit?.notes.includes('the session ends here'));
  assert.ok(existsSync(join(dir, 'filtered')), 'the content filter was asked');
  // Nothing in the configuration's spool.
  assert.ok(!existsSync(join(dir, 'spool', 'queue')) || readdirSync(join(dir, 'spool', 'queue')).every((b) => readdirSync(join(dir, 'spool', 'queue', b)).length === 0));
});

test('the spammer: deny with %I, the session ends; the HELO pattern refusal is explained', async () => {
  const r = await dryRun('[127.0.0.3]', 'EHLO mail.spam.example\nEHLO other.example\nMAIL FROM:<x@spam.example>\nRCPT TO:<root@test.example>\nNOOP\n');
  assert.equal(r.status, 0, r.stderr);
  const steps = parse(r.stdout);
  assert.deepEqual(
    steps.map((s) => s.reply),
    ['220 mx.test.example dry-run greeting for [127.0.0.3]', '501 5.7.1 Sorry 127.0.0.3, Go away', '250 HELP', '250 2.1.0 Ok', '550 5.7.1 Mail from 127.0.0.3 refused; your network is a known source of spam'],
    r.stdout,
  );
  assert.ok(steps[1]?.notes.some((n) => n.startsWith(`helo: smtpserver.conf: ${dir}/smtpserver.conf:4: *.spam.example`)), steps[1]?.notes.join('\n'));
  assert.ok(steps[2]?.notes.some((n) => n.startsWith(`helo: smtpserver.conf: ${dir}/smtpserver.conf:5: * style "ve"`)), steps[2]?.notes.join('\n'));
  const deny = steps[4];
  assert.ok(deny?.notes.some((n) => n.startsWith(`rcpt: rules file: deny: ${dir}/rules:1: deny:127.0.0.3:ALL:ALL:`)), deny?.notes.join('\n'));
  assert.ok(deny?.notes.includes('the session ends here'));
  assert.equal(steps.length, 5, 'NOOP is never read: the session ended');
});

test('the internal address may relay; the rule is named', async () => {
  const r = await dryRun('127.0.0.1', 'HELO inside\nMAIL FROM:<a@test.example>\nRCPT TO:<b@elsewhere.example>\nQUIT\n');
  assert.equal(r.status, 0, r.stderr);
  const rcpt = parse(r.stdout)[3];
  assert.equal(rcpt?.reply, '250 2.1.5 Recipient ok');
  assert.ok(rcpt?.notes.includes(`rcpt: smtpd.conf: rule ${conf}:13 matches: action "relay"`), rcpt?.notes.join('\n'));
});

test('smtpd -b needs an address literal; bad input is one line on stderr and exit 1', async () => {
  for (const bad of ['1.2.3', '[example.com]', '']) {
    const r = await run(process.execPath, [SMTPD, '-f', conf, '-b', bad]);
    assert.equal(r.status, 1, `${bad}: ${r.stdout}`);
    assert.match(r.stderr, /^smtpd: -b .*address literal/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('smtpd -n checks the rules file and smtpserver.conf too', async () => {
  const bad = join(dir, 'bad.conf');
  writeFileSync(join(dir, 'bad.rules'), 'permit:ALL:ALL:ALL\n');
  writeFileSync(bad, `queue path "${dir}/spool"\nlisten on 127.0.0.1\nrules "${dir}/bad.rules"\naction "local" mbox\nmatch from local for local action "local"\n`);
  const r = await run(process.execPath, [SMTPD, '-n', '-f', bad]);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^${dir}/bad\\.rules:1: unknown action "permit"`));
  const ok = await run(process.execPath, [SMTPD, '-n', '-f', conf]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, 'configuration OK\n');
});
