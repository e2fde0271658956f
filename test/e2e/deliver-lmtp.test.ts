/*
 * test/e2e/deliver-lmtp.test.ts — `lmtp "host:port"` through the running
 * smtpd, to a real LMTP server (Python's aiosmtpd, Debian package
 * python3-aiosmtpd) that accepts one recipient and refuses the other at
 * RCPT: the accepted one is delivered, the refused one bounces with the
 * server's reply as the DSN's Diagnostic-Code (the sender is a local mbox
 * user, so the report is read back with Python's email package).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { python } from '../helpers/tools.js';
import { HEAD, field, fileLines, message, readReports, sendOk, startSite, testDir, usersTable, waitFor, writeFiles, type Cleanup } from './deliver-helpers.js';

const LMTPD = String.raw`
import asyncio, json, sys
from aiosmtpd.lmtp import LMTP

out = sys.argv[1]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split('@')[0] == 'refused':
            return '550 5.1.1 <%s>: no such mailbox here' % address
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        rec = {'lhlo': session.host_name, 'mail_from': envelope.mail_from, 'mail_options': envelope.mail_options,
               'rcpt_tos': envelope.rcpt_tos, 'content': envelope.original_content.decode('latin1')}
        with open(out, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        return '\r\n'.join('250 2.0.0 <%s> stored' % r for r in envelope.rcpt_tos)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: LMTP(Handler(), decode_data=False, hostname='lmtp.test'), '127.0.0.1', 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
`;

interface Received {
  readonly lhlo: string;
  readonly mail_from: string;
  readonly mail_options: string[];
  readonly rcpt_tos: string[];
  readonly content: string;
}

/** aiosmtpd's LMTP server on 127.0.0.1; its port. */
async function startLmtpd(t: Cleanup, dir: string): Promise<number> {
  const p = spawn(python(), ['-c', LMTPD, join(dir, 'lmtp.jsonl')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    p.kill('SIGKILL');
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aiosmtpd LMTP did not start: ${stderr}`)), 15_000);
    createInterface({ input: p.stdout }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    p.once('exit', (code) => reject(new Error(`aiosmtpd LMTP exited ${code}: ${stderr} (install python3-aiosmtpd)`)));
  });
  return Number(line.trim());
}

describe('lmtp delivery through the daemon', () => {
  it('one recipient accepted by the LMTP server, one refused: delivered, and a bounce with the server\'s reply', async (t) => {
    const dir = testDir(t);
    const port = await startLmtpd(t, dir);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'refused', 'carol']) });
    const d = await startSite(
      dir,
      `${HEAD}
table users file:$DIR/users
action "lmtp" lmtp "127.0.0.1:${port}" rcpt-to userbase <users>
action "local" mbox userbase <users>
match from any for domain "lmtp.example" action "lmtp"
match from any for domain "test.example" action "local"
`,
    );
    await sendOk(d.port, {
      from: 'carol@test.example',
      to: ['alice@lmtp.example', 'refused@lmtp.example'],
      rcptOptions: [[], ['NOTIFY=FAILURE', 'ORCPT=rfc822;refused@lmtp.example']],
      data: message({ Subject: 'over lmtp', From: 'carol@test.example' }, 'line one\n.\n..two dots\nFrom the end\n'),
    });
    const got = await waitFor('the LMTP server to get the message', () => {
      const ls = fileLines(join(dir, 'lmtp.jsonl'));
      return ls.length > 0 ? ls.map((l) => JSON.parse(l) as Received) : undefined;
    }, { daemon: d });
    const okLine = await waitFor('the delivery log', () => d.logs.find((l) => l.startsWith('mda delivery ok') && l.includes('to=<alice@lmtp.example>')), { daemon: d });
    assert.match(okLine, /action=lmtp .*stat="2\.0\.0 lmtp .*250 2\.0\.0 <alice@lmtp\.example> stored"/);
    const fail = await waitFor('the refusal', () => d.logs.find((l) => l.startsWith('mda delivery permfail') && l.includes('to=<refused@lmtp.example>')), { daemon: d });
    assert.match(fail, /stat="5\.1\.1 .*550 5\.1\.1 <refused@lmtp\.example>: no such mailbox here"/);

    // One transaction per local user (the scheduler's key): alice's carried only alice.
    const [m] = got;
    assert.equal(got.length, 1);
    assert.equal(m?.lhlo, 'mx.test.example');
    assert.equal(m?.mail_from, 'carol@test.example');
    assert.deepEqual(m?.rcpt_tos, ['alice@lmtp.example']);
    // LMTP gets the message as queued (CRLF, no Return-Path/Delivered-To added), dots unstuffed by the server.
    assert.match(m?.content ?? '', /^Received: from client\.test \(localhost \[127\.0\.0\.1\]\)\r\n\tby mx\.test\.example \(Postern\) with ESMTP id [0-9a-f]{8};\r\n/);
    assert.ok(m?.content.endsWith('Subject: over lmtp\r\nFrom: carol@test.example\r\n\r\nline one\r\n.\r\n..two dots\r\nFrom the end\r\n'), m?.content);

    // The bounce for the refused recipient, in carol's mbox.
    const [report] = await waitFor('the bounce in carol\'s mbox', async () => {
      const rs = await readReports(join(dir, 'mail', 'carol'));
      return rs.length > 0 ? rs : undefined;
    }, { daemon: d });
    assert.equal(report?.type, 'multipart/report');
    const status = report?.parts.find((p) => p.type === 'message/delivery-status');
    const rcpt = status?.blocks?.[1];
    assert.equal(status?.blocks?.length, 2, 'one recipient block: alice was delivered');
    assert.equal(field(rcpt, 'Original-Recipient'), 'rfc822;refused@lmtp.example');
    assert.equal(field(rcpt, 'Final-Recipient'), 'rfc822;refused@lmtp.example');
    assert.equal(field(rcpt, 'Action'), 'failed');
    assert.equal(field(rcpt, 'Status'), '5.1.1');
    assert.equal(field(rcpt, 'Remote-MTA'), 'dns; 127.0.0.1');
    assert.equal(field(rcpt, 'Diagnostic-Code'), 'smtp; 550 5.1.1 <refused@lmtp.example>: no such mailbox here');
    assert.ok(readFileSync(join(dir, 'mail', 'carol'), 'latin1').startsWith('From MAILER-DAEMON '));
  });
});
