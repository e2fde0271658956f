/*
 * test/e2e/mta-postern.test.ts — the relay client against Postern's own
 * SMTP server (a whole daemon in process): pipelined BDAT, per-recipient
 * results, the message stored byte for byte as it should be.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startInProcess } from '../helpers/inproc.js';
import { actionOf, configFrom, makeAgent, makeTask } from '../helpers/mta-peers.js';

test('relay to another Postern (in process): pipelined BDAT, per-recipient results, the message stored intact', async () => {
  const p = await startInProcess(`queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "other.test.example"
listen on 127.0.0.1 port 0
action "local" mbox
match from any for domain "test.example" action "local"
`);
  try {
    const cfg = configFrom(`hostname "mail.postern.test"\naction "r" relay host smtp://127.0.0.1:${p.port}\nmatch from any for any action "r"\n`);
    const h = makeAgent({ config: cfg });
    const body = 'Subject: to postern\r\n\r\n.\r\n..two\r\nx\n.\ny\r\nend\r\n';
    const rs = await h.agent.deliver(makeTask({ action: actionOf(cfg, 'r'), rcpts: ['root@test.example', 'nobody-here@test.example'], body }));
    assert.deepEqual(rs.map((r) => `${r.status} ${r.enhanced}`), ['ok 2.0.0', 'permfail 5.1.1']);
    const [m] = await p.messages();
    assert.ok(m);
    assert.ok(m.body.endsWith('Subject: to postern\r\n\r\n.\r\n..two\r\nx\r\n.\r\ny\r\nend\r\n'), m.body);
    await h.agent.close();
  } finally {
    await p.close();
  }
});
