/*
 * Reload (`smtpctl reload`, SIGHUP) reads the policy files again with
 * smtpd.conf: a changed smtpserver.conf PARAM shows in the one
 * configuration and in what new sessions answer; a broken one is refused
 * with its FILE:LINE and the daemon keeps the running configuration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile, formatDiagnostic } from '../../src/config/load.js';
import { MailLog } from '../../src/log/maillog.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { basicConfig, tempDir } from '../helpers/daemon.js';

/** HELP's reply text from a new session. */
async function help(d: Daemon): Promise<string> {
  const c = await RawClient.open(d.server.listeners[0]?.port ?? 0, '127.0.0.1');
  try {
    const got = await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: HELP\nS: 214');
    return got[2]?.lines.map((l) => l.slice(4)).join('\n') ?? '';
  } finally {
    c.close();
  }
}

test('reload re-reads smtpserver.conf: its PARAMs in the configuration and in new sessions; a broken file is refused', async () => {
  const dir = tempDir();
  const zm = join(dir, 'smtpserver.conf');
  const file = join(dir, 'smtpd.conf');
  writeFileSync(zm, 'PARAM help first\nPARAM RcptLimitCount 200\n');
  writeFileSync(file, basicConfig(`smtpserver-conf "${zm}"`).replaceAll('$DIR', dir));
  const r = loadConfigFile(file);
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  const logs: string[] = [];
  const d = await Daemon.start(r.config, new MailLog({ sink: (l) => logs.push(l) }), { pause: ['mda', 'mta'], source: { file } });
  try {
    assert.equal(d.config.smtp.maxRcpt, 200);
    assert.ok(Object.isFrozen(d.config.smtp));
    assert.match(await help(d), /first/);

    writeFileSync(zm, 'PARAM help second\nPARAM RcptLimitCount 300\n');
    assert.deepEqual(await d.reload(), { ok: true });
    assert.equal(d.config.smtp.maxRcpt, 300);
    assert.match(await help(d), /second/);

    writeFileSync(zm, 'PARAM help third\nPARAM RcptLimitCont 400\n');
    const bad = await d.reload();
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.error, new RegExp(`^${zm}:2: unknown PARAM "RcptLimitCont"`));
    assert.equal(d.config.smtp.maxRcpt, 300, 'the running configuration is kept');
    assert.match(await help(d), /second/);
  } finally {
    await d.shutdown('test over', 2000);
    rmSync(dir, { recursive: true, force: true });
  }
});
