/*
 * test/unit/control-smtpctl.test.ts — smtpctl run in-process (its exported
 * smtpctl()) against an in-process control server (control-helpers.ts):
 * every show format, the queue operations, errors and exit statuses,
 * monitor, encrypt; and the built command as another user for
 * "permission denied".
 */
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import type { QueueEntry } from '../../src/control/queue-view.js';
import { MONITOR_HEADER } from '../../src/control/format.js';
import { run } from '../helpers/tools.js';
import { bench, type Bench } from './control-helpers.js';

const MAIN = resolve(import.meta.dirname, '../../src/cli/main.js');

describe('smtpctl', () => {
  let b: Bench;
  beforeEach(async () => {
    b = await bench({ monitorIntervalMs: 30 });
  });
  afterEach(async () => {
    await b.close();
  });

  it('show queue: one pipe-separated line per envelope, OpenSMTPD field order', async () => {
    const env = await b.queue('alice@example.net', ['bob@example.com', { address: 'list@example.com', original: 'team@example.com' }]);
    const r = await b.ctl(['show', 'queue']);
    assert.equal(r.status, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    const f = (lines[0] as string).split('|');
    assert.equal(f.length, 14);
    const [evpid, src, agent, flags, sender, rcpt, dest, ctime, expire, lastTry, retry, runstate, runtime, error] = f as string[];
    assert.equal(evpid, env.recipients[0]?.evpid);
    assert.deepEqual([src, agent, flags, sender, rcpt, dest], ['inet4', 'mta', '', 'alice@example.net', 'bob@example.com', 'bob@example.com']);
    assert.equal(Number(ctime), Math.floor(env.arrival / 1000));
    assert.equal(Number(expire), Math.floor(env.arrival / 1000) + b.config.queue.ttl);
    assert.ok(Math.abs(Number(lastTry) - Date.now() / 1000) < 10);
    assert.equal(retry, '1');
    assert.equal(runstate, 'pending');
    assert.ok(Number(runtime) > 200 && Number(runtime) <= 360, `next try in ${runtime}s`);
    assert.equal(error, 'connect to mx.example.net[192.0.2.1]: Connection refused\\x7cagain');
    assert.deepEqual((lines[1] as string).split('|').slice(5, 7), ['team@example.com', 'list@example.com'], 'rcpt as given, dest after expansion');
  });

  it('sh q: abbreviations; --json; --human; a message id', async () => {
    const env = await b.queue('', ['bob@example.com'], 'Subject: report\r\n\r\nx\r\n', { client: { address: '127.0.0.1', port: 0, proto: 'LOCAL', listener: 'bounce' } });
    const other = await b.queue('alice@example.net', ['carol@example.com']);
    const short = await b.ctl(['sh', 'q']);
    assert.equal(short.status, 0);
    assert.equal(short.out, (await b.ctl(['show', 'queue'])).out);
    assert.match(short.out, /^[0-9a-f]{16}\|local\|mta\|bounce,internal\|@\|bob@example.com\|/);

    const j = await b.ctl(['show', 'queue', '--json']);
    const arr = JSON.parse(j.out) as QueueEntry[];
    assert.deepEqual(arr.map((e) => [e.msgid, e.state, e.sender]), [
      [env.msgid, 'deferred', ''],
      [other.msgid, 'deferred', 'alice@example.net'],
    ]);

    const one = await b.ctl(['show', 'queue', other.msgid]);
    assert.equal(one.out.trimEnd().split('\n').length, 1);
    assert.ok(one.out.startsWith(other.recipients[0]?.evpid as string));

    const h = await b.ctl(['--human', 'show', 'queue']);
    const rows = h.out.trimEnd().split('\n');
    assert.match(rows[0] as string, /^ENVELOPE\s+STATE\s+AGE/);
    assert.match(rows[1] as string, /deferred\s+\d+s\s+1\s+in [45]m\d*s?\s+<>\s+bob@example.com\s+connect to/);
    assert.match(rows.at(-1) as string, /^-- 2 envelopes in 2 messages, \d+ bytes$/);
  });

  it('show queue with the daemon stopped reads the spool', async () => {
    const env = await b.queue('alice@example.net', ['bob@example.com', 'carol@example.com']);
    await b.ctl(['pause', 'envelope', env.recipients[1]?.evpid as string]);
    const online = (JSON.parse((await b.ctl(['show', 'queue', '--json'])).out) as QueueEntry[]).map((e): QueueEntry => ({ ...e, runstate: 'offline', runtime: null }));
    await b.server.close();
    const r = await b.ctl(['show', 'queue', '--json']);
    assert.equal(r.status, 0, r.err);
    const off = JSON.parse(r.out) as QueueEntry[];
    // The runner's clock read for its record and for its memory may fall either side of a second.
    const noLastTry = (e: QueueEntry): QueueEntry => ({ ...e, lastTry: 0 });
    assert.deepEqual(off.map(noLastTry), online.map(noLastTry));
    off.forEach((e, i) => assert.ok(Math.abs(e.lastTry - (online[i]?.lastTry ?? 0)) <= 1));
    assert.deepEqual(off.map((e) => e.state), ['deferred', 'held']);
    const text = await b.ctl(['show', 'queue']);
    assert.match(text.out, /\|hold\|alice@example.net\|carol@example.com\|.*\|offline\|\|/);
    const env2 = await b.ctl(['show', 'envelope', env.recipients[0]?.evpid as string]);
    assert.match(env2.out, /^state: deferred \(daemon stopped\)$/m);
    const msg = await b.ctl(['show', 'message', env.msgid]);
    assert.match(msg.out, /Subject: test\r\n\r\nhello\r\n$/);
    assert.match((await b.ctl(['show', 'queue', 'abcdef12'])).err, /no such message: abcdef12/);
  });

  it('show envelope, show message (text and JSON)', async () => {
    const body = 'Subject: hello\r\n\r\nbinary \xff bytes\r\n';
    const env = await b.queue('alice@example.net', ['bob@example.com'], body, { envid: 'ENV-1' });
    const evpid = env.recipients[0]?.evpid as string;
    const r = await b.ctl(['show', 'envelope', evpid]);
    assert.equal(r.status, 0, r.err);
    for (const re of [/^evpid: [0-9a-f]{16}$/m, /^state: deferred$/m, /^agent: mta$/m, /^sender: alice@example.net$/m, /^rcpt: bob@example.com$/m, /^attempts: 1$/m, /^dsn-envid: ENV-1$/m, /^client: 192.0.2.7 port 40123$/m, /^history: \S+ deferred \(attempt 1, next \S+\) connect to/m, /^next-try: \S+ \(in [45]m/m]) {
      assert.match(r.out, re);
    }
    const j = JSON.parse((await b.ctl(['--json', 'show', 'envelope', evpid])).out) as { recipient: { address: string }; attempts: number };
    assert.equal(j.recipient.address, 'bob@example.com');
    assert.equal(j.attempts, 1);
    const m = await b.ctl(['show', 'message', evpid]);
    assert.ok(m.raw.subarray(m.raw.length - Buffer.byteLength(body)).equals(Buffer.from(body)), 'bytes as stored');
    const mj = JSON.parse((await b.ctl(['show', 'message', env.msgid, '--json'])).out) as { size: number; base64: string };
    assert.ok(Buffer.from(mj.base64, 'base64').equals(m.raw));
    assert.equal(mj.size, m.raw.length);
    const bad = await b.ctl(['show', 'envelope', `${env.msgid}00000000`]);
    assert.equal(bad.status, 1);
    assert.equal(bad.err, `smtpctl: no such envelope: ${env.msgid}00000000\n`);
  });

  it('show stats, show status, show hosts, show routes', async () => {
    b.stats.inc('smtp.session', 2);
    b.stats.inc('smtp.session.inet4', 2);
    b.stats.inc('smtp.tls');
    await b.queue('alice@example.net', ['bob@example.com']);
    const s = await b.ctl(['show', 'stats']);
    assert.equal(s.status, 0);
    const lines = s.out.trimEnd().split('\n');
    const keys = lines.map((l) => l.slice(0, l.indexOf('=')));
    assert.deepEqual(keys, [...keys].sort());
    for (const l of ['smtp.session=2', 'smtp.session.inet4=2', 'smtp.session.inet6=0', 'smtp.tls=1', 'scheduler.delivery.tempfail=1', 'scheduler.delivery.ok=0', 'scheduler.delivery.permfail=0', 'mta.session=0', 'mda.envelope=0', 'queue.message=1', 'queue.envelope=1', 'smtp.message.rate=0']) {
      assert.ok(lines.includes(l), `${l} in:\n${s.out}`);
    }
    assert.ok(lines.some((l) => /^uptime=\d+$/.test(l)));
    assert.ok(lines.some((l) => /^uptime\.human=\d+[smhd]/.test(l)));
    assert.ok(lines.some((l) => /^queue\.oldest\.human=/.test(l)));
    assert.equal(JSON.parse((await b.ctl(['show', 'stats', '--json'])).out)['smtp.session'], 2);

    await b.ctl(['pause', 'mda']);
    assert.equal((await b.ctl(['show', 'status'])).out, 'MDA paused\nMTA running\nSMTP running\n');
    assert.deepEqual(JSON.parse((await b.ctl(['show', 'status', '--json'])).out), { smtp: 'running', mta: 'running', mda: 'paused', sessions: 0 });
    assert.equal((await b.ctl(['show', 'hosts'])).out, 'host=mx.example.net address=192.0.2.1 state=down errors=3\n');
    assert.equal((await b.ctl(['show', 'routes'])).out, '');
    assert.equal((await b.ctl(['show', 'routes', '--json'])).out, '[]\n');
  });

  it('schedule, remove, pause/resume envelope: counts, effects, unknown ids', async () => {
    const env = await b.queue('alice@example.net', ['bob@example.com', 'carol@example.com']);
    const [e1, e2] = env.recipients.map((r) => r.evpid) as [string, string];
    assert.deepEqual(await b.ctl(['pause', 'envelope', e1]), { status: 0, out: '1 envelope paused\n', err: '', raw: Buffer.from('1 envelope paused\n') });
    assert.equal(b.runner.schedule.get(e1)?.state, 'held');
    assert.equal((await b.ctl(['sch', 'all'])).out, '1 envelope scheduled\n');
    await b.runner.idle();
    assert.equal(b.runner.schedule.get(e2)?.attempts, 2);
    assert.equal((await b.ctl(['resume', 'envelope', 'all'])).out, '1 envelope resumed\n');
    assert.equal(b.runner.schedule.get(e1)?.state, 'deferred');
    assert.equal((await b.ctl(['schedule', env.msgid.toUpperCase()])).out, '2 envelopes scheduled\n');
    await b.runner.idle();
    assert.deepEqual(JSON.parse((await b.ctl(['--json', 'remove', e2])).out), { count: 1 });
    assert.equal(b.runner.schedule.get(e2)?.state, 'failed');
    assert.equal((await b.ctl(['remove', 'all'])).out, '1 envelope removed\n');
    await b.runner.idle();
    assert.equal((await b.ctl(['show', 'queue'])).out, '');
    const unknown = await b.ctl(['schedule', 'abcdef12']);
    assert.deepEqual([unknown.status, unknown.out, unknown.err], [1, '', 'smtpctl: no such message: abcdef12\n']);
    assert.equal((await b.ctl(['remove', '0123456789abcdef'])).err, 'smtpctl: no such envelope: 0123456789abcdef\n');
  });

  it('an envelope in flight shows as inflight', async () => {
    const env = await b.queue('alice@example.net', ['hang@example.org']);
    await new Promise((r) => setTimeout(r, 50));
    const line = (await b.ctl(['show', 'queue'])).out.trim().split('|');
    assert.deepEqual([line[0], line[2], line[6], line[11]], [env.recipients[0]?.evpid, 'mda', 'hang@example.org', 'inflight']);
  });

  it('pause/resume smtp|mta|mda, log, update table, reload, stop', async () => {
    for (const args of [['pause', 'smtp'], ['pause', 'mta'], ['resume', 'mta'], ['resume', 'smtp'], ['log', 'verbose'], ['update', 'table', 'aliases'], ['reload']]) {
      const r = await b.ctl(args);
      assert.deepEqual([r.status, r.out, r.err], [0, 'command succeeded\n', ''], args.join(' '));
    }
    assert.equal(b.target.verbose, true);
    assert.equal((await b.ctl(['l', 'b'])).status, 0);
    assert.equal(b.target.verbose, false);
    const t = await b.ctl(['update', 'table', 'nope']);
    assert.deepEqual([t.status, t.err], [1, 'smtpctl: no table "nope"\n']);
    b.target.reloadError = '/etc/mail/smtpd.conf:3:1: unknown keyword "frobnicate"';
    const rl = await b.ctl(['reload']);
    assert.equal(rl.status, 1);
    assert.equal(rl.err, 'smtpctl: reload failed, smtpd keeps the configuration in force: /etc/mail/smtpd.conf:3:1: unknown keyword "frobnicate"\n');
    assert.equal((await b.ctl(['stop'])).status, 0);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(b.target.stopped, 1);
  });

  it('monitor: header, then a line a second (here: 30 ms) of differences', async () => {
    const ac = new AbortController();
    let out = '';
    const p = b.ctl(['monitor'], {
      signal: ac.signal,
      onOut: (s) => {
        out += s;
        if (out.split('\n').length > 6) ac.abort();
      },
    });
    setTimeout(() => b.stats.inc('smtp.session', 3), 40);
    const r = await p;
    assert.equal(r.status, 0, r.err);
    assert.ok(r.out.startsWith(MONITOR_HEADER));
    const data = r.out.split('\n').slice(2).filter((l) => l !== '');
    assert.ok(data.length >= 4);
    for (const l of data) assert.match(l, /^(\s+\d+){13}$/);
    const conn = data.map((l) => Number(l.trim().split(/\s+/)[1]));
    assert.equal(conn.reduce((a, x) => a + x, 0), 3, 'the 3 connections counted once, as differences');
  });

  it('monitor --json: one object a line', async () => {
    const ac = new AbortController();
    const r = await b.ctl(['monitor', '--json'], { signal: ac.signal, onOut: () => ac.abort() });
    assert.deepEqual(Object.keys(JSON.parse(r.out.split('\n')[0] as string) as object).sort(), ['bounced', 'clients', 'connected', 'dequeued', 'disconnected', 'enqueued', 'envelopes', 'expired', 'loop', 'ok', 'permfail', 'removed', 'tempfail']);
  });

  it('daemon not running: one line, exit 1', async () => {
    await b.server.close();
    for (const args of [['pause', 'mta'], ['show', 'stats'], ['monitor'], ['schedule', 'all']]) {
      const r = await b.ctl(args);
      assert.deepEqual([r.status, r.out, r.err], [1, '', `smtpctl: smtpd is not running (no control socket at ${b.socket})\n`], args.join(' '));
    }
  });

  it('unknown command, ambiguous prefix, unknown option: one line, exit 1', async () => {
    const cases: [string[], RegExp][] = [
      [['frob'], /^smtpctl: unknown command "frob" \(smtpctl help lists the commands\)\n$/],
      [['s'], /^smtpctl: ambiguous command "s": show, schedule, stop\n$/],
      [['re'], /^smtpctl: ambiguous command "re": remove, resume, reload\n$/],
      [['show'], /^smtpctl: incomplete command "show"; possibilities: show queue, show queue <msgid>, show envelope <evpid>/],
      [['--frob', 'show', 'queue'], /^smtpctl: unknown option --frob/],
      [['-x', 'show', 'queue'], /^smtpctl: unknown option -- x/],
      [['remove', 'a'], /^smtpctl: "a" does not fit after "remove"/],
      [[], /^smtpctl: no command given/],
    ];
    for (const [args, re] of cases) {
      const r = await b.ctl(args);
      assert.equal(r.status, 1, args.join(' '));
      assert.match(r.err, re);
      assert.equal(r.err.split('\n').length, 2, 'one line');
      assert.equal(r.out, '');
    }
    const h = await b.ctl(['help']);
    assert.equal(h.status, 0);
    assert.match(h.out, /^usage: smtpctl/);
    assert.match(h.out, /^ {2}pause envelope <id>\s+hold a message/m);
  });

  it('encrypt: bcrypt of the argument, or of each line of standard input; no daemon needed', async () => {
    await b.server.close();
    const r = await b.ctl(['encrypt', 'correct horse']);
    assert.equal(r.status, 0, r.err);
    const hash = r.out.trim();
    assert.match(hash, /^\$2[aby]\$10\$/);
    assert.equal(await bcrypt.compare('correct horse', hash), true);
    assert.equal(await bcrypt.compare('wrong', hash), false);
    const s = await b.ctl(['enc'], { stdin: ['one', '', 'two'] });
    const hashes = s.out.trim().split('\n');
    assert.equal(hashes.length, 2);
    assert.equal(await bcrypt.compare('one', hashes[0] as string), true);
    assert.equal(await bcrypt.compare('two', hashes[1] as string), true);
  });

  it('the built command; as a user outside the group: permission denied', { skip: process.getuid?.() !== 0 ? 'needs root to run as nobody' : false }, async () => {
    chmodSync(b.dir, 0o755);
    chmodSync(b.confPath, 0o644);
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MAIN, 'smtpctl', '-f', b.confPath, 'show', 'status']);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `smtpctl: permission denied on ${b.socket} (the control socket is for root and the smtpd group)\n`);
    const ok = await run(process.execPath, [MAIN, 'smtpctl', '-f', b.confPath, 'show', 'status']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, 'MDA running\nMTA running\nSMTP running\n');
    const enc = await run(process.execPath, [MAIN, 'smtpctl', 'encrypt'], { input: 'secret\n' });
    assert.equal(enc.status, 0, enc.stderr);
    assert.match(enc.stdout, /^\$2[aby]\$10\$.{53}\n$/);
    assert.equal(await bcrypt.compare('secret', enc.stdout.trim()), true);
  });
});
