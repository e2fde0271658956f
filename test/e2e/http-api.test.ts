/*
 * The HTTP API against the real daemon: each operation of smtpctl, run by
 * the same handlers (what smtpctl then sees agrees), every change logged
 * with the token's name, and the read-only token refused for each change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, READER, call, sendMail, startHttpDaemon } from './http-helpers.js';

interface Page {
  total: number;
  items: { evpid: string; msgid: string; state: string }[];
}

test('the API runs smtpctl operations on the real queue', async () => {
  const { d, base } = await startHttpDaemon();
  try {
    const reply = await sendMail(d.port, 'root@test.example', 'Subject: api test\n\nbody line');
    const msgid = /^250 2\.0\.0 ([0-9a-f]{8}) /.exec(reply)?.[1];
    assert.ok(msgid, reply);

    const page = (await call(base, `/api/v1/queue?msgid=${msgid}`, READER)).json() as Page;
    assert.equal(page.total, 1);
    const evpid = page.items[0]?.evpid ?? '';
    assert.equal(page.items[0]?.state, 'pending');

    const env = await call(base, `/api/v1/envelopes/${evpid}`, READER);
    assert.equal(env.status, 200);
    assert.match(env.body, /root@test\.example/);
    const raw = await call(base, `/api/v1/messages/${msgid}`, READER);
    assert.equal(raw.status, 200);
    assert.match(raw.body, /Subject: api test\r\n\r\nbody line/);
    assert.equal((await call(base, '/api/v1/messages/ffffffff', READER)).status, 404);
    assert.equal(((await call(base, '/api/v1/stats', READER)).json() as Record<string, number>)['smtp.message'], 1);
    assert.deepEqual((await call(base, '/api/v1/status', READER)).json(), { smtp: 'running', mta: 'paused', mda: 'paused', sessions: 0 });
    assert.equal((await call(base, '/api/v1/hosts', READER)).status, 200);

    // Every change: 403 for the read-only token, done and logged for the admin one.
    const changes = [`/api/v1/queue/${evpid}/hold`, `/api/v1/queue/${evpid}/release`, `/api/v1/queue/${msgid}/schedule`, '/api/v1/services/smtp/pause', '/api/v1/services/smtp/resume', '/api/v1/reload'];
    for (const path of changes) assert.equal((await call(base, path, READER, { method: 'POST' })).status, 403, path);
    assert.deepEqual((await call(base, `/api/v1/queue/${evpid}/hold`, ADMIN, { method: 'POST' })).json(), { count: 1 });
    assert.equal(((await call(base, '/api/v1/queue?state=held', READER)).json() as Page).total, 1);
    assert.deepEqual((await call(base, `/api/v1/queue/${evpid}/release`, ADMIN, { method: 'POST' })).json(), { count: 1 });
    assert.deepEqual((await call(base, '/api/v1/services/smtp/pause', ADMIN, { method: 'POST' })).json(), { smtp: 'paused' });
    assert.equal(((await call(base, '/api/v1/status', READER)).json() as { smtp: string }).smtp, 'paused');
    assert.deepEqual((await call(base, '/api/v1/services/smtp/resume', ADMIN, { method: 'POST' })).json(), { smtp: 'running' });
    assert.deepEqual((await call(base, '/api/v1/reload', ADMIN, { method: 'POST' })).json(), { reloaded: true });
    assert.ok(!d.logs.some((l) => l.includes('"http listen" changed')), 'the same listener: nothing to say');
    assert.equal((await call(base, '/api/v1/status', READER)).status, 200, 'the tokens were read again');
    assert.deepEqual((await call(base, `/api/v1/queue/${msgid}/remove`, ADMIN, { method: 'POST' })).json(), { count: 1 });
    assert.equal(((await call(base, '/api/v1/queue', READER)).json() as Page).total, 0);
    await d.waitForLog(new RegExp(`http change token=ops command=remove target=${msgid} result=ok`));
    for (const cmd of ['"pause envelope"', '"resume envelope"', '"pause smtp"', '"resume smtp"', 'reload']) {
      assert.ok(d.logs.some((l) => l.includes(`http change token=ops command=${cmd}`)), `${cmd} logged:\n${d.logs.join('\n')}`);
    }
    assert.ok(d.logs.filter((l) => /http refused token=viewer .*status=403/.test(l)).length >= changes.length);
    assert.ok(!d.logs.some((l) => l.includes(ADMIN) || l.includes(READER)), 'secrets never logged');
  } finally {
    await d.stop();
    d.cleanup();
  }
});
