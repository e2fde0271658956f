/*
 * OpenSMTPD's filter-dkimsign, the one Debian ships, run unchanged as a
 * filter process (as nobody): it signs what passes through its data lines,
 * and python3-dkim verifies the stored message with the public key the
 * test generated (no DNS: the key is handed to dkim.verify's lookup).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { run } from '../helpers/tools.js';
import { send, startFiltered } from './filter-helpers.js';

const DKIMSIGN = '/usr/libexec/opensmtpd/filter-dkimsign';

test('filter-dkimsign signs through the data lines; python3-dkim verifies the stored message', async () => {
  const dir = tempDir('postern-dkimsign-');
  chmodSync(dir, 0o755); // the filter runs as nobody and reads its key from here
  const gen = await run('/usr/sbin/opendkim-genkey', ['-D', dir, '-d', 'test.example', '-s', 'sel', '-b', '1024']);
  assert.equal(gen.status, 0, gen.stderr);
  chmodSync(join(dir, 'sel.private'), 0o644);
  const record = [...readFileSync(join(dir, 'sel.txt'), 'utf8').matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  const d = await startFiltered(`filter "dkim" proc-exec "${DKIMSIGN} -d test.example -s sel -k ${dir}/sel.private"`, 'dkim', dir);
  try {
    const msg = 'From: Alice <alice@test.example>\nTo: bob@test.example\nSubject: signed by filter-dkimsign\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <2@test.example>\n\nA signed message.\n.A line that starts with a dot.\n';
    assert.match((await send(d.port, 'alice@test.example', ['bob@test.example'], msg.replace('\n.A', '\n..A'))).end ?? '', /^250 /);
    await d.stop();
    const [m] = await spoolMessages(join(dir, 'spool'));
    assert.ok(m);
    assert.match(m.body, /^DKIM-Signature: v=1; a=rsa-sha256;/, m.body);
    assert.match(m.body, /\r\n\.A line that starts with a dot\.\r\n/, 'dot-escaping undone on the way back');
    writeFileSync(join(dir, 'signed.eml'), m.body, 'latin1');
    const verify = await run('/usr/bin/python3', [
      '-c',
      `import dkim, sys
msg = open(sys.argv[1], 'rb').read()
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: sys.argv[2].encode())
print('pass' if ok else 'fail')`,
      join(dir, 'signed.eml'),
      record,
    ]);
    assert.equal(verify.stdout.trim(), 'pass', verify.stderr);
  } finally {
    d.cleanup();
  }
});
