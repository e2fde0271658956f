/*
 * test/e2e/delivery-lmtp.test.ts — the LMTP agent against a real LMTP
 * server: Python's aiosmtpd (Debian package python3-aiosmtpd), over TCP and
 * over a Unix socket. One transaction carries recipients that are accepted,
 * refused at RCPT, and answered 4xx/5xx after DATA: each gets its own result;
 * later messages reuse the connection; with PIPELINING (a small server of
 * our own, as aiosmtpd does not offer it) MAIL, RCPT and DATA go in one
 * write, and a kept session the server closed is replaced.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { FakeUsers, actionOf, agent, config, message, statuses, task, tmpDir } from '../unit/delivery-helpers.js';
import { python } from '../helpers/tools.js';

const SERVER = `
import asyncio, json, sys
from aiosmtpd.lmtp import LMTP

mode, where, out = sys.argv[1], sys.argv[2], sys.argv[3]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split('@')[0] == 'nobody':
            return '550 5.1.1 <%s>: no such user' % address
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        rec = {'conn': id(session), 'lhlo': session.host_name, 'mail_from': envelope.mail_from, 'mail_options': envelope.mail_options,
               'rcpt_tos': envelope.rcpt_tos, 'content': envelope.original_content.decode('latin1')}
        with open(out, 'a') as f:
            f.write(json.dumps(rec) + '\\n')
        replies = []
        for r in envelope.rcpt_tos:
            local = r.split('@')[0]
            if local == 'full':
                replies.append('452 4.2.2 <%s>: mailbox full' % r)
            elif local == 'quota':
                replies.append('552 5.2.2 <%s>: over quota for good' % r)
            else:
                replies.append('250 2.0.0 <%s> delivered' % r)
        return '\\r\\n'.join(replies)

async def main():
    loop = asyncio.get_running_loop()
    factory = lambda: LMTP(Handler(), decode_data=False, enable_SMTPUTF8=True, hostname='lmtp.test')
    if mode == 'unix':
        server = await loop.create_unix_server(factory, where)
        print('ready', flush=True)
    else:
        server = await loop.create_server(factory, '127.0.0.1', 0)
        print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
`;

async function startServer(t: { after(fn: () => void): void }, dir: string, mode: 'tcp' | 'unix'): Promise<{ destination: string; log: string }> {
  const script = join(dir, 'lmtpd.py');
  writeFileSync(script, SERVER);
  const log = join(dir, 'received.jsonl');
  const sock = join(dir, 'lmtp.sock');
  const p: ChildProcess = spawn(python(), [script, mode, sock, log], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => p.kill('SIGKILL'));
  let stderr = '';
  p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: p.stdout! });
    rl.once('line', resolve);
    p.once('exit', (code) => reject(new Error(`aiosmtpd LMTP server exited ${code}: ${stderr} (install python3-aiosmtpd)`)));
  });
  return { destination: mode === 'unix' ? sock : `127.0.0.1:${line.trim()}`, log };
}

interface Received {
  conn: number;
  lhlo: string;
  mail_from: string;
  mail_options: string[];
  rcpt_tos: string[];
  content: string;
}

function received(log: string): Received[] {
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Received);
}

const BODY = 'first line\r\n.\r\n..two dots\r\n.hidden\r\nnot.a.dot\r\n\r\n.\r\nlast';

for (const mode of ['tcp', 'unix'] as const) {
  describe(`lmtp delivery over ${mode}`, () => {
    it('gives each recipient its own result from one transaction', async (t) => {
      const dir = tmpDir(t);
      const { destination, log } = await startServer(t, dir, mode);
      const c = config(`action "lmtp" lmtp "${destination}"\nmatch from any for local action "lmtp"\n`);
      const a = agent({ config: c, users: new FakeUsers({}) });
      const msg = message({ Subject: 'over lmtp', 'Message-ID': '<1@x>' }, BODY);
      const rs = await a.deliver(task({ action: actionOf(c, 'lmtp'), recipients: ['bob@example.org', 'nobody@example.org', 'full@example.org', 'quota@example.org', 'carol+tag@example.org'], message: msg, chunk: 9 }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0', 'permfail 5.1.1', 'tempfail 4.2.2', 'permfail 5.2.2', 'ok 2.0.0']);
      assert.match(rs[0]?.detail ?? '', /^lmtp .*: 250 2\.0\.0 <bob> delivered$/);
      assert.match(rs[1]?.detail ?? '', /RCPT TO:<nobody>: 550 5\.1\.1 <nobody>: no such user/);
      assert.equal(rs[1]?.diagnostic, 'smtp; 550 5.1.1 <nobody>: no such user');
      assert.equal(rs[0]?.remoteMta, mode === 'tcp' ? 'dns; 127.0.0.1' : undefined);
      const [r] = received(log);
      assert.ok(r);
      assert.equal(r.lhlo, 'mx.example.org');
      assert.equal(r.mail_from, 'alice@example.net');
      assert.deepEqual(r.mail_options, ['BODY=8BITMIME']);
      // Without rcpt-to, the local user is the LMTP recipient (+extension dropped).
      assert.deepEqual(r.rcpt_tos, ['bob', 'full', 'quota', 'carol']);
      // Dot-stuffing undone by the server gives the message back byte for byte (a final CRLF added).
      assert.equal(r.content, `${msg.toString('latin1')}\r\n`);
    });

    it('carries message after message on one connection', async (t) => {
      const dir = tmpDir(t);
      const { destination, log } = await startServer(t, dir, mode);
      const c = config(`action "lmtp" lmtp "${destination}"\nmatch from any for local action "lmtp"\n`);
      const a = agent({ config: c, users: new FakeUsers({}) });
      for (const n of [1, 2, 3]) {
        const rs = await a.deliver(task({ action: actionOf(c, 'lmtp'), recipients: [`bob${n}@example.org`, 'nobody@example.org'], message: message({ Subject: `m${n}` }, `x${n}`) }));
        assert.deepEqual(statuses(rs), ['ok 2.0.0', 'permfail 5.1.1']);
      }
      const got = received(log);
      assert.deepEqual(got.map((r) => r.rcpt_tos), [['bob1'], ['bob2'], ['bob3']]);
      assert.equal(new Set(got.map((r) => r.conn)).size, 1, 'one connection');
      a.close();
    });

    it('sends full addresses with rcpt-to', async (t) => {
      const dir = tmpDir(t);
      const { destination, log } = await startServer(t, dir, mode);
      const c = config(`action "lmtp" lmtp "${destination}" rcpt-to\nmatch from any for local action "lmtp"\n`);
      const a = agent({ config: c, users: new FakeUsers({}) });
      const rs = await a.deliver(task({ action: actionOf(c, 'lmtp'), recipients: ['Bob+tag@example.org', 'nobody@example.org'], sender: '', message: message({ Subject: 'x' }, 'x') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0', 'permfail 5.1.1']);
      const [r] = received(log);
      assert.deepEqual(r?.rcpt_tos, ['Bob+tag@example.org']);
      assert.equal(r?.mail_from, '<>'); // aiosmtpd's spelling of the null sender
    });
  });
}

describe('lmtp failures', () => {
  it('defers every recipient when the server cannot be reached', async (t) => {
    const dir = tmpDir(t);
    const c = config(`action "a" lmtp "127.0.0.1:1"\naction "b" lmtp "${dir}/none.sock"\nmatch from any for local action "a"\nmatch from any for local action "b"\n`);
    const a = agent({ config: c, users: new FakeUsers({}) });
    for (const name of ['a', 'b']) {
      const rs = await a.deliver(task({ action: actionOf(c, name), recipients: ['bob@example.org', 'carol@example.org'], message: message({ Subject: 'x' }, 'x') }));
      assert.deepEqual(statuses(rs), ['tempfail 4.4.1', 'tempfail 4.4.1'], name);
      assert.match(rs[0]?.detail ?? '', /cannot connect/);
    }
  });

  it('defers what was not answered when the server goes away after DATA', async (t) => {
    const server = createServer((s) => {
      s.write('220 hi\r\n');
      let buf = '';
      let replies = 0;
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (replies >= 5) {
            if (line === '.') {
              s.write('250 2.0.0 first ok\r\n');
              s.destroy();
            }
            continue;
          }
          replies++;
          s.write(line.startsWith('LHLO') ? '250-hi\r\n250 PIPELINING\r\n' : line === 'DATA' ? '354 go\r\n' : '250 ok\r\n');
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const c = config(`action "a" lmtp "127.0.0.1:${port}"\nmatch from any for local action "a"\n`);
    const a = agent({ config: c, users: new FakeUsers({}) });
    const rs = await a.deliver(task({ action: actionOf(c, 'a'), recipients: ['bob@example.org', 'carol@example.org'], message: message({ Subject: 'x' }, 'x') }));
    assert.deepEqual(statuses(rs), ['ok 2.0.0', 'tempfail 4.4.2']);
  });

  for (const chunking of [false, true]) {
    it(`pipelines MAIL, RCPT and ${chunking ? 'BDAT with the message' : 'DATA'}, and replaces a kept session the server closed before answering MAIL`, async (t) => {
      // A server that offers PIPELINING (and CHUNKING) and hangs up, unanswered, on the second MAIL of a connection.
      const conns: string[][] = [];
      const contents: string[] = [];
      const server = createServer((s) => {
        const seen: string[] = [];
        conns.push(seen);
        s.write('220 hi\r\n');
        let buf = '';
        let inData = false;
        let content = '';
        let mails = 0;
        let rcpts = 0;
        s.on('data', (d: Buffer) => {
          seen.push(d.toString('latin1'));
          buf += d.toString('latin1');
          for (;;) {
            if (inData) {
              const end = buf.indexOf('\r\n.\r\n');
              if (end < 0) return;
              contents.push(buf.slice(0, end + 2));
              buf = buf.slice(end + 5);
              inData = false;
              s.write('250 2.0.0 ok\r\n'.repeat(rcpts));
              continue;
            }
            const i = buf.indexOf('\r\n');
            if (i < 0) return;
            const line = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const bdat = /^BDAT (\d+) LAST$/.exec(line);
            if (line.startsWith('LHLO')) s.write(`250-hi\r\n${chunking ? '250-CHUNKING\r\n' : ''}250 PIPELINING\r\n`);
            else if (line.startsWith('MAIL')) {
              if (++mails === 2) return void s.destroy();
              rcpts = 0;
              s.write('250 ok\r\n');
            } else if (line.startsWith('RCPT')) {
              rcpts++;
              s.write('250 ok\r\n');
            } else if (line === 'DATA') {
              inData = true;
              s.write('354 go\r\n');
            } else if (bdat) {
              const n = Number(bdat[1]);
              contents.push(buf.slice(0, n));
              buf = buf.slice(n);
              s.write('250 2.0.0 ok\r\n'.repeat(rcpts));
            } else s.write('221 bye\r\n');
          }
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      t.after(() => server.close());
      const port = (server.address() as { port: number }).port;
      const c = config(`action "a" lmtp "127.0.0.1:${port}"\nmatch from any for local action "a"\n`);
      const a = agent({ config: c, users: new FakeUsers({}) });
      const msgs = [message({ Subject: 'm1' }, '.dot\r\nx'), message({ Subject: 'm2' }, 'y\r\n')];
      for (const msg of msgs) {
        const rs = await a.deliver(task({ action: actionOf(c, 'a'), recipients: ['bob@example.org', 'carol@example.org'], message: msg }));
        assert.deepEqual(statuses(rs), ['ok 2.0.0', 'ok 2.0.0'], rs[0]?.detail);
      }
      assert.equal(conns.length, 2, 'the closed session was replaced by one new connection');
      // After LHLO, the first write of each transaction holds MAIL, both RCPTs and DATA, or BDAT and the message itself.
      const commands = 'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob>\r\nRCPT TO:<carol>\r\n';
      conns.forEach((seen, k) => {
        const m = msgs[k]?.toString('latin1') ?? '';
        const body = m.endsWith('\r\n') ? m : `${m}\r\n`;
        assert.ok(seen.includes(chunking ? `${commands}BDAT ${body.length} LAST\r\n${body}` : `${commands}DATA\r\n`), JSON.stringify(seen));
      });
      // The message as it was, dot-stuffing undone (DATA) or never done (BDAT), a final CRLF added.
      assert.deepEqual(contents.map((x) => x.replace(/^\.\./m, '.')), msgs.map((m) => (m.toString('latin1').endsWith('\r\n') ? m.toString('latin1') : `${m.toString('latin1')}\r\n`)));
      a.close();
    });
  }
});
