/*
 * clamav-milter with clamd, both from Debian, in front of Postern: a clean
 * message is accepted (clamav-milter adds its X-Virus-Scanned header), the
 * EICAR test file is refused. There is no network here, so freshclam cannot
 * fetch ClamAV's databases: clamd is given a database of one signature
 * written by the test (an .ndb body signature for the EICAR string).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { send, socketExists, startFiltered, startHelper, waitFor } from './filter-helpers.js';

const EICAR = String.raw`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`;

test('clamav-milter: a clean message is accepted, EICAR refused', async () => {
  const dir = tempDir('postern-clamav-');
  mkdirSync(join(dir, 'db'));
  writeFileSync(join(dir, 'db', 'eicar.ndb'), `Postern-Test-EICAR:0:*:${Buffer.from(EICAR).toString('hex')}\n`);
  writeFileSync(join(dir, 'clamd.conf'), `LocalSocket ${dir}/clamd.sock\nDatabaseDirectory ${dir}/db\nForeground yes\nLogFile ${dir}/clamd.log\nPidFile ${dir}/clamd.pid\nUser root\n`);
  writeFileSync(
    join(dir, 'clamav-milter.conf'),
    `MilterSocket unix:${dir}/clamav-milter.sock\nClamdSocket unix:${dir}/clamd.sock\nForeground yes\nOnInfected Reject\nAddHeader Replace\nLogFile ${dir}/clamav-milter.log\nPidFile ${dir}/clamav-milter.pid\nUser root\n`,
  );
  const clamd = startHelper('/usr/sbin/clamd', ['-c', join(dir, 'clamd.conf')]);
  let milter: ReturnType<typeof startHelper> | undefined;
  try {
    await waitFor(socketExists(join(dir, 'clamd.sock')), `clamd: ${clamd.output.join('')}`, 120_000);
    milter = startHelper('/usr/sbin/clamav-milter', ['-c', join(dir, 'clamav-milter.conf')]);
    await waitFor(socketExists(join(dir, 'clamav-milter.sock')), `clamav-milter: ${milter.output.join('')}`, 60_000);
    const d = await startFiltered(`filter "clamav" milter "unix:${dir}/clamav-milter.sock"`, 'clamav', dir);
    try {
      const clean = await send(d.port, 'a@client.test.example', ['b@test.example'], 'Subject: clean\n\nNothing to see here.\n');
      assert.match(clean.end ?? '', /^250 /);
      const infected = await send(d.port, 'a@client.test.example', ['b@test.example'], `Subject: infected\n\n${EICAR}\n`);
      assert.match(infected.end ?? '', /^5\d\d 5\.7\.1 /, `EICAR refused: ${infected.end}`);
      await d.stop();
      const msgs = await spoolMessages(join(dir, 'spool'));
      assert.equal(msgs.length, 1);
      assert.match(msgs[0]!.body, /\r\nX-Virus-Scanned: clamav-milter [^\r\n]*\r\nX-Virus-Status: Clean\r\n\r\n/);
    } finally {
      d.cleanup();
    }
  } finally {
    await milter?.stop();
    await clamd.stop();
  }
});
