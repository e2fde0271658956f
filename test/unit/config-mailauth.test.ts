/*
 * The `mailauth` statements of smtpd.conf (config/parse-mailauth.ts): what
 * they build, and FILE:LINE:COL errors for what is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errors, ok } from './config-helpers.js';

test('no mailauth statement: nothing checked, nothing signed', () => {
  assert.equal(ok('listen on 127.0.0.1\n').mailauth, undefined);
});

test('mailauth verify: the defaults, and every option', () => {
  assert.deepEqual(ok('mailauth verify\n').mailauth, { verify: { spfReject: false, dmarcReject: false, quarantine: 'tag', minKeyBits: 1024 } });
  assert.deepEqual(ok('mailauth verify spf-reject dmarc-reject quarantine hold authserv-id MX.Example.ORG min-key-bits 2048\n').mailauth?.verify, {
    spfReject: true,
    dmarcReject: true,
    quarantine: 'hold',
    minKeyBits: 2048,
    authservId: 'mx.example.org',
  });
});

test('mailauth sign <table>, with verify on another line', () => {
  const c = ok('table dkim file:/etc/mail/dkim-keys\nmailauth sign <dkim>\nmailauth verify dmarc-reject\n');
  assert.deepEqual(c.mailauth?.sign, { keys: 'dkim' });
  assert.equal(c.mailauth?.verify?.dmarcReject, true);
});

test('errors name the file, line and column', () => {
  assert.deepEqual(errors('mailauth verify spf-reject bogus\n'), ['smtpd.conf:1:28: unknown "mailauth verify" option "bogus" (spf-reject, dmarc-reject, quarantine tag|hold, authserv-id NAME, min-key-bits N)']);
  assert.deepEqual(errors('mailauth verify quarantine drop\n'), ['smtpd.conf:1:28: expected "tag" or "hold" after "quarantine", found "drop"']);
  assert.deepEqual(errors('mailauth verify min-key-bits 256\n'), ['smtpd.conf:1:30: min-key-bits must be at least 512']);
  assert.match(errors('mailauth sign <nothere>\n')[0] ?? '', /^smtpd\.conf:1:16: .*nothere/);
  assert.match(errors('mailauth check\n')[0] ?? '', /^smtpd\.conf:1:10: /);
  assert.match(errors('mailauth verify authserv-id "bad name"\n')[0] ?? '', /^smtpd\.conf:1:29: invalid hostname/);
});

test('mailauth seal: domain, selector and key file', () => {
  assert.deepEqual(ok('mailauth seal domain Relay.Example.ORG selector arc2026 key "/etc/mail/dkim/arc.pem"\n').mailauth?.seal, { domain: 'relay.example.org', selector: 'arc2026', keyFile: '/etc/mail/dkim/arc.pem' });
  assert.equal(ok('mailauth seal domain r.example selector s key "keys/arc.pem"\n').mailauth?.seal?.keyFile, '/srv/postern/keys/arc.pem', 'relative to the configuration');
  assert.match(errors('mailauth seal domain r.example selector "bad sel" key "/k.pem"\n')[0] ?? '', /^smtpd\.conf:1:41: invalid selector "bad sel"/);
  assert.match(errors('mailauth seal domain r.example key "/k.pem"\n')[0] ?? '', /^smtpd\.conf:1:\d+: /);
});
