/*
 * test/e2e/mta-protocol.test.ts — the relay client's SMTP dialogue against
 * real servers on loopback: a scripted server (refused recipients, hostile
 * replies, a connection dropped after the final dot, exact bytes of DATA
 * and BDAT) and Postfix's smtp-sink (rejecting and deferring commands,
 * DSN parameters). Recipients are address literals, so each test talks to
 * the server it started.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { actionOf, configFrom, freePort, makeAgent, makeTask, MESSAGE, startScriptedServer, startSmtpSink, type ScriptedOptions, type ScriptedServer } from '../helpers/mta-peers.js';
import type { Action } from '../../src/config/model.js';

let port: number;
let next = 100;
const config = configFrom(`hostname "mail.postern.test"
action "mx" relay helo out.postern.test mail-from "@rewritten.test"
action "plain" relay
match from any for any action "mx"
`);
const mx: Action = actionOf(config, 'plain');

before(async () => {
  port = await freePort(Array.from({ length: 30 }, (_, i) => `127.0.0.${100 + i}`));
});

/** A scripted server on a fresh loopback address; the test's recipients are user@[that address]. */
async function scripted(o: Omit<ScriptedOptions, 'address' | 'port'> = {}): Promise<{ s: ScriptedServer; at: (u: string) => string }> {
  const address = `127.0.0.${next++}`;
  const s = await startScriptedServer({ address, port, ...o });
  return { s, at: (u) => `${u}@[${address}]` };
}

function harness(tuning = {}) {
  return makeAgent({ config, tuning: { port, ...tuning } });
}

test('pipelined delivery of several recipients, one refused: each recipient on its own', async () => {
  const { s, at } = await scripted({ rcpt: (a) => (a.includes('refuse') ? '550 5.1.1 <refuse>: Recipient address rejected: User unknown' : a.includes('later') ? '450 4.2.0 greylisted, come back later' : '250 2.1.5 Ok') });
  try {
    const h = harness();
    const task = makeTask({ action: mx, rcpts: [at('one'), at('refuse'), at('two'), at('later')], body: MESSAGE });
    const rs = await h.agent.deliver(task);
    assert.deepEqual(
      rs.map((r) => `${r.status} ${r.enhanced}`),
      ['ok 2.0.0', 'permfail 5.1.1', 'ok 2.0.0', 'tempfail 4.2.0'],
    );
    assert.match(rs[1]?.detail ?? '', /^host \[127\.0\.0\.\d+\]:\d+ said: 550 5\.1\.1 <refuse>: Recipient address rejected: User unknown \(in reply to RCPT TO command\)$/);
    assert.equal(rs[1]?.diagnostic, 'smtp; 550 5.1.1 <refuse>: Recipient address rejected: User unknown');
    const c = s.connections[0];
    assert.deepEqual(c?.messages[0]?.rcpts, [`TO:<${at('one')}>`, `TO:<${at('two')}>`]);
    // MAIL, every RCPT and DATA came in one segment (PIPELINING).
    const text = c?.received.toString('latin1') ?? '';
    assert.match(text, /MAIL FROM:<alice@origin\.test> SIZE=\d+ BODY=8BITMIME\r\nRCPT TO:<one@\S+>\r\nRCPT TO:<refuse@\S+>\r\nRCPT TO:<two@\S+>\r\nRCPT TO:<later@\S+>\r\nDATA\r\n/);
    assert.equal(h.logs.filter((l) => l.startsWith('mta delivery')).length, 4);
    assert.match(h.logs.join('\n'), /to=<refuse@\S+> relay="127\.0\.0\.\d+ \[127\.0\.0\.\d+\]" delay=\d+s result=PermFail stat="550 5\.1\.1/);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('without PIPELINING, and after a refused EHLO (HELO): one command at a time', async () => {
  const { s, at } = await scripted({ ehlo: null });
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('bob')], body: MESSAGE }));
    assert.equal(r?.status, 'ok', r?.detail);
    assert.deepEqual(s.connections[0]?.commands.slice(0, 5), ['EHLO mail.postern.test', 'HELO mail.postern.test', 'MAIL FROM:<alice@origin.test>', `RCPT TO:<${at('bob')}>`, 'DATA']);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('helo and mail-from options', async () => {
  const { s, at } = await scripted();
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [at('bob')], body: MESSAGE }));
    assert.equal(r?.status, 'ok', r?.detail);
    assert.equal(s.connections[0]?.commands[0], 'EHLO out.postern.test');
    assert.match(s.connections[0]?.commands[1] ?? '', /^MAIL FROM:<alice@rewritten\.test>/);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('4xx, then success on the next attempt', async () => {
  let tries = 0;
  const { s, at } = await scripted({ rcpt: () => (++tries === 1 ? '451 4.3.0 temporary trouble' : '250 2.1.5 Ok') });
  try {
    const h = harness();
    const task = makeTask({ action: mx, rcpts: [at('bob')], body: MESSAGE });
    const [a] = await h.agent.deliver(task);
    assert.equal(`${a?.status} ${a?.enhanced}`, 'tempfail 4.3.0');
    const [b] = await h.agent.deliver({ ...task, attempt: 2 });
    assert.equal(`${b?.status} ${b?.enhanced}`, 'ok 2.0.0');
    assert.equal(s.messages().length, 1);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('smtp-sink: 5xx at RCPT is permanent, 4xx temporary, 5xx at MAIL fails everyone', async () => {
  const addrs = [`127.0.0.${next++}`, `127.0.0.${next++}`, `127.0.0.${next++}`];
  const hard = await startSmtpSink(addrs[0] as string, port, ['-f', 'RCPT']);
  const soft = await startSmtpSink(addrs[1] as string, port, ['-r', 'RCPT']);
  const mail = await startSmtpSink(addrs[2] as string, port, ['-f', 'MAIL']);
  try {
    const h = harness();
    const [p] = await h.agent.deliver(makeTask({ action: mx, rcpts: [`bob@[${addrs[0]}]`], body: MESSAGE }));
    assert.equal(`${p?.status} ${p?.enhanced}`, 'permfail 5.3.0');
    assert.match(p?.detail ?? '', /said: 500 5\.3\.0 Error: command failed \(in reply to RCPT TO command\)/);
    const [t] = await h.agent.deliver(makeTask({ action: mx, rcpts: [`bob@[${addrs[1]}]`], body: MESSAGE }));
    assert.equal(`${t?.status} ${t?.enhanced}`, 'tempfail 4.3.0');
    const ms = await h.agent.deliver(makeTask({ action: mx, rcpts: [`a@[${addrs[2]}]`, `b@[${addrs[2]}]`], body: MESSAGE }));
    assert.deepEqual(ms.map((r) => `${r.status} ${r.enhanced}`), ['permfail 5.3.0', 'permfail 5.3.0']);
    assert.match(ms[0]?.detail ?? '', /in reply to MAIL FROM command/);
    assert.deepEqual([hard, soft, mail].map((x) => x.messages().length), [0, 0, 0]);
    await h.agent.close();
  } finally {
    await Promise.all([hard.close(), soft.close(), mail.close()]);
  }
});

test('DSN parameters pass through to a server that offers DSN (smtp-sink)', async () => {
  const address = `127.0.0.${next++}`;
  const sink = await startSmtpSink(address, port);
  try {
    const h = harness();
    const task = makeTask({
      action: mx,
      rcpts: [{ address: `bob@[${address}]`, notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;Bob+Tag=x@example.test' }],
      body: MESSAGE,
      env: { ret: 'HDRS', envid: 'QQ314159 ab=c' },
    });
    const [r] = await h.agent.deliver(task);
    assert.equal(r?.status, 'ok', r?.detail);
    assert.equal(r?.relayed, undefined, 'the next hop does DSN itself');
    const dump = sink.messages()[0] ?? '';
    assert.match(dump, /X-Mail-Args: <alice@origin\.test> BODY=8BITMIME RET=HDRS ENVID=QQ314159\+20ab\+3Dc/);
    assert.match(dump, /X-Rcpt-Args: <bob@\S+> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob\+2BTag\+3Dx@example\.test/);
    await h.agent.close();
  } finally {
    await sink.close();
  }
});

test('NOTIFY=SUCCESS to a server without DSN: the result asks for a "relayed" DSN', async () => {
  const { s, at } = await scripted();
  try {
    const h = harness();
    const rs = await h.agent.deliver(makeTask({ action: mx, rcpts: [{ address: at('a'), notify: ['SUCCESS'] }, { address: at('b') }], body: MESSAGE }));
    assert.equal(rs[0]?.relayed, true);
    assert.equal(rs[1]?.relayed, undefined);
    assert.doesNotMatch(s.connections[0]?.received.toString('latin1') ?? '', /NOTIFY/);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('a connection dropped after the final dot is a temporary failure (possible duplicate, never a loss)', async () => {
  const { s, at } = await scripted({ afterData: () => 'drop' });
  try {
    const h = harness();
    const rs = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a'), at('b')], body: MESSAGE }));
    assert.deepEqual(rs.map((r) => `${r.status} ${r.enhanced}`), ['tempfail 4.4.2', 'tempfail 4.4.2']);
    assert.match(rs[0]?.detail ?? '', /lost connection with .* after end of data: the message may have been delivered/);
    assert.equal(s.connections.length, 1, 'no other host or connection tried');
    assert.equal(h.agent.idleSessions, 0);
  } finally {
    await s.close();
  }
});

test('no reply to the final dot: timeout, temporary failure', async () => {
  const { s, at } = await scripted({ afterData: () => '' });
  try {
    const h = harness({ timeouts: { dataDone: 300 } });
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: MESSAGE }));
    assert.equal(`${r?.status} ${r?.enhanced}`, 'tempfail 4.4.2');
    assert.match(r?.detail ?? '', /timed out after end of data.*may have been delivered/);
  } finally {
    await s.close();
  }
});

/** Stored message with dot lines and the smuggling shapes (bare LF, bare CR). */
const DOTS = 'Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nx\n.\ny\r\nz\r.\rw\r\n.\r\nend';

test('DATA: the message goes out exactly stuffed, with CRLF line ends, the dot in the same write', async () => {
  const { s, at } = await scripted();
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: DOTS }));
    assert.equal(r?.status, 'ok', r?.detail);
    const raw = s.messages()[0]?.raw.toString('latin1');
    assert.equal(raw, 'Subject: dots\r\n\r\n..\r\n...two\r\n..leading\r\nx\r\n..\r\ny\r\nz\r\n..\r\nw\r\n..\r\nend\r\n.\r\n');
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('DATA through smtp-sink: the message arrives intact after unstuffing', async () => {
  const address = `127.0.0.${next++}`;
  const sink = await startSmtpSink(address, port);
  try {
    const h = harness();
    const body = `Subject: big\r\n\r\n${Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `.line ${i}` : `line ${i} ${'x'.repeat(i % 90)}`)).join('\r\n')}\r\n`;
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [`bob@[${address}]`], body }));
    assert.equal(r?.status, 'ok', r?.detail);
    const dump = sink.messages()[0] ?? '';
    const content = dump.slice(dump.indexOf('Subject: big'));
    assert.equal(content, `${body.replace(/\r\n/g, '\n')}\n`);
    await h.agent.close();
  } finally {
    await sink.close();
  }
});

test('CHUNKING: BDAT carries the normalized message unstuffed; a small message is one round trip', async () => {
  const { s, at } = await scripted({ ehlo: ['PIPELINING', 'CHUNKING', '8BITMIME', 'SIZE 10000000'] });
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: DOTS }));
    assert.equal(r?.status, 'ok', r?.detail);
    const m = s.messages()[0];
    assert.equal(m?.via, 'BDAT');
    assert.equal(m?.raw.toString('latin1'), 'Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nx\r\n.\r\ny\r\nz\r\n.\r\nw\r\n.\r\nend\r\n');
    assert.match(s.connections[0]?.received.toString('latin1') ?? '', /RCPT TO:<a@\S+>\r\nBDAT \d+ LAST\r\nSubject: dots/);
    // A large message: several chunks, the last with LAST.
    const big = `Subject: big\r\n\r\n${'0123456789'.repeat(30_000)}\r\n`;
    const h2 = harness({ bdatChunk: 64 * 1024 });
    const [b] = await h2.agent.deliver(makeTask({ action: mx, rcpts: [at('b')], body: big }));
    assert.equal(b?.status, 'ok', b?.detail);
    const bdats = s.connections.at(-1)?.commands.filter((c) => c.startsWith('BDAT')) ?? [];
    assert.ok(bdats.length > 2, bdats.join());
    assert.match(bdats.at(-1) ?? '', /LAST$/);
    assert.equal(s.messages().at(-1)?.raw.toString('latin1').replace(/\r\n /g, ''), big);
    await h.agent.close();
    await h2.agent.close();
  } finally {
    await s.close();
  }
});

test('a hostile multi-line reply is recorded as one clean, bounded line', async () => {
  const evil = '550-5.7.1 first line\r\n550-\x1b[2J\x07second\r\n550-third\rX-Injected: yes\r\n550 5.7.1 ' + 'A'.repeat(3000);
  const { s, at } = await scripted({ rcpt: () => evil });
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: MESSAGE }));
    assert.equal(`${r?.status} ${r?.enhanced}`, 'permfail 5.7.1');
    for (const v of [r?.detail, r?.diagnostic]) {
      assert.doesNotMatch(v ?? '', /[\x00-\x1f\x7f]/);
      assert.ok((v ?? '').length <= 512);
    }
    assert.match(r?.diagnostic ?? '', /^smtp; 550 5\.7\.1 first line .*second third X-Injected: yes 5\.7\.1 AAAA/);
    for (const l of h.logs) assert.doesNotMatch(l, /[\x00-\x09\x0b-\x1f\x7f]|\n/);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('SIZE: a message larger than the server accepts fails 5.3.4 before MAIL', async () => {
  const { s, at } = await scripted({ ehlo: ['PIPELINING', 'SIZE 100'] });
  try {
    const h = harness();
    const [r] = await h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: MESSAGE + 'x'.repeat(200) }));
    assert.equal(`${r?.status} ${r?.enhanced}`, 'permfail 5.3.4');
    assert.match(r?.detail ?? '', /exceeds size limit 100 of server/);
    assert.equal(s.connections[0]?.commands.some((c) => c.startsWith('MAIL')), false);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('SMTPUTF8 message to a server without SMTPUTF8: 5.6.7; with it: SMTPUTF8 on MAIL', async () => {
  const { s, at } = await scripted({ ehlo: ['PIPELINING', '8BITMIME'] });
  const u = await scripted({ ehlo: ['PIPELINING', '8BITMIME', 'SMTPUTF8'] });
  try {
    const h = harness();
    const env = { smtputf8: true };
    const [r] = await h.agent.deliver(makeTask({ action: mx, sender: 'jürgen@origin.test', rcpts: [at('a')], body: MESSAGE, env }));
    assert.equal(`${r?.status} ${r?.enhanced}`, 'permfail 5.6.7');
    assert.match(r?.detail ?? '', /requires SMTPUTF8/);
    const [ok] = await h.agent.deliver(makeTask({ action: mx, sender: 'jürgen@origin.test', rcpts: [u.at('a')], body: MESSAGE, env }));
    assert.equal(ok?.status, 'ok', ok?.detail);
    assert.equal(u.s.connections[0]?.commands.find((c) => c.startsWith('MAIL')), 'MAIL FROM:<jürgen@origin.test> BODY=8BITMIME SMTPUTF8');
    await h.agent.close();
  } finally {
    await s.close();
    await u.s.close();
  }
});

test('an aborted task stops at once with a temporary failure', async () => {
  const { s, at } = await scripted({ afterData: () => '' });
  try {
    const h = harness();
    const ac = new AbortController();
    const p = h.agent.deliver(makeTask({ action: mx, rcpts: [at('a')], body: MESSAGE, signal: ac.signal }));
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const [r] = await p;
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(r?.status, 'tempfail');
  } finally {
    await s.close();
  }
});

test('IPv6: a smarthost on [::1]', async () => {
  const s = await startScriptedServer({ address: '::1', port: 0 });
  try {
    const cfg = configFrom(`hostname "mail.postern.test"\naction "v6" relay host smtp://[::1]:${s.port}\nmatch from any for any action "v6"\n`);
    const h = makeAgent({ config: cfg });
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(cfg, 'v6'), rcpts: ['bob@far.test'], body: MESSAGE }));
    assert.equal(r?.status, 'ok', r?.detail);
    assert.match(h.logs.join('\n'), new RegExp(`mta connecting address=\\[::1\\]:${s.port} host=::1`));
    assert.match(h.logs.join('\n'), /relay="::1 \[::1\]"/);
    await h.agent.close();
  } finally {
    await s.close();
  }
});

test('LMTP (relay host lmtp://): one reply per recipient after the content (smtp-sink -L)', async () => {
  const address = `127.0.0.${next++}`;
  const sink = await startSmtpSink(address, port, ['-L']);
  try {
    const cfg = configFrom(`hostname "mail.postern.test"\naction "lmtp" relay host lmtp://${address}:${port}\nmatch from any for any action "lmtp"\n`);
    const h = makeAgent({ config: cfg });
    const rs = await h.agent.deliver(makeTask({ action: actionOf(cfg, 'lmtp'), rcpts: ['a@far.test', 'b@far.test'], body: MESSAGE }));
    assert.deepEqual(rs.map((r) => r.status), ['ok', 'ok']);
    assert.match(sink.messages()[0] ?? '', /X-Client-Proto: LMTP/);
    await h.agent.close();
  } finally {
    await sink.close();
  }
});

test('src ADDR binds the local address, helo-src names it (smtp-sink sees both)', async () => {
  const address = `127.0.0.${next++}`;
  const sink = await startSmtpSink(address, port);
  try {
    const cfg = configFrom(`hostname "mail.postern.test"\naction "src" relay src 127.0.0.77 helo-src { 127.0.0.77 = "src.postern.test" }\nmatch from any for any action "src"\n`);
    const h = makeAgent({ config: cfg, tuning: { port } });
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(cfg, 'src'), rcpts: [`bob@[${address}]`], body: MESSAGE }));
    assert.equal(r?.status, 'ok', r?.detail);
    const dump = sink.messages()[0] ?? '';
    assert.match(dump, /^X-Client-Addr: 127\.0\.0\.77$/m);
    assert.match(dump, /^X-Helo-Args: src\.postern\.test$/m);
    await h.agent.close();
  } finally {
    await sink.close();
  }
});
