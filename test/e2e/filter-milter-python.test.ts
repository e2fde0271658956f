/*
 * The milter client against milters written with python3-milter (pymilter,
 * on sendmail's libmilter): every modification action, refusals at each
 * stage, and the failure modes — a refused connection, a timeout, a
 * malformed answer — each answered by the default action and logged, the
 * daemon living on. (A malformed answer cannot be made with libmilter,
 * which only writes valid packets: that one milter is a raw socket server
 * in Python that answers option negotiation with a packet of a bad length.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient } from '../helpers/smtp-client.js';
import { FIXTURES, send, socketExists, startFiltered, startHelper, waitFor } from './filter-helpers.js';

const PY = '/usr/bin/python3';

async function withMilter<T>(fn: (sock: string, dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir('postern-milter-');
  const sock = join(dir, 'milter.sock');
  const m = startHelper(PY, [join(FIXTURES, 'milter-actions.py'), `unix:${sock}`]);
  try {
    await waitFor(socketExists(sock), `the python milter (${m.output.join('')})`);
    return await fn(sock, dir);
  } finally {
    await m.stop();
  }
}

const MESSAGE = (words: string): string => `From: a@client.test.example\nTo: b@test.example\nSubject: original\nX-Remove-Me: please\n\nHello.\n${words}\n`;

test('milter actions: add, insert, change and delete headers, replace the body, change sender and recipients, quarantine', async () => {
  await withMilter(async (sock, dir) => {
    const d = await startFiltered(`filter "py" milter "unix:${sock}"`, 'py', dir);
    try {
      const headers = await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('ADDHEADER CHGHEADER INSHEADER DELHEADER'));
      assert.match(headers.end ?? '', /^250 /);
      const body = await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('REPLACEBODY'));
      assert.match(body.end ?? '', /^250 /);
      const env = await send(d.port, 'a@client.test.example', ['b@test.example', 'c@test.example'], MESSAGE('CHGFROM ADDRCPT DELRCPT'));
      assert.match(env.end ?? '', /^250 /);
      const q = await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('QUARANTINE'));
      assert.match(q.end ?? '', /^250 /);
      await d.stop();
      const msgs = await spoolMessages(join(dir, 'spool'));
      const find = (re: RegExp) => msgs.find((m) => re.test(m.body));
      const h = find(/X-Milter-Added/);
      assert.ok(h, 'the message with header edits is stored');
      assert.match(h.body, /^X-Milter-Top: first\r\nReceived: from /, 'inserted at the top');
      assert.match(h.body, /\r\nSubject: changed by the milter\r\n/);
      assert.doesNotMatch(h.body, /X-Remove-Me/);
      assert.match(h.body, /\r\nX-Milter-Added: yes\r\n\r\nHello\./, 'added at the end of the header section');
      const b = find(/replaced by the milter/);
      assert.ok(b);
      assert.match(b.body, /\r\n\r\nThe body, replaced by the milter\.\r\n$/);
      const e = msgs.find((m) => m.body.includes('CHGFROM'));
      assert.ok(e);
      assert.equal(e.stored.envelope.sender, 'changed@test.example');
      assert.deepEqual(e.stored.envelope.recipients.map((r) => r.address).sort(), ['added@test.example', 'b@test.example']);
      const held = msgs.find((m) => m.body.includes('QUARANTINE'));
      assert.ok(held);
      const outcomes = [...held.stored.outcomes.values()].flat();
      assert.ok(outcomes.some((o) => o.kind === 'held'), 'quarantined: held in the queue');
      assert.ok(d.logs.some((l) => /held.*held by the milter/.test(l)));
      assert.ok(d.logs.some((l) => /filter rewritten/.test(l)));
    } finally {
      d.cleanup();
    }
  });
});

test('milter refusals: MAIL tempfail, one recipient rejected, the message rejected, a custom reply, discard', async () => {
  await withMilter(async (sock, dir) => {
    const d = await startFiltered(`filter "py" milter "unix:${sock}"`, 'py', dir);
    try {
      assert.match((await send(d.port, 'tempfail@client.test.example', ['b@test.example'], '')).mail, /^451 4\.7\.1 /);
      const r = await send(d.port, 'a@client.test.example', ['reject@test.example', 'b@test.example'], MESSAGE(''));
      assert.equal(r.rcpts[0], '550 5.7.1 Recipient refused by the milter');
      assert.match(r.rcpts[1] ?? '', /^250 /);
      assert.match(r.end ?? '', /^250 /);
      assert.match((await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('REJECTMSG'))).end ?? '', /^550 5\.7\.1 /);
      assert.equal((await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('CUSTOMREPLY'))).end, '554 5.7.0 Custom refusal from the milter');
      assert.match((await send(d.port, 'a@client.test.example', ['b@test.example'], MESSAGE('DISCARD'))).end ?? '', /^250 /);
      await d.stop();
      const msgs = await spoolMessages(join(dir, 'spool'));
      assert.equal(msgs.length, 1, 'only the message with one refused recipient is queued');
      assert.ok(d.logs.some((l) => /discarded/.test(l)));
    } finally {
      d.cleanup();
    }
  });
});

test('milter failures: refused connection (tempfail and accept defaults), timeout, malformed answer — logged, the daemon lives on', async () => {
  const dir = tempDir('postern-milter-fail-');
  const bad = join(dir, 'bad.py');
  writeFileSync(
    bad,
    `import socket, os, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(5)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b'\\xff\\xff\\xff\\xffO')
    c.close()
`,
  );
  const badSock = join(dir, 'bad.sock');
  const badMilter = startHelper(PY, [bad, badSock]);
  await waitFor(socketExists(badSock), 'the malformed milter');
  await withMilter(async (sock) => {
    const filters = [
      `filter "gone" milter "unix:${dir}/nothing.sock"`,
      `filter "gone-ok" milter "unix:${dir}/nothing.sock" default-action accept`,
      `filter "gone-no" milter "unix:${dir}/nothing.sock" default-action reject`,
      `filter "slow" milter "unix:${sock}" command-timeout 1s`,
      `filter "bad" milter "unix:${badSock}"`,
    ].join('\n');
    const listeners = ['gone-ok', 'gone-no', 'slow', 'bad'].map((n) => `listen on 127.0.0.1 port 0 filter ${n}`).join('\n');
    const d = await startFiltered(filters, 'gone', dir, listeners);
    try {
      const [gone, goneOk, goneNo, slow, malformed] = d.ports;
      const g = await send(gone!, 'a@client.test.example', ['b@test.example'], MESSAGE(''));
      assert.equal(g.mail, '451 4.7.1 Service unavailable - try again later');
      assert.match((await send(goneOk!, 'a@client.test.example', ['b@test.example'], MESSAGE(''))).end ?? '', /^250 /, 'default-action accept: as if there were no milter');
      assert.equal((await send(goneNo!, 'a@client.test.example', ['b@test.example'], MESSAGE(''))).mail, '550 5.7.1 Command rejected');
      // The timeout: MAIL from hang@ is never answered; the session gets 451, and its next MAIL too.
      const c = await RawClient.open(slow!, '127.0.0.1');
      await c.reply();
      c.send('EHLO client.test.example\r\n');
      await c.reply();
      assert.equal((await send(slow!, 'hang@client.test.example', ['b@test.example'], '', c)).mail, '451 4.7.1 Service unavailable - try again later');
      assert.equal((await send(slow!, 'a@client.test.example', ['b@test.example'], '', c)).mail, '451 4.7.1 Service unavailable - try again later');
      c.close();
      assert.equal((await send(malformed!, 'a@client.test.example', ['b@test.example'], MESSAGE(''))).mail, '451 4.7.1 Service unavailable - try again later');
      // Each failure is logged with its reason and the default action.
      await d.waitForLog(/milter-failed.*filter=gone .*cannot connect.*action=tempfail/);
      await d.waitForLog(/milter-failed.*filter=slow .*timeout after 1000 ms/);
      await d.waitForLog(/milter-failed.*filter=bad .*malformed/);
      // The daemon lives on, and the working listener still takes mail.
      assert.match((await send(goneOk!, 'a@client.test.example', ['b@test.example'], MESSAGE(''))).end ?? '', /^250 /);
    } finally {
      d.cleanup();
      await badMilter.stop();
    }
  });
});
