/*
 * The abuse limits set from smtpd.conf (no ZMailer file): connections per
 * address and in total, the hard error limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dialogue, RawClient } from '../helpers/smtp-client.js';
import { startInProcess } from '../helpers/inproc.js';
import { basicConfig } from '../helpers/daemon.js';
import { loadConfigText } from '../../src/config/load.js';
import { loadavg } from 'node:os';

test('the limit statements parse, and 0 turns a limit off', () => {
  const r = loadConfigText('listen on 127.0.0.1\nsmtp limit max-connections 0 max-connections-per-address 3 soft-errors 2 hard-errors 4\nsmtp min-data-rate 0\nsmtp noto-delay 0\nsmtp deny-delay 5s\n', 't.conf');
  assert.ok(r.config, r.diagnostics.map((d) => d.message).join('\n'));
  const s = r.config.smtp;
  assert.deepEqual([s.maxConnections, s.maxConnectionsPerAddress, s.softErrorLimit, s.hardErrorLimit, s.minDataRate, s.notoDelayMs, s.denyDelayMs], [0, 3, 2, 4, 0, 0, 5000]);
  assert.ok(!loadConfigText('smtp limit max-connections lots\n', 't.conf').config);
});

test('smtp limit max-connections-per-address: the next client from that address gets 421 and is closed', async () => {
  const srv = await startInProcess(basicConfig('smtp limit max-connections-per-address 2'));
  const held: RawClient[] = [];
  for (let i = 0; i < 2; i++) {
    const c = await srv.client('127.0.0.2');
    await dialogue(c, 'S: 220');
    held.push(c);
  }
  const third = await srv.client('127.0.0.2');
  await dialogue(third, 'S: 421\nCLOSED');
  const other = await srv.client('127.0.0.3');
  await dialogue(other, 'S: 220\nC: QUIT\nS: 221');
  for (const c of [...held, third, other]) c.close();
  await srv.close();
});

test('smtp limit hard-errors: 421 and close after that many errors', async () => {
  const srv = await startInProcess(basicConfig('smtp limit hard-errors 3\nsmtp limit soft-errors 0'));
  const c = await srv.client();
  await dialogue(c, 'S: 220\nC: MAIL FROM:<a@b.example>\nS: 503\nC: RCPT TO:<a@b.example>\nS: 503\nC: DATA\nS: 503\nC: NOOP\nS: 421\nCLOSED');
  c.close();
  await srv.close();
});

test('smtp max-load-average: above it, new sessions get 421 4.3.2', async () => {
  assert.ok(!loadConfigText('smtp max-load-average high\n', 't.conf').config);
  const srv = await startInProcess(basicConfig('smtp max-load-average 0.000001'));
  const c = await srv.client();
  const r = await c.reply();
  // The test suite itself keeps the 1-minute load average above a millionth.
  if (loadavg()[0]! > 0.000001) assert.match(r.text, /^421 4\.3\.2 /);
  c.close();
  await srv.close();
  const calm = await startInProcess(basicConfig('smtp max-load-average 100000'));
  const c2 = await calm.client();
  assert.equal((await c2.reply()).code, 220);
  c2.close();
  await calm.close();
});
