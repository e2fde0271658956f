/*
 * Pure parts of the ZMailer front end: the smtpserver command line, the
 * policydb source format and its lookups, the BSMTP feeder, and the ident
 * reply parser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSmtpserverArgs } from '../../src/cli/smtpserver-options.js';
import { parsePolicyText, type PolicyEntry, type PolicyNet, type PolicyDb } from '../../src/config/zmailer/policydb.js';
import { lookupDomain, lookupIp, lookupUser, flag, rblZones } from '../../src/policy/zmailer/policydb-lookup.js';
import { feedBatch, ReplyReader } from '../../src/daemon/bsmtp.js';
import { parseIdentReply } from '../../src/net/ident.js';
import type { Diagnostic } from '../../src/config/model.js';

test('smtpserver options: the seed\'s flags with their values; errors are one line', () => {
  const o = parseSmtpserverArgs(['-4agiBVvw', '-p', '2525', '-l', 'SYSLOG', '-l', '/var/log/smtp', '-s', 'ftve', '-I', '/run/p', '-L', '7.5', '-M', '1000', '-P', '/spool', '-R', '/usr/lib/router', '-C', '/etc/s.conf', '-T', '[1.2.3.4]']);
  assert.ok(!('error' in o));
  assert.equal(o.family, 4);
  assert.deepEqual(o.logs, ['SYSLOG', '/var/log/smtp']);
  assert.equal(o.maxLoadAverage, 7.5);
  assert.equal(o.testAddress, '[1.2.3.4]');
  assert.equal(o.style?.kind, 'flags');
  assert.ok('error' in parseSmtpserverArgs(['-i', '-n']));
  const strict = parseSmtpserverArgs(['-s', 'strict']);
  assert.ok(!('error' in strict) && strict.style?.kind === 'strict');
  for (const [args, err] of [
    [['-q'], 'unknown option -- q'],
    [['-4', '-6'], '-4 and -6 exclude each other'],
    [['-T', '1.2.3.4'], '-T 1.2.3.4: the address must be in brackets'],
    [['-R', 'router'], '-R router: the router must be an absolute path'],
    [['-p', '0'], '-p 0: expected a number from 1 to 65535'],
  ] as const) {
    const r = parseSmtpserverArgs(args);
    assert.ok('error' in r && r.error.startsWith(err), `${args.join(' ')}: ${JSON.stringify(r)}`);
  }
});

function db(text: string): { db: PolicyDb; diags: Diagnostic[] } {
  const into = { keys: new Map<string, PolicyEntry>(), nets: [] as PolicyNet[] };
  const diags: Diagnostic[] = [];
  parsePolicyText(text, 'smtp-policy.src', undefined, into, diags);
  return { db: { files: [], keys: into.keys, nets: into.nets.sort((a, b) => b.net[1] - a.net[1]) }, diags };
}

test('policydb source: keys, attributes, messages, aliases; errors are FILE:LINE', () => {
  const { diags } = db('ok.example relaytarget +\nbad.example relaytarget maybe\nx.example frobnicate +\n[10.0.0.0]/33 rejectnet +\nlonely.example relaytarget\n_t message "unterminated\n');
  assert.deepEqual(
    diags.map((d) => `${d.pos.file}:${d.pos.line}: ${d.message}`),
    [
      'smtp-policy.src:2: attribute "relaytarget": bad value "maybe" (expected + or -)',
      'smtp-policy.src:3: unknown attribute "frobnicate" (known: rejectnet, freezenet, rejectsource, freezesource, relaycustomer, relaycustnet, relaytarget, freeze, senderokwithdns, acceptifmx, acceptifdns, sendernorelay, test-dns-rbl, rcpt-dns-rbl, test-rcpt-dns-rbl, localdomain, maxinsize, maxoutsize, fulltrustnet, trustrecipients, trust-whoson, filtering, spf, message, =)',
      'smtp-policy.src:4: prefix /33 is longer than 32 bits',
      'smtp-policy.src:5: attribute "relaytarget" has no value',
      'smtp-policy.src:6: unterminated quote',
    ],
  );
});

test('policydb lookups: the .parent walk to ".", user@domain then user@, the longest prefix, first value wins through = _tag', () => {
  const { db: d, diags } = db(`
_base      relaytarget - message "No relay" acceptifmx - rejectnet +
.          = _base
.example   relaytarget + = _base
sub.example.org rejectsource +
joe@       rejectsource +
joe@ok.example rejectsource -
[0.0.0.0]/0        = _base
[192.0.2.0]/24     rejectnet - = _base
[192.0.2.128]/25   freezenet +
[IPv6:2001:db8::]/32 relaycustnet +
_a = _b
_b = _c
_c = _d
_d relaycustomer +
deep.example = _a
`);
  assert.deepEqual(diags, []);
  assert.equal(lookupDomain(d, 'a.b.example')?.key, '.example');
  assert.equal(flag(lookupDomain(d, 'a.b.example'), 'relaytarget'), true, 'written before the alias: wins');
  assert.equal(flag(lookupDomain(d, 'a.b.example'), 'acceptifmx'), false, 'from the alias');
  assert.equal(lookupDomain(d, 'other.org')?.key, '.');
  assert.equal(lookupDomain(d, 'other.org')?.attrs.get('acceptifmx')?.message, 'No relay');
  assert.equal(lookupDomain(d, 'other.org')?.attrs.get('relaytarget')?.message, undefined);
  assert.equal(lookupDomain(d, 'sub.example.org')?.key, 'sub.example.org');
  assert.equal(lookupUser(d, 'Joe', 'ok.example')?.key, 'joe@ok.example');
  assert.equal(lookupUser(d, 'joe', 'else.example')?.key, 'joe@');
  assert.equal(lookupUser(d, 'ann', 'else.example'), undefined);
  assert.equal(flag(lookupIp(d, '192.0.2.200'), 'freezenet'), true);
  assert.equal(flag(lookupIp(d, '192.0.2.7'), 'rejectnet'), false);
  assert.equal(flag(lookupIp(d, '::ffff:192.0.2.7'), 'rejectnet'), false, 'IPv4-mapped is IPv4');
  assert.equal(flag(lookupIp(d, '198.51.100.1'), 'rejectnet'), true);
  assert.equal(flag(lookupIp(d, '2001:db8::5'), 'relaycustnet'), true);
  assert.equal(lookupIp(d, '2001:db9::5'), undefined, 'no IPv6 default');
  assert.equal(flag(lookupDomain(d, 'deep.example'), 'relaycustomer'), undefined, 'aliases go 3 levels deep, as ZMailer');
  assert.deepEqual(rblZones('+:dul.example:bad zone'), ['rbl.maps.vix.com', 'dul.example']);
});

test('the message attribute belongs to the attribute after it', () => {
  const { db: d } = db('_p message "We reject your network" rejectnet + message "Not from you" rejectsource + relaytarget -\n. = _p\n');
  const h = lookupDomain(d, 'x.example');
  assert.equal(h?.attrs.get('rejectnet')?.message, 'We reject your network');
  assert.equal(h?.attrs.get('rejectsource')?.message, 'Not from you');
  assert.equal(h?.attrs.get('relaytarget')?.message, undefined);
});

test('BSMTP feeder: one command per reply; a refused DATA skips the text and resets; QUIT at the end', async () => {
  const sent: string[] = [];
  const replies = new ReplyReader();
  const answers: Record<string, string> = { HELO: '250 hi', MAIL: '250 ok', RCPT: '550 no', DATA: '554 no valid recipients', RSET: '250 reset', QUIT: '221 bye' };
  let inData = false;
  replies.push('220 ready\r\n');
  const summary = await feedBatch(
    (async function* () {
      yield* ['HELO x', 'MAIL FROM:<a@b>', 'RCPT TO:<c@d>', 'DATA', 'MAIL FROM:<not a command>', '.', 'MAIL FROM:<e@f>'];
    })(),
    {
      send: (line) => {
        sent.push(line);
        if (inData) {
          if (line === '.') {
            inData = false;
            replies.push('250 queued\r\n');
          }
          return;
        }
        const verb = line.split(' ')[0] as string;
        replies.push(`${answers[verb] ?? '500 what'}\r\n`);
      },
      end: () => replies.close(),
      replies,
    },
  );
  assert.deepEqual(sent, ['HELO x', 'MAIL FROM:<a@b>', 'RCPT TO:<c@d>', 'DATA', 'RSET', 'MAIL FROM:<e@f>', 'QUIT']);
  assert.deepEqual(summary, { commands: 5, skipped: 1 });
});

test('ident replies: USERID, ERROR, wrong ports, junk; the user id is cleaned and cut', () => {
  assert.deepEqual(parseIdentReply('6193, 23 : USERID : UNIX : stjohns\r\n', 6193, 23), { kind: 'user', user: 'stjohns', opsys: 'UNIX' });
  assert.deepEqual(parseIdentReply('6193,23:USERID:OTHER,US-ASCII:a:b', 6193, 23), { kind: 'user', user: 'a:b', opsys: 'OTHER' });
  assert.deepEqual(parseIdentReply('6193, 23 : ERROR : NO-USER', 6193, 23), { kind: 'error', error: 'NO-USER' });
  assert.equal(parseIdentReply('1, 2 : USERID : UNIX : x', 6193, 23).kind, 'none');
  assert.equal(parseIdentReply('garbage', 6193, 23).kind, 'none');
  const long = parseIdentReply(`1,2:USERID:UNIX:${'x'.repeat(100)}\u0007(evil)`, 1, 2);
  assert.ok(long.kind === 'user' && long.user.length === 64 && !long.user.includes('\u0007'));
});
