/*
 * The rules file with a plain smtpd.conf (relaying only for this machine),
 * through the real `smtpd` binary: what an `allow` names is relayed — and
 * queued for the relay agent — exactly that and no more; a rules file that
 * refuses what it does not allow gives no open-relay warning.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';

const RULES = `# 127.0.0.5 is a customer network allowed to relay; our domain takes mail from anyone
allow:127.0.0.5:ALL:ALL
allow:ALL:ALL:*@test.example
noto:ALL:ALL:ALL:550 Relaying to %T denied to %I
`;

const SMTPD_CONF = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
rules "$DIR/smtpd_check_rules"
action "local" mbox
action "relay" relay
match from any for domain "test.example" action "local"
match from local for any action "relay"
match from any for any action "relay"
`;

let d: DaemonHandle;

before(async () => {
  const dir = tempDir('postern-obtuse-relay-');
  writeFileSync(join(dir, 'smtpd_check_rules'), RULES);
  d = await startDaemon(SMTPD_CONF, { dir });
});

after(() => d.cleanup());

async function from(address: string, rcpt: string, want: string): Promise<string> {
  const c = await RawClient.open(d.port, '127.0.0.1', address);
  try {
    const got = await dialogue(c, `S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<${rcpt}>\nS: ${want}\nC: QUIT\nS: 221`);
    return got[3]?.text ?? '';
  } finally {
    c.close();
  }
}

test('allow relays what it allows, and nothing else', async () => {
  const c = await RawClient.open(d.port, '127.0.0.1', '127.0.0.5');
  try {
    await dialogue(c, 'S: 220\nC: EHLO customer.example\nS: 250\nC: MAIL FROM:<a@customer.example>\nS: 250\nC: RCPT TO:<friend@elsewhere.example>\nS: 250 2.1.5\nC: DATA\nS: 354\nC: Subject: relayed\nC:\nC: hello\nC: .\nS: 250\nC: QUIT\nS: 221');
  } finally {
    c.close();
  }
  await d.waitForLog(/smtp envelope .*to=<friend@elsewhere\.example> action=relay/);
  assert.ok(d.logs.some((l) => /smtp connected .*address=127\.0\.0\.5 .*listener=127\.0\.0\.1:[1-9]/.test(l)), 'the listener names the bound port');
  assert.equal(await from('127.0.0.6', 'friend@elsewhere.example', '550'), '550 5.7.1 Relaying to <friend@elsewhere.example> denied to 127.0.0.6');
  await from('127.0.0.6', 'root@test.example', '250 2.1.5');
});

test('smtpd.conf\'s "from any for any" relay rule is behind a closed rules file: no open-relay warning', () => {
  assert.ok(!d.logs.some((l) => /open relay/.test(l)), d.logs.filter((l) => /warn/.test(l)).join('\n'));
});
