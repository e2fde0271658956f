/*
 * test/e2e/mta-mx.test.ts — relaying by MX over a real DNS server on
 * loopback to real SMTP servers: Postfix's smtp-sink and a scripted one.
 * Several MX records with the first one down, null MX, NXDOMAIN, address
 * literals, a greeting that never comes, mail that would loop back to us,
 * a legacy `relay via` smarthost, and one connection carrying several
 * messages (reused from the pool, closed when idle).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { actionOf, configFrom, freePort, makeAgent, makeTask, MESSAGE, startScriptedServer, startSmtpSink, type ScriptedOptions, type ScriptedServer, type Sink } from '../helpers/mta-peers.js';

const DOWN = '127.0.0.2';
const SINK = '127.0.0.3';
const SCRIPTED = '127.0.0.4';
const SILENT = '127.0.0.8';

let port: number;
let dns: DnsServerHandle;
let sink: Sink;
let scripted: ScriptedServer;
let scriptedOpts: ScriptedOptions;
let silent: net.Server;

const config = configFrom(`hostname "mail.postern.test"
action "mx" relay
action "legacy-out" relay host smtp://smarthost.test:PORT
match from any for any action "mx"
`.replace('PORT', '2525'));

before(async () => {
  port = await freePort([DOWN, SINK, SCRIPTED, SILENT]);
  dns = await startDnsServer({
    'two.test': [
      { type: 'MX', priority: 10, exchange: 'mx1.two.test' },
      { type: 'MX', priority: 20, exchange: 'mx2.two.test' },
    ],
    'mx1.two.test': [{ type: 'A', address: DOWN }],
    'mx2.two.test': [{ type: 'A', address: SINK }],
    'sink.test': [{ type: 'MX', priority: 10, exchange: 'mx.sink.test' }],
    'mx.sink.test': [{ type: 'A', address: SINK }],
    'scripted.test': [{ type: 'MX', priority: 10, exchange: 'mx.scripted.test' }],
    'mx.scripted.test': [{ type: 'A', address: SCRIPTED }],
    'implicit.test': [{ type: 'A', address: SCRIPTED }],
    'nullmx.test': [{ type: 'MX', priority: 0, exchange: '.' }],
    'loop.test': [{ type: 'MX', priority: 10, exchange: 'mail.postern.test' }],
    'silent.test': [
      { type: 'MX', priority: 10, exchange: 'mx.silent.test' },
      { type: 'MX', priority: 20, exchange: 'mx.sink.test' },
    ],
    'mx.silent.test': [{ type: 'A', address: SILENT }],
    'smarthost.test': [{ type: 'A', address: SINK }],
  });
  sink = await startSmtpSink(SINK, port);
  scriptedOpts = { address: SCRIPTED, port };
  scripted = await startScriptedServer(scriptedOpts);
  // Accepts connections and never says a word.
  silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(port, SILENT, () => r()));
});

after(async () => {
  await sink.close();
  await scripted.close();
  await new Promise<void>((r) => {
    silent.close(() => r());
    setTimeout(r, 500);
  });
  await dns.close();
});

function harness(tuning = {}) {
  return makeAgent({ config, dnsServer: dns.server, tuning: { port, ...tuning } });
}

test('several MX records, the first one down: delivered to the second', async () => {
  const h = harness();
  const task = makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@two.test'], body: MESSAGE });
  const before = sink.messages().length;
  const [r] = await h.agent.deliver(task);
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(r?.enhanced, '2.0.0');
  assert.equal(r?.remoteMta, 'dns; mx2.two.test');
  assert.match(r?.diagnostic ?? '', /^smtp; 250 2\.0\.0 Ok/);
  assert.equal(sink.messages().length, before + 1);
  assert.match(sink.messages().at(-1) ?? '', /X-Rcpt-Args: <bob@two\.test>/);
  const logs = h.logs.join('\n');
  assert.match(logs, new RegExp(`mta connecting address=${DOWN}:${port} host=mx1\\.two\\.test`));
  assert.match(logs, new RegExp(`mta connection-failed address=${DOWN}:${port} host=mx1\\.two\\.test error="connect to mx1\\.two\\.test\\[${DOWN}\\]:${port}: connect failed: ECONNREFUSED"`));
  assert.match(logs, new RegExp(`mta connected address=${SINK}:${port} host=mx2\\.two\\.test tls=none session=`));
  assert.match(logs, new RegExp(`mta delivery evpid=${task.recipients[0]?.evpid} from=<alice@origin\\.test> to=<bob@two\\.test> relay="mx2\\.two\\.test \\[${SINK}\\]" delay=\\d+s result=Ok stat="250 2\\.0\\.0 Ok"`));
  await h.agent.close();
  assert.match(h.logs.join('\n'), /mta disconnected address=\S+ host=mx2\.two\.test reason=shutdown messages=1/);
});

test('null MX: permanent failure 5.1.10 without connecting', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@nullmx.test'], body: MESSAGE }));
  assert.equal(r?.status, 'permfail');
  assert.equal(r?.enhanced, '5.1.10');
  assert.match(r?.detail ?? '', /null MX/);
  assert.doesNotMatch(h.logs.join('\n'), /mta connecting/);
  assert.match(h.logs.join('\n'), /result=PermFail stat="Recipient address has null MX/);
});

test('NXDOMAIN: permanent failure 5.1.2; a DNS server that does not answer: temporary', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@nowhere.test'], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'permfail 5.1.2');
  dns.set('broken.test', 'SERVFAIL');
  const [s] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@broken.test'], body: MESSAGE }));
  assert.equal(`${s?.status} ${s?.enhanced}`, 'tempfail 4.4.3');
});

test('implicit MX and address literals', async () => {
  const h = harness();
  const n = scripted.messages().length;
  const rs = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['a@implicit.test'], body: MESSAGE }));
  const rl = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`b@[${SCRIPTED}]`], body: MESSAGE }));
  assert.deepEqual([...rs, ...rl].map((r) => r.status), ['ok', 'ok']);
  assert.deepEqual(scripted.messages().slice(n).map((m) => m.rcpts), [['TO:<a@implicit.test>'], [`TO:<b@[${SCRIPTED}]>`]]);
  await h.agent.close();
});

test('mail that would loop back to ourselves fails with 5.4.6, by MX or by greeting', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@loop.test'], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'permfail 5.4.6');
  assert.match(r?.detail ?? '', /mail for loop\.test loops back to myself/);
  const [l] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@[127.0.0.1]'], body: MESSAGE }));
  assert.equal(`${l?.status} ${l?.enhanced}`, 'permfail 5.4.6');

  // A server that greets with our own name is us (behind some NAT or alias): loop.
  const me = await startScriptedServer({ address: '127.0.0.9', port, greeting: '220 mail.postern.test ESMTP Postern' });
  try {
    const [g] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@[127.0.0.9]'], body: MESSAGE }));
    assert.equal(`${g?.status} ${g?.enhanced}`, 'permfail 5.4.6');
    assert.match(g?.detail ?? '', /greeted me with my own hostname/);
    assert.equal(me.messages().length, 0);
  } finally {
    await me.close();
  }
});

test('a greeting that never comes times out and the next MX takes the mail', async () => {
  const h = harness({ timeouts: { greeting: 300 } });
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['bob@silent.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.match(h.logs.join('\n'), /mta connection-failed address=127\.0\.0\.8:\d+ host=mx\.silent\.test error="conversation with mx\.silent\.test\[127\.0\.0\.8\]:\d+ timed out during the greeting: no reply within 0\.3 s \(waiting for the greeting\)"/);
  await h.agent.close();
});

test('legacy "relay via HOST port N" goes to the smarthost, not to the MX', async () => {
  const cfg = configFrom(`hostname "mail.postern.test"
accept for all relay via "smarthost.test" port ${port}
`);
  const h = makeAgent({ config: cfg, dnsServer: dns.server });
  const action = [...cfg.actions.values()].find((a) => a.kind === 'relay');
  assert.ok(action);
  const n = sink.messages().length;
  const [r] = await h.agent.deliver(makeTask({ action, rcpts: ['carol@nullmx.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(sink.messages().length, n + 1);
  assert.equal(h.agent.key(action, { evpid: 'x', address: 'carol@nullmx.test', action: action.name }), `relay:smtp://smarthost.test:${port}`);
  assert.equal(h.agent.key(actionOf(config, 'mx'), { evpid: 'x', address: 'Carol@Two.Test', action: 'mx' }), 'mx:two.test');
  await h.agent.close();
});

test('one connection carries several messages: reused from the pool with RSET, closed with QUIT when idle', async () => {
  const h = harness({ idleMs: 300 });
  const conns = scripted.connections.length;
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`u${i}@scripted.test`], body: MESSAGE }));
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    assert.equal(r?.status, 'ok', r?.detail);
  }
  assert.equal(scripted.connections.length, conns + 1, 'one connection for 20 messages');
  const c = scripted.connections.at(-1);
  assert.equal(c?.messages.length, 20);
  assert.equal(c?.commands.filter((x) => x === 'RSET').length, 19);
  assert.equal(h.agent.idleSessions, 1);
  // No Nagle / delayed-ACK stall: a message on a warm connection takes far less than 40 ms.
  const warm = times.slice(1).sort((a, b) => a - b);
  assert.ok((warm[Math.floor(warm.length / 2)] ?? 0) < 30, `median ${warm[Math.floor(warm.length / 2)]} ms`);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(h.agent.idleSessions, 0);
  assert.equal(c?.commands.at(-1), 'QUIT');
  assert.match(h.logs.join('\n'), /mta disconnected address=\S+ host=mx\.scripted\.test reason=idle messages=20/);
});

test('a cached session that fails its RSET (sent in the pipelined group) gives way to a new connection, and nothing is deferred', async () => {
  const h = harness();
  const first = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['w0@scripted.test'], body: MESSAGE }));
  assert.equal(first[0]?.status, 'ok');
  const conns = scripted.connections.length;
  const msgs = scripted.messages().length;
  scriptedOpts.rset = () => '421 4.3.2 Going away';
  try {
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: ['w1@scripted.test'], body: MESSAGE }));
    assert.equal(r?.status, 'ok', r?.detail);
  } finally {
    delete scriptedOpts.rset;
  }
  assert.equal(scripted.connections.length, conns + 1, 'a new connection');
  assert.deepEqual(scripted.messages().slice(msgs).map((m) => m.rcpts), [['TO:<w1@scripted.test>']], 'delivered once, over the new connection');
  const stale = scripted.connections[conns - 1];
  assert.deepEqual(stale?.commands.slice(-4).map((c) => c.split(' ')[0]), ['RSET', 'MAIL', 'RCPT', 'DATA'], 'RSET went in one group with the transaction');
  await h.agent.close();
});

test('the session message limit closes a connection and opens a new one', async () => {
  const h = harness({ maxMessagesPerSession: 2 });
  const conns = scripted.connections.length;
  for (let i = 0; i < 5; i++) {
    const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`v${i}@scripted.test`], body: MESSAGE }));
    assert.equal(r?.status, 'ok');
  }
  await h.agent.close();
  assert.equal(scripted.connections.length, conns + 3);
  assert.match(h.logs.join('\n'), /reason="session message limit" messages=2/);
});
