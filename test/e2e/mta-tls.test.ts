/*
 * test/e2e/mta-tls.test.ts — TLS and AUTH of the relay client against
 * Python's aiosmtpd (STARTTLS required, or smtps; AUTH required) with a
 * certificate the test makes, Postfix's smtp-sink (no STARTTLS) and the
 * scripted server (a broken or injected STARTTLS). Smarthosts by name
 * through a real DNS server on loopback, as `relay host smtp+tls://label@…`
 * and seed 002's `relay via … tls enable auth`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { actionOf, configFrom, freePort, makeAgent, makeCert, makeTask, MESSAGE, startAiosmtpd, startScriptedServer, startSmtpSink, type Aiosmtpd, type Cert, type ScriptedServer, type Sink } from '../helpers/mta-peers.js';
import type { CredentialsLookup } from '../../src/mta/agent.js';
import type { Config } from '../../src/config/model.js';

const A = { starttls: '127.0.0.40', smtps: '127.0.0.41', login: '127.0.0.42', open: '127.0.0.43', sink: '127.0.0.44', broken: '127.0.0.45', inject: '127.0.0.46', plain: '127.0.0.47' };
const USER = 'relayuser';
const PASSWORD = 's3cret pässword';

let port: number;
let cert: Cert;
let dns: DnsServerHandle;
let starttls: Aiosmtpd;
let smtps: Aiosmtpd;
let login: Aiosmtpd;
let open: Aiosmtpd;
let plain: Aiosmtpd;
let sink: Sink;
let broken: ScriptedServer;
let inject: ScriptedServer;
let config: Config;

const credentials: CredentialsLookup = (table, key) => (table === 'secrets' && (key === 'label' || key === 'smtp.relay.test') ? { user: USER, password: PASSWORD } : undefined);

before(async () => {
  port = await freePort(Object.values(A));
  cert = makeCert('smtp.relay.test', ['smtp.relay.test', 'smtps.relay.test', 'login.relay.test'], [A.open]);
  dns = await startDnsServer({
    'smtp.relay.test': [{ type: 'A', address: A.starttls }],
    'smtps.relay.test': [{ type: 'A', address: A.smtps }],
    'login.relay.test': [{ type: 'A', address: A.login }],
    'other.relay.test': [{ type: 'A', address: A.starttls }],
    'sink.relay.test': [{ type: 'A', address: A.sink }],
    'plain.relay.test': [{ type: 'A', address: A.plain }],
  });
  [starttls, smtps, login, open, plain] = await Promise.all([
    startAiosmtpd({ mode: 'starttls', cert, address: A.starttls, port, user: USER, password: PASSWORD }),
    startAiosmtpd({ mode: 'smtps', cert, address: A.smtps, port, user: USER, password: PASSWORD }),
    startAiosmtpd({ mode: 'starttls', cert, address: A.login, port, user: USER, password: PASSWORD, exclude: ['PLAIN'] }),
    startAiosmtpd({ mode: 'starttls', cert, address: A.open, port, user: USER, password: PASSWORD, authRequired: false }),
    startAiosmtpd({ mode: 'plain', cert, address: A.plain, port, user: USER, password: PASSWORD }),
  ]);
  sink = await startSmtpSink(A.sink, port);
  broken = await startScriptedServer({ address: A.broken, port, ehlo: ['PIPELINING', 'STARTTLS'], starttls: 'garbage' });
  inject = await startScriptedServer({ address: A.inject, port, ehlo: ['PIPELINING', 'STARTTLS'], starttls: 'inject' });
  config = configFrom(`hostname "mail.postern.test"
table secrets file:/nonexistent/secrets
action "starttls" relay host smtp+tls://label@smtp.relay.test:${port} auth <secrets>
action "smtps" relay host smtps://label@smtps.relay.test:${port} auth <secrets>
action "login" relay host smtp+tls://label@login.relay.test:${port} auth <secrets>
action "wrongname" relay host smtp+tls://label@other.relay.test:${port} auth <secrets>
action "noverify" relay host smtp+tls://label@other.relay.test:${port} auth <secrets> tls no-verify
action "required-sink" relay host smtp+tls://sink.relay.test:${port}
action "auth-clear" relay host smtp://label@sink.relay.test:${port} auth <secrets>
action "auth-clear-optin" relay host smtp://label@plain.relay.test:${port} auth <secrets> auth-over-plaintext
action "mx" relay
match from any for any action "mx"
`);
});

after(async () => {
  await Promise.all([starttls.close(), smtps.close(), login.close(), open.close(), plain.close(), sink.close(), broken.close(), inject.close(), dns.close()]);
  rmSync(cert.dir, { recursive: true, force: true });
});

function harness(o: { ca?: boolean; credentials?: CredentialsLookup } = {}) {
  return makeAgent({ config, dnsServer: dns.server, credentials: o.credentials ?? credentials, tuning: { port, ...(o.ca === false ? {} : { tlsCa: cert.pem }) } });
}

test('smtp+tls:// with AUTH PLAIN: STARTTLS, verified certificate, authenticated', async () => {
  const h = harness();
  const rs = await h.agent.deliver(makeTask({ action: actionOf(config, 'starttls'), rcpts: ['bob@far.test', 'refuse@far.test'], body: MESSAGE }));
  assert.deepEqual(rs.map((r) => `${r.status} ${r.enhanced}`), ['ok 2.0.0', 'permfail 5.1.1']);
  const m = starttls.messages().at(-1);
  assert.equal(m?.auth, USER);
  assert.equal(m?.tls, true);
  assert.deepEqual(m?.rcpt_tos, ['bob@far.test']);
  assert.match(m?.content ?? '', /Subject: relay test\r\n\r\nHello\.\r\n$/);
  assert.match(h.logs.join('\n'), /mta connected address=127\.0\.0\.40:\d+ host=smtp\.relay\.test tls=TLSv1\.[23]:\S+ verified=yes auth=relayuser/);
  assert.doesNotMatch(h.logs.join('\n'), /s3cret/);
  await h.agent.close();
});

test('AUTH LOGIN when the server offers only LOGIN', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'login'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(login.messages().at(-1)?.auth, USER);
  await h.agent.close();
});

test('smtps://: TLS from the first byte, verified, AUTH', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'smtps'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(smtps.messages().at(-1)?.auth, USER);
  // (aiosmtpd does not report implicit TLS in its session; the client's log says it.)
  assert.match(h.logs.join('\n'), /mta connected address=127\.0\.0\.41:\d+ host=smtps\.relay\.test tls=TLSv1\.[23]:\S+ verified=yes auth=relayuser/);
  await h.agent.close();
});

test('seed 002 #3: relay via HOST port N tls enable auth (credentials by host name)', async () => {
  const cfg = configFrom(`listen on 127.0.0.1 port 25
hostname "machine.domain.lan"
map "aliases" { source db "/etc/mail/aliases.db" }
map "secrets" { source db "/etc/mail/secrets.db" }
accept for local deliver to mda "procmail -f -"
accept for all relay via "smtp.relay.test" port ${port} tls enable auth
`);
  const action = [...cfg.actions.values()].find((a) => a.kind === 'relay');
  assert.ok(action);
  const h = makeAgent({ config: cfg, dnsServer: dns.server, credentials, tuning: { tlsCa: cert.pem } });
  const [r] = await h.agent.deliver(makeTask({ action, rcpts: ['someguy@somedomain.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(starttls.messages().at(-1)?.helo, 'machine.domain.lan');
  await h.agent.close();
});

test('wrong password: temporary failure (the credentials can be fixed without losing mail)', async () => {
  const h = harness({ credentials: () => ({ user: USER, password: 'wrong' }) });
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'starttls'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'tempfail 4.7.8');
  assert.match(r?.detail ?? '', /authentication as relayuser failed: host smtp\.relay\.test\[127\.0\.0\.40\]:\d+ said: 535 5\.7\.8/);
  const none = harness({ credentials: () => undefined });
  const [n] = await none.agent.deliver(makeTask({ action: actionOf(config, 'starttls'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${n?.status} ${n?.enhanced}`, 'tempfail 4.7.0');
  assert.match(n?.detail ?? '', /no credentials for relay label in table secrets/);
  const err = harness({ credentials: () => ({ error: 'db unreadable' }) });
  const [e] = await err.agent.deliver(makeTask({ action: actionOf(config, 'starttls'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(e?.status, 'tempfail');
});

test('a certificate that does not verify under a required policy: temporary failure; no-verify accepts it', async () => {
  const name = harness();
  const [a] = await name.agent.deliver(makeTask({ action: actionOf(config, 'wrongname'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${a?.status} ${a?.enhanced}`, 'tempfail 4.7.5');
  assert.match(a?.detail ?? '', /TLS handshake failed: .*other\.relay\.test/);
  const noCa = harness({ ca: false });
  const [b] = await noCa.agent.deliver(makeTask({ action: actionOf(config, 'starttls'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${b?.status} ${b?.enhanced}`, 'tempfail 4.7.5');
  assert.match(b?.detail ?? '', /self.signed certificate/);
  const [c] = await noCa.agent.deliver(makeTask({ action: actionOf(config, 'noverify'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(c?.status, 'ok', c?.detail);
  assert.match(noCa.logs.join('\n'), /mta connected .* host=other\.relay\.test tls=TLSv1\.[23]:\S+ verified=no auth=relayuser/);
  await noCa.agent.close();
});

test('TLS required but not offered: temporary failure 4.7.4, nothing sent', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'required-sink'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'tempfail 4.7.4');
  assert.match(r?.detail ?? '', /TLS is required, but was not offered by host sink\.relay\.test/);
  assert.equal(sink.messages().length, 0);
});

test('credentials are never sent without TLS', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'auth-clear'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'tempfail 4.7.0');
  assert.match(r?.detail ?? '', /not sending credentials/);
  assert.equal(sink.messages().length, 0);
});

test('auth-over-plaintext: the explicit opt-in sends AUTH to a smarthost that offers no TLS', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'auth-clear-optin'), rcpts: ['bob@far.test'], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  const m = plain.messages().at(-1);
  assert.equal(m?.auth, USER);
  assert.equal(m?.tls, false);
  await h.agent.close();
});

test('opportunistic STARTTLS to an MX: encrypted, certificate not checked', async () => {
  const h = harness({ ca: false });
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`bob@[${A.open}]`], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(open.messages().at(-1)?.tls, true);
  assert.match(h.logs.join('\n'), /tls=TLSv1\.[23]:\S+ verified=no/);
  await h.agent.close();
});

test('opportunistic STARTTLS whose handshake fails: retried once in clear text', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`bob@[${A.broken}]`], body: MESSAGE }));
  assert.equal(r?.status, 'ok', r?.detail);
  assert.equal(broken.connections.length, 2);
  assert.ok(broken.connections[0]?.commands.includes('STARTTLS'));
  assert.ok(!broken.connections[1]?.commands.includes('STARTTLS'));
  assert.match(h.logs.join('\n'), /mta connecting address=127\.0\.0\.45:\d+ host=127\.0\.0\.45 tls="off \(retry after a failed handshake\)"/);
  await h.agent.close();
});

test('a reply smuggled after the STARTTLS 220 is refused (no command injection through TLS)', async () => {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`bob@[${A.inject}]`], body: MESSAGE }));
  assert.equal(`${r?.status} ${r?.enhanced}`, 'tempfail 4.5.0');
  assert.match(r?.detail ?? '', /server sent data after its STARTTLS reply/);
  assert.equal(inject.messages().length, 0);
});
