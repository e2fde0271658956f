/*
 * The HTTP listener (http/server.ts, api.ts, tokens.ts) against a fake
 * control server: authentication (401), roles (403), who is logged for a
 * change, bad input (414, 413, 400, 404, 405), slow clients (the headers
 * deadline) and the connection limit. The real daemon is in
 * test/e2e/http-*.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpOptions } from '../../src/config/model.js';
import { CommandError } from '../../src/control/handlers.js';
import { route, pageQueue } from '../../src/http/api.js';
import { HttpListener, type HttpLimits } from '../../src/http/server.js';
import { TokenStore } from '../../src/http/tokens.js';
import { MailLog } from '../../src/log/maillog.js';
import { Metrics } from '../../src/metrics/registry.js';

const ADMIN = 'a'.repeat(32);
const READER = 'r'.repeat(32);
const POS = { file: 'smtpd.conf', line: 1, col: 1 };

function tokens(): TokenStore {
  const dir = mkdtempSync(join(tmpdir(), 'postern-tok-'));
  writeFileSync(join(dir, 'a'), `${ADMIN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'r'), `${READER}\n`, { mode: 0o600 });
  return TokenStore.load([
    { name: 'ops', file: join(dir, 'a'), role: 'admin', pos: POS },
    { name: 'viewer', file: join(dir, 'r'), role: 'read-only', pos: POS },
  ]);
}

const ENTRY = { evpid: '0123456789abcdef', msgid: '01234567', sender: 'a@x.example', rcpt: 'b@y.example', dest: 'b@y.example', state: 'pending', runstate: 'pending' };

async function start(limits: Partial<HttpLimits> = {}, opts: Partial<HttpOptions> = {}): Promise<{ base: string; port: number; logs: string[]; calls: string[]; close: () => Promise<void> }> {
  const logs: string[] = [];
  const calls: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  const control = {
    execute: async (name: string, args: Readonly<Record<string, string>>): Promise<unknown> => {
      calls.push(`${name} ${JSON.stringify(args)}`);
      if (name === 'show queue') return Array.from({ length: 5 }, (_, i) => ({ ...ENTRY, evpid: `0123456789abcde${i}`, state: i === 4 ? 'held' : 'pending' }));
      if (args['target'] === 'deadbeef') throw new CommandError('no such message: deadbeef');
      if (name === 'schedule') return { count: 1 };
      if (name === 'show status') return { smtp: 'running', mta: 'running', mda: 'running', sessions: 0 };
      if (name === 'show stats') return { uptime: 1 };
      return {};
    },
    live: () => ({ messageRate: 0, digest: { clients: 0 } as never }),
  };
  const http: HttpOptions = { address: '127.0.0.1', port: 0, tokens: [], maxConnections: 8, pos: POS, ...opts };
  const l = new HttpListener(http, tokens(), undefined, { control: control as never, metrics: new Metrics({ defaultMetrics: false }), log, certificates: () => [] }, limits);
  const port = await l.listen();
  return { base: `http://127.0.0.1:${port}`, port, logs, calls, close: () => l.close() };
}

const get = (base: string, path: string, token?: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${base}${path}`, { ...init, headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) } });

test('tokens: constant-time check, names never secrets, short secrets refused', () => {
  const t = tokens();
  assert.deepEqual(t.check(`Bearer ${ADMIN}`), { name: 'ops', role: 'admin' });
  assert.deepEqual(t.check(`bearer ${READER}`), { name: 'viewer', role: 'read-only' });
  assert.equal(t.check(`Bearer ${ADMIN.slice(1)}`), undefined);
  assert.equal(t.check(`Basic ${ADMIN}`), undefined);
  assert.equal(t.check(undefined), undefined);
  const dir = mkdtempSync(join(tmpdir(), 'postern-tok-'));
  writeFileSync(join(dir, 's'), 'short\n');
  assert.throws(() => TokenStore.load([{ name: 'x', file: join(dir, 's'), role: 'admin', pos: POS }]), /smtpd\.conf:1: http token "x": the secret in .* is shorter than 16 characters/);
  assert.throws(() => TokenStore.load([{ name: 'x', file: join(dir, 'missing'), role: 'admin', pos: POS }]), /cannot read .*missing: ENOENT/);
});

test('routes: commands, roles, argument checks', () => {
  const q = new URLSearchParams();
  assert.deepEqual(route('GET', '/api/v1/queue', q), { ok: true, route: { command: 'show queue', args: {}, role: 'read-only' } });
  assert.deepEqual(route('POST', '/api/v1/queue/0123456789ABCDEF/schedule', q), { ok: true, route: { command: 'schedule', args: { target: '0123456789abcdef' }, role: 'admin' } });
  assert.deepEqual(route('POST', '/api/v1/queue/all/hold', q), { ok: true, route: { command: 'pause envelope', args: { target: 'all' }, role: 'admin' } });
  assert.deepEqual(route('POST', '/api/v1/services/mta/pause', q), { ok: true, route: { command: 'pause mta', args: {}, role: 'admin' } });
  assert.deepEqual(route('GET', '/api/v1/queue/01234567/schedule', q), { ok: false, status: 405, error: 'use POST here', allow: 'POST' });
  assert.deepEqual(route('POST', '/api/v1/queue/xyz/schedule', q), { ok: false, status: 400, error: 'the target is not valid' });
  assert.equal((route('GET', '/api/v1/nothing', q) as { status: number }).status, 404);
  const page = pageQueue([ENTRY, { ...ENTRY, evpid: 'ffff000000000000', rcpt: 'c@z.example', state: 'held' }] as never, new URLSearchParams('q=Z.EXAMPLE'));
  assert.equal((page as { total: number }).total, 1);
  assert.deepEqual(pageQueue([], new URLSearchParams('limit=-1')), { error: 'offset and limit must be whole numbers' });
});

test('401 without or with a wrong token, 403 for a read-only change, changes logged with the token name', async () => {
  const s = await start();
  try {
    const none = await get(s.base, '/api/v1/queue');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="postern"');
    assert.equal((await get(s.base, '/api/v1/queue', 'x'.repeat(32))).status, 401);
    assert.equal((await get(s.base, '/metrics')).status, 401, 'tokens exist: /metrics needs one');
    assert.equal((await get(s.base, '/metrics', READER)).status, 200);

    const list = await get(s.base, '/api/v1/queue?limit=2&offset=1', READER);
    assert.equal(list.status, 200);
    const page = (await list.json()) as { total: number; items: { evpid: string }[] };
    assert.equal(page.total, 5);
    assert.deepEqual(page.items.map((e) => e.evpid), ['0123456789abcde1', '0123456789abcde2']);
    assert.equal(((await (await get(s.base, '/api/v1/queue?state=held', READER)).json()) as { total: number }).total, 1);
    assert.deepEqual(await (await get(s.base, '/api/v1/whoami', READER)).json(), { name: 'viewer', role: 'read-only' });

    const denied = await get(s.base, '/api/v1/queue/01234567/schedule', READER, { method: 'POST' });
    assert.equal(denied.status, 403);
    assert.ok(!s.calls.some((c) => c.startsWith('schedule')), 'the handler never ran');
    const done = await get(s.base, '/api/v1/queue/01234567/schedule', ADMIN, { method: 'POST' });
    assert.equal(done.status, 200);
    assert.deepEqual(await done.json(), { count: 1 });
    assert.ok(s.logs.some((l) => l === 'http change token=ops command=schedule target=01234567 result=ok'), s.logs.join('\n'));
    assert.ok(s.logs.some((l) => /^http refused token=viewer .*status=403/.test(l)));
    assert.ok(s.logs.some((l) => /^http refused .*status=401 reason="unknown token"/.test(l)));
    assert.ok(!s.logs.some((l) => l.includes(ADMIN) || l.includes(READER) || l.includes('x'.repeat(32))), 'no secret is ever logged');
    const missing = await get(s.base, '/api/v1/queue/deadbeef/schedule', ADMIN, { method: 'POST' });
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: 'no such message: deadbeef' });
  } finally {
    await s.close();
  }
});

test('oversized and malformed requests are refused', async () => {
  const s = await start({ maxBodyBytes: 64 });
  try {
    assert.equal((await get(s.base, `/api/v1/queue?q=${'a'.repeat(3000)}`, READER)).status, 414);
    assert.equal((await get(s.base, '/api/v1/queue?limit=abc', READER)).status, 400);
    assert.equal((await get(s.base, '/api/v1/reload', ADMIN, { method: 'POST', body: 'x'.repeat(100) })).status, 413);
    assert.equal((await get(s.base, '/api/v1/reload', ADMIN, { method: 'POST', body: '[1,2' })).status, 400);
    assert.equal((await get(s.base, '/api/v1/reload', ADMIN, { method: 'POST', body: '{}' })).status, 200);
    assert.equal((await get(s.base, '/api/v1/reload', ADMIN)).status, 405);
    assert.equal((await get(s.base, '/nothing')).status, 404);
    const big = await get(s.base, '/api/v1/queue', READER, { headers: { 'X-Big': 'b'.repeat(20_000) } });
    assert.equal(big.status, 431);
    // Garbage instead of HTTP: 400 from the parser, and the connection closed.
    const reply = await raw(s.port, 'HELLO THERE\r\n\r\n', 3000);
    assert.match(reply.data, /^HTTP\/1\.1 400 /);
  } finally {
    await s.close();
  }
});

/** Send `text` on a fresh connection; what came back and whether the server closed it within `ms`. */
function raw(port: number, text: string, ms: number): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => c.write(text));
    let data = '';
    c.on('data', (d) => (data += d.toString('latin1')));
    c.on('error', () => undefined);
    const t = setTimeout(() => {
      c.destroy();
      resolve({ data, closed: false });
    }, ms);
    c.on('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
  });
}

test('a slow client is cut at the headers deadline; connections are limited', async () => {
  const s = await start({ headersTimeoutMs: 500, requestTimeoutMs: 1000 }, { maxConnections: 2 });
  try {
    const started = Date.now();
    const slow = await raw(s.port, 'GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n', 5000);
    assert.ok(slow.closed, 'closed by the server');
    assert.ok(Date.now() - started < 4000, `within the deadline (${Date.now() - started} ms)`);
    assert.match(slow.data, /^(HTTP\/1\.1 408 |$)/);
    // Two idle connections hold the listener's two places; a third is not served.
    const a = connect(s.port, '127.0.0.1');
    const b = connect(s.port, '127.0.0.1');
    for (const c of [a, b]) c.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const third = await raw(s.port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n', 2000);
    assert.ok(third.closed && third.data === '', `refused: ${JSON.stringify(third)}`);
    a.destroy();
    b.destroy();
  } finally {
    await s.close();
  }
});

test('on loopback without tokens /metrics is open and the API says a token is needed', async () => {
  const logs: string[] = [];
  const l = new HttpListener({ address: '127.0.0.1', port: 0, tokens: [], maxConnections: 4, pos: POS }, TokenStore.load([]), undefined, { control: {} as never, metrics: new Metrics({ defaultMetrics: false }), log: new MailLog({ sink: (x) => logs.push(x) }), certificates: () => [] });
  const port = await l.listen();
  try {
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200);
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/status`);
    assert.equal(r.status, 401);
    assert.match(((await r.json()) as { error: string }).error, /no http token is configured/);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /<title>Postern — dashboard<\/title>/);
  } finally {
    await l.close();
  }
});
