/*
 * The milter client against Debian's opendkim: one opendkim signs mail
 * that reaches one listener (a key opendkim-genkey makes for the test), a
 * second opendkim, on another listener, verifies the signed message (the
 * public key given through its TestPublicKeys file, as DNS is not there)
 * and its Authentication-Results header says dkim=pass. A message changed
 * after signing fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { run } from '../helpers/tools.js';
import { send, socketExists, startFiltered, startHelper, waitFor } from './filter-helpers.js';

function opendkimConf(dir: string, name: string, mode: 's' | 'v'): string {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [
      `Mode ${mode}`,
      `Socket local:${dir}/${name}.sock`,
      'Background no',
      'Syslog no',
      `PidFile ${dir}/${name}.pid`,
      'AuthservID mx.test.example',
      'InternalHosts 127.0.0.1',
      'Canonicalization relaxed/relaxed',
      ...(mode === 's' ? ['Domain test.example', 'Selector sel', `KeyFile ${dir}/sel.private`] : [`TestPublicKeys ${dir}/keys`]),
      'UserID root',
      'RequireSafeKeys false',
      '',
    ].join('\n'),
  );
  return conf;
}

test('opendkim as a milter: signs on one listener, verifies on another (dkim=pass), a changed body fails', async () => {
  const dir = tempDir('postern-opendkim-');
  const gen = await run('/usr/sbin/opendkim-genkey', ['-D', dir, '-d', 'test.example', '-s', 'sel', '-b', '1024']);
  assert.equal(gen.status, 0, gen.stderr);
  const txt = readFileSync(join(dir, 'sel.txt'), 'utf8');
  const record = [...txt.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  writeFileSync(join(dir, 'keys'), `sel._domainkey.test.example ${record}\n`);
  const signer = startHelper('/usr/sbin/opendkim', ['-f', '-x', opendkimConf(dir, 'sign', 's')]);
  const verifier = startHelper('/usr/sbin/opendkim', ['-f', '-x', opendkimConf(dir, 'verify', 'v')]);
  try {
    await waitFor(socketExists(join(dir, 'sign.sock')), `opendkim (signing): ${signer.output.join('')}`);
    await waitFor(socketExists(join(dir, 'verify.sock')), `opendkim (verifying): ${verifier.output.join('')}`);
    const d = await startFiltered(`filter "sign" milter "unix:${dir}/sign.sock"\nfilter "verify" milter "unix:${dir}/verify.sock"`, 'sign', dir, 'listen on 127.0.0.1 port 0 filter verify');
    try {
      const [signPort, verifyPort] = d.ports;
      const msg = 'From: Alice <alice@test.example>\nTo: bob@test.example\nSubject: signed\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <1@test.example>\n\nA signed message.\n';
      assert.match((await send(signPort!, 'alice@test.example', ['bob@test.example'], msg)).end ?? '', /^250 /);
      let msgs = await spoolMessages(join(dir, 'spool'));
      const signed = msgs.find((m) => /DKIM-Signature:/.test(m.body));
      assert.ok(signed, `the message is signed: ${msgs.map((m) => m.body).join('\n---\n')}\n${signer.output.join('')}`);
      assert.match(signed.body, /DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=test\.example;\s*s=sel;/);

      // The signed message, as it would arrive at the next hop, verifies there.
      const good = await send(verifyPort!, 'alice@test.example', ['bob@test.example'], signed.body.replace(/\r\n$/, ''));
      assert.match(good.end ?? '', /^250 /);
      const tampered = await send(verifyPort!, 'alice@test.example', ['bob@test.example'], signed.body.replace('A signed message.', 'A changed message.').replace(/\r\n$/, ''));
      assert.match(tampered.end ?? '', /^250 /);
      msgs = await spoolMessages(join(dir, 'spool'));
      const verified = msgs.filter((m) => /Authentication-Results: mx\.test\.example;\s*dkim=/.test(m.body));
      assert.equal(verified.length, 2, verifier.output.join(''));
      assert.ok(verified.some((m) => /dkim=pass/.test(m.body) && m.body.includes('A signed message.')), 'the untouched message passes');
      assert.ok(verified.some((m) => /dkim=fail/.test(m.body) && m.body.includes('A changed message.')), 'the changed one fails');
    } finally {
      d.cleanup();
    }
  } finally {
    await signer.stop();
    await verifier.stop();
  }
});
