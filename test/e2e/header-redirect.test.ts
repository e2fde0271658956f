/*
 * End to end: a header check's REDIRECT (Postfix's `REDIRECT user@domain`)
 * in the built smtpd, with swaks as the client from 127.0.22.0/24: the
 * message is queued for the redirect address instead of its recipients,
 * the header stays, the change is logged; mail no rule matches keeps its
 * recipients; a redirect address no rule accepts is a logged 451 4.3.0.
 * Deliveries are paused (the test helper's -P mta): only what is queued is
 * checked.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { requireTool, run } from '../helpers/tools.js';

let d: DaemonHandle | undefined;
after(async () => {
  await d?.stop();
});

const CONFIG = `queue path "$DIR/spool"
hostname "mx.test.example"
listen on 127.0.22.1 port 0
header-checks "$DIR/header_checks"
action "onward" relay
match from any for domain "test.example" action "onward"
`;

async function swaks(port: number, to: string[], headers: string[]): Promise<string> {
  const r = await run(requireTool('swaks'), ['--server', '127.0.22.1', '--port', String(port), '--local-interface', '127.0.22.2', '--helo', 'client.sender.test', '--from', 'a@sender.test', '--to', to.join(','), ...headers.flatMap((h) => ['--add-header', h])]);
  return r.stdout + r.stderr;
}

test('REDIRECT: the message goes to the rule\'s address instead of its recipients, and the header stays', async () => {
  const dir = tempDir();
  writeFileSync(`${dir}/header_checks`, '/^X-Spam-Level: \\*{5}/ REDIRECT spamtrap@test.example\n/^X-Elsewhere:/ REDIRECT someone@elsewhere.example\n');
  d = await startDaemon(CONFIG, { dir });
  const out = await swaks(d.port, ['alice@test.example', 'bob@test.example'], ['X-Spam-Level: ******', 'Subject: redirected']);
  assert.match(out, /<-  250 2\.0\.0 /);
  await d.waitForLog(/smtp redirected session=\S+ msgid=\S+ from=<a@sender\.test> to="?<alice@test\.example>,<bob@test\.example>"? reason="header checks \S+:1: REDIRECT to <spamtrap@test\.example> on \\"X-Spam-Level: \*+\\""/);
  assert.match(await swaks(d.port, ['carol@test.example'], ['Subject: kept']), /<-  250 2\.0\.0 /);
  // An address no rule accepts: 451 4.3.0, logged; the message is neither queued nor sent anywhere.
  assert.match(await swaks(d.port, ['dave@test.example'], ['X-Elsewhere: yes', 'Subject: unroutable']), /<\*\* 451 4\.3\.0 /);
  await d.waitForLog(/smtp rejected session=\S+ msgid=\S+ reason="header checks \S+:2: REDIRECT to <someone@elsewhere\.example> on \\"X-Elsewhere: yes\\": no rule accepts the address"/);
  const msgs = await spoolMessages(`${d.dir}/spool`);
  assert.equal(msgs.filter((m) => m.body.includes('Subject: unroutable')).length, 0);
  const redirected = msgs.find((m) => m.body.includes('Subject: redirected'));
  assert.ok(redirected);
  assert.deepEqual(redirected.stored.envelope.recipients.map((r) => r.address), ['spamtrap@test.example']);
  assert.match(redirected.body, /X-Spam-Level: \*{6}/);
  const kept = msgs.find((m) => m.body.includes('Subject: kept'));
  assert.deepEqual(kept?.stored.envelope.recipients.map((r) => r.address), ['carol@test.example']);
});
