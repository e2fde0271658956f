/*
 * What a filter process reads (smtpd-filters(7), OpenSMTPD 7's protocol
 * 0.7): a small filter of our own (test/fixtures/proc-recorder.py)
 * registers for every report event and filter phase and writes down each
 * line. swaks sends through STARTTLS and AUTH PLAIN from 127.0.22.3; the
 * test checks the report stream OpenSMTPD would send (link-*, tx-*,
 * protocol-client/-server, filter-response), the starttls and auth
 * requests, that no password reaches
 * the filter, and that the data lines reach it while the message arrives
 * (before the client's final "."), not after it is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { startDaemon, tempDir, tlsAuthHead } from '../helpers/daemon.js';
import { makeCert } from '../helpers/certs.js';
import { spoolMessages } from '../helpers/inproc.js';
import { requireTool, run } from '../helpers/tools.js';
import { FIXTURES, waitFor } from './filter-helpers.js';

test('a filter process gets the report stream and the data lines of a session with STARTTLS and AUTH, as OpenSMTPD 7 sends them', async () => {
  const dir = tempDir('postern-proc-report-');
  makeCert(dir, 'mx.test.example');
  writeFileSync(join(dir, 'creds'), `alice ${bcrypt.hashSync('alice-secret', 8)}\n`);
  // The filter runs as the SMTP side's user (_postern when started as root): it writes in a folder open to it.
  const out = join(dir, 'rec');
  mkdirSync(out);
  chmodSync(out, 0o777);
  const record = join(out, 'lines');
  const d = await startDaemon(
    `${tlsAuthHead()}filter "rec" proc-exec "/usr/bin/python3 ${join(FIXTURES, 'proc-recorder.py')} ${record}" timeout 10s
listen on 127.0.22.1 port 0 tls pki mx.test.example auth-optional <creds> filter rec
action "out" relay host "smtp://127.0.0.1:9"
match from any for domain "test.example" action "out"
`,
    { dir },
  );
  try {
    const body = 'Subject: recorded\r\n\r\n.leading dot\r\nplain line\r\n';
    const r = await run(requireTool('swaks'), ['--server', '127.0.22.1', '--port', String(d.port), '--local-interface', '127.0.22.3', '--helo', 'swaks.test', '--from', 'alice@client.example', '--to', 'bob@test.example', '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-secret', '--data', body]);
    assert.match(r.stdout, /<~\s+250 2\.0\.0 /, r.stdout + r.stderr);
    await waitFor(() => readFileSync(record, 'utf8').includes('|link-disconnect|'), 'link-disconnect in the record');
    const lines = readFileSync(record, 'utf8').split('\n').filter((l) => l !== '');
    const reports = lines.filter((l) => l.startsWith('report|')).map((l) => l.split('|'));
    // Every report line: report|0.7|TIME|smtp-in|EVENT|SESSION (16 hex digits)|…
    for (const f of reports) {
      assert.equal(f[1], '0.7');
      assert.match(f[2]!, /^\d+\.\d{6}$/);
      assert.equal(f[3], 'smtp-in');
      assert.match(f[5]!, /^[0-9a-f]{16}$/);
    }
    const ev = reports.map((f) => [f[4], ...f.slice(6)].join('|'));
    const at = (re: RegExp): number => {
      const i = ev.findIndex((e) => re.test(e));
      assert.ok(i >= 0, `no report matching ${re} in:\n${ev.join('\n')}`);
      return i;
    };
    assert.ok(lines.includes('config|protocol|0.7'));
    const order = [
      at(/^link-connect\|\|fail\|127\.0\.22\.3:\d+\|127\.0\.22\.1:\d+$/),
      at(/^link-greeting\|mx\.test\.example$/),
      at(/^protocol-server\|220 /),
      at(/^protocol-client\|EHLO swaks\.test$/),
      at(/^link-identify\|EHLO\|swaks\.test$/),
      at(/^protocol-client\|STARTTLS$/),
      at(/^link-tls\|TLSv1\.[23]:[A-Z0-9_-]+:(128|256)$/),
      at(/^protocol-client\|AUTH PLAIN \*{8}$/),
      at(/^link-auth\|pass\|alice$/),
      at(/^protocol-server\|235 2\.7\.0 /),
      at(/^tx-begin\|[0-9a-f]{8}$/),
      at(/^tx-mail\|[0-9a-f]{8}\|ok\|alice@client\.example$/),
      at(/^tx-rcpt\|[0-9a-f]{8}\|ok\|bob@test\.example$/),
      at(/^tx-data\|[0-9a-f]{8}\|ok$/),
      at(/^protocol-client\|\.$/),
      at(/^tx-envelope\|[0-9a-f]{8}\|\S+$/),
      at(/^tx-commit\|[0-9a-f]{8}\|\d+$/),
      at(/^tx-reset\|[0-9a-f]{8}$/),
      at(/^protocol-client\|QUIT$/),
      at(/^link-disconnect$/),
    ];
    assert.deepEqual(order, [...order].sort((a, b) => a - b), `reports out of order:\n${ev.join('\n')}`);
    // Filter requests at STARTTLS (no parameter) and AUTH (the mechanism, never the credentials).
    assert.ok(lines.some((l) => /^filter\|0\.7\|[\d.]+\|smtp-in\|starttls\|[0-9a-f]{16}\|[0-9a-f]+\|$/.test(l)), 'a starttls request');
    assert.ok(lines.some((l) => /^filter\|0\.7\|[\d.]+\|smtp-in\|auth\|[0-9a-f]{16}\|[0-9a-f]+\|PLAIN$/.test(l)), 'an auth request with the mechanism only');
    assert.ok(ev.some((e) => e === 'filter-response|tls|proceed'));
    assert.ok(ev.some((e) => e === 'filter-response|connected|proceed'));
    assert.ok(ev.some((e) => e === 'filter-response|mail-from|proceed'));
    // One transaction id throughout.
    assert.equal(new Set(ev.filter((e) => e.startsWith('tx-')).map((e) => e.split('|')[1])).size, 1);
    // No secret reaches the filter (AUTH PLAIN's initial response is base64 of "\0alice\0alice-secret").
    const secret = Buffer.from('\0alice\0alice-secret').toString('base64');
    assert.ok(!lines.some((l) => l.includes(secret) || l.includes('alice-secret')), 'no password in what the filter reads');
    // The data lines came while the message arrived: before the client's "." was reported.
    const dataAt = lines.findIndex((l) => /^filter\|0\.7\|[\d.]+\|smtp-in\|data-line\|[0-9a-f]{16}\|[0-9a-f]+\|Subject: recorded$/.test(l));
    const dotAt = lines.findIndex((l) => /\|protocol-client\|[0-9a-f]{16}\|\.$/.test(l));
    assert.ok(dataAt >= 0 && dotAt > dataAt, `data lines before the final ".": ${dataAt} < ${dotAt}`);
    assert.ok(lines.some((l) => l.endsWith('|..leading dot')), 'dot-escaped as on the wire');
    // tx-commit's size is the stored message's.
    await d.stop();
    const [m] = await spoolMessages(join(dir, 'spool'));
    assert.ok(m);
    assert.equal(ev.find((e) => e.startsWith('tx-commit|'))!.split('|')[2], String(m.stored.envelope.size));
    assert.match(m.body, /\r\n\.leading dot\r\nplain line\r\n/);
  } finally {
    await d.stop().catch(() => undefined);
    d.cleanup();
  }
});
