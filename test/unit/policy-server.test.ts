/*
 * The policy in a running SMTP server (real sockets, in this process, with
 * settings a test can make small): verdict delays that do not hold up
 * other sessions, the error limits, Postfix-style connection limits, the
 * load average, ZMailer's -s styles, and the per-request deadlines
 * against slow clients. Timings are only ever checked as "at least".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import { MailLog } from '../../src/log/maillog.js';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { TableRegistry } from '../../src/table/table.js';
import { tableFromDecl } from '../../src/table/table-static.js';
import { LocalNames } from '../../src/rules/localnames.js';
import { SystemUsers } from '../../src/users/system-users.js';
import { Stats } from '../../src/stats.js';
import { Authenticator } from '../../src/auth/authenticator.js';
import { FailRate } from '../../src/auth/failrate.js';
import { reply } from '../../src/mail/reply.js';
import type { SchedulerSeam } from '../../src/queue/seam.js';
import type { Resolver } from '../../src/dns/resolver.js';
import { SmtpServer, type ServerOptions } from '../../src/smtp/server.js';
import { buildPolicy, type PolicyDeps } from '../../src/policy/build.js';
import { withPolicyFiles } from '../../src/config/policy-files.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { FrontDoor } from '../../src/queue/enqueue.js';

interface Served {
  readonly port: number;
  readonly logs: string[];
  close(): Promise<void>;
}

async function serve(opts: { extra?: string; zmailer?: string; rules?: string; deps?: Partial<PolicyDeps>; server?: Partial<ServerOptions> } = {}): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-ps-'));
  let extra = opts.extra ?? '';
  if (opts.zmailer !== undefined) {
    writeFileSync(join(dir, 'smtpserver.conf'), opts.zmailer);
    extra += `\nsmtpserver-conf "${dir}/smtpserver.conf"`;
  }
  if (opts.rules !== undefined) {
    writeFileSync(join(dir, 'rules'), opts.rules);
    extra += `\nrules "${dir}/rules"`;
  }
  const text = `queue path "${dir}/spool"
mbox path "${dir}/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
${extra}
action "local" mbox
match from any for domain "test.example" action "local"
`;
  const r = loadConfigText(text, 'test.conf', { cwd: dir });
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  const loaded = withPolicyFiles(r.config);
  const config = loaded.config;
  const tables = new TableRegistry();
  for (const decl of config.tables.values()) tables.add(tableFromDecl(decl));
  const spool = new FsSpool({ root: config.queue.path });
  await spool.open();
  const local = new LocalNames(config.hostname);
  const built = buildPolicy(loaded, { tables, users: new SystemUsers(), local, ...opts.deps });
  const logs: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  // Nothing is delivered here: the scheduler only acknowledges.
  const scheduler: SchedulerSeam = { etrn: (domain) => reply(250, '2.0.0', `Queuing for node ${domain} started`), enqueued: () => undefined };
  const resolver = { reverseConfirmed: async () => undefined } as unknown as Resolver;
  const server = new SmtpServer(
    {
      config,
      log,
      queue: new FrontDoor({ config, policy: built.policy, spool, log, stats: new Stats(), scheduler, now: Date.now }),
      policy: built.policy,
      stats: new Stats(),
      scheduler,
      freeSpace: async () => Number.POSITIVE_INFINITY,
      now: Date.now,
      tables,
      auth: { authenticator: new Authenticator(config, tables), failrate: new FailRate(20) },
      runtime: built.session,
    },
    resolver,
    undefined,
    { ...built.connection, ...opts.server },
  );
  await server.listen(config);
  return {
    port: server.listeners[0]?.port ?? 0,
    logs,
    async close() {
      await server.close(500);
      await spool.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const open = (s: Served, from = '127.0.0.2'): Promise<RawClient> => RawClient.open(s.port, '127.0.0.1', from);

test('noto_delay: the refusal waits, the session goes on, and other sessions are not held up meanwhile', async () => {
  const s = await serve({ rules: 'noto_delay:ALL:ALL:*@elsewhere.example:550 Relaying to %T denied\nallow:ALL:ALL:ALL\n', deps: { obtuseDelays: { notoMs: 600 } } });
  try {
    const a = await open(s);
    const b = await open(s, '127.0.0.3');
    await dialogue(a, 'S: 220\nC: EHLO a.example\nS: 250\nC: MAIL FROM:<x@a.example>\nS: 250');
    await dialogue(b, 'S: 220\nC: EHLO b.example\nS: 250');
    const t0 = Date.now();
    a.send('RCPT TO:<v@elsewhere.example>\r\n');
    const order: string[] = [];
    const slow = a.reply().then((r) => {
      order.push('a');
      return r;
    });
    // While A's refusal waits, B is served.
    await dialogue(b, 'C: NOOP\nS: 250');
    order.push('b');
    const r = await slow;
    assert.ok(Date.now() - t0 >= 590, `waited ${Date.now() - t0} ms`);
    assert.equal(r.text, '550 5.7.1 Relaying to <v@elsewhere.example> denied');
    assert.deepEqual(order, ['b', 'a']);
    await dialogue(a, 'C: RCPT TO:<root@test.example>\nS: 250\nC: QUIT\nS: 221');
    a.close();
    b.close();
  } finally {
    await s.close();
  }
});

test('deny_delay: the refusal waits, then the session is closed', async () => {
  const s = await serve({ rules: 'deny_delay:127.0.0.3:ALL:ALL:554 Go away %I\nallow:ALL:ALL:ALL\n', deps: { obtuseDelays: { denyMs: 300 } } });
  try {
    const c = await open(s, '127.0.0.3');
    await dialogue(c, 'S: 220\nC: EHLO a.example\nS: 250\nC: MAIL FROM:<x@a.example>\nS: 250');
    const t0 = Date.now();
    const got = await dialogue(c, 'C: RCPT TO:<root@test.example>\nS: 554 5.7.1 Go away 127.0.0.3\nCLOSED');
    assert.ok(Date.now() - t0 >= 290, `waited ${Date.now() - t0} ms`);
    assert.equal(got.length, 1);
  } finally {
    await s.close();
  }
});

test('error limits: from the soft limit on every reply is slowed, at the hard limit the next command gets 421', async () => {
  const s = await serve({ server: { errors: { softLimit: 2, hardLimit: 4, sleepMs: 150 } } });
  try {
    const c = await open(s);
    await dialogue(c, 'S: 220\nC: EHLO a.example\nS: 250');
    const took: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      await dialogue(c, 'C: MAIL FROM:<broken\nS: 501');
      took.push(Date.now() - t0);
    }
    for (const t of took.slice(1)) assert.ok(t >= 140, `slowed: ${took.join(', ')}`);
    await dialogue(c, 'C: NOOP\nS: 421 4.7.0 mx.test.example Error: too many errors\nCLOSED');
  } finally {
    await s.close();
  }
});

test('error limits: an accepted message starts the count again', async () => {
  const s = await serve({ server: { errors: { softLimit: 0, hardLimit: 3, sleepMs: 0 } } });
  try {
    const c = await open(s);
    await dialogue(c, 'S: 220\nC: EHLO a.example\nS: 250\nC: FOO\nS: 500\nC: BAR\nS: 500');
    await dialogue(c, 'C: MAIL FROM:<a@a.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354\nC: Subject: x\nC:\nC: body\nC: .\nS: 250 2.0.0');
    await dialogue(c, 'C: BAZ\nS: 500\nC: MAIL FROM:<broken\nS: 501\nC: NOOP\nS: 250\nC: RSET\nS: 250');
    await dialogue(c, 'C: MAIL FROM:<broken\nS: 501\nC: NOOP\nS: 421\nCLOSED');
  } finally {
    await s.close();
  }
});

test('connection limits without a ZMailer file: Postfix\'s 421, counted per address; local clients are exempt', async () => {
  const s = await serve({ server: { limits: { maxPerClient: 1, maxTotal: 0, silentDropFactor: 4, silentDropExtra: 100, refusalCode: 421, exempt: (ip) => ip === '127.0.0.1' } } });
  try {
    const a = await open(s, '127.0.0.2');
    await dialogue(a, 'S: 220');
    const b = await open(s, '127.0.0.2');
    await dialogue(b, 'S: 421 4.7.0 Error: too many connections from 127.0.0.2\nCLOSED');
    const other = await open(s, '127.0.0.3');
    await dialogue(other, 'S: 220');
    const l1 = await open(s, '127.0.0.1');
    const l2 = await open(s, '127.0.0.1');
    await dialogue(l1, 'S: 220');
    await dialogue(l2, 'S: 220');
    // The first one leaves: the address is served again.
    a.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await open(s, '127.0.0.2');
    await dialogue(again, 'S: 220\nC: QUIT\nS: 221');
    for (const c of [other, l1, l2]) c.close();
  } finally {
    await s.close();
  }
});

test('load average: above -L the greeting is 421 4.3.2; a HELO pattern\'s limit refuses that greeting only', async () => {
  const busy = await serve({ deps: { maxLoadAverage: 4, loadAverage: () => 7.5 } });
  try {
    const c = await open(busy);
    await dialogue(c, 'S: 421 4.3.2 mx.test.example System too busy, try again later\nCLOSED');
  } finally {
    await busy.close();
  }
  const s = await serve({ zmailer: 'busy.example  3  ve\n*  ve\n', deps: { loadAverage: () => 5 } });
  try {
    await dialogue(await open(s), 'S: 220\nC: EHLO busy.example\nS: 421 4.3.2\nCLOSED');
    await dialogue(await open(s), 'S: 220\nC: EHLO calm.example\nS: 250\nC: QUIT\nS: 221');
  } finally {
    await s.close();
  }
});

test('-s sloppy: MAIL before HELO and addresses without brackets; -s strict: brackets even for a pattern with S', async () => {
  const sloppy = await serve({ zmailer: '*  ve\n', deps: { style: { kind: 'sloppy' } } });
  try {
    await dialogue(await open(sloppy), 'S: 220\nC: MAIL FROM:a@a.example\nS: 250\nC: RCPT TO:root@test.example\nS: 250\nC: QUIT\nS: 221');
  } finally {
    await sloppy.close();
  }
  const plain = await serve({ zmailer: '*  ve\n' });
  try {
    await dialogue(await open(plain), 'S: 220\nC: MAIL FROM:<a@a.example>\nS: 503 5.5.1\nC: QUIT\nS: 221');
  } finally {
    await plain.close();
  }
  const strict = await serve({ zmailer: '*  veS\n', deps: { style: { kind: 'strict' } } });
  try {
    await dialogue(await open(strict), 'S: 220\nC: EHLO a.example\nS: 250\nC: MAIL FROM: <a@a.example>\nS: 501 5.5.4\nC: MAIL FROM:<a@a.example>\nS: 250\nC: QUIT\nS: 221');
  } finally {
    await strict.close();
  }
});

/** Send `data` in pieces of `size` bytes every `everyMs`, until done or the server closes. */
async function trickle(c: RawClient, data: string, size: number, everyMs: number): Promise<'sent' | 'closed'> {
  for (let i = 0; i < data.length; i += size) {
    if (c.closed) return 'closed';
    c.send(data.slice(i, i + size));
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return c.closed ? 'closed' : 'sent';
}

test('slowloris: a command line must arrive whole within the command timeout, however it trickles', async () => {
  const s = await serve({ extra: 'smtp timeout command 1s' });
  try {
    const c = await open(s);
    await dialogue(c, 'S: 220');
    // One byte every 150 ms: a per-read timeout would never fire.
    const how = await trickle(c, `NOOP ${'x'.repeat(60)}`, 1, 150);
    assert.equal(how, 'closed');
    assert.match(c.pending, /^421 4\.4\.2 /);
  } finally {
    await s.close();
  }
});

test('slowloris: DATA content below the minimum rate is cut off; above it the same time limit is no problem', async () => {
  const s = await serve({ extra: 'smtp timeout data 1s', server: { minDataRate: 1000 } });
  try {
    const head = 'S: 220\nC: EHLO a.example\nS: 250\nC: MAIL FROM:<a@a.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354';
    const slow = await open(s);
    await dialogue(slow, head);
    // 100 bytes every 200 ms = 500 bytes/s, half the minimum.
    assert.equal(await trickle(slow, `${'y'.repeat(98)}\r\n`.repeat(40), 100, 200), 'closed');
    assert.match(slow.pending, /^421 4\.4\.2 /);
    const fast = await open(s);
    await dialogue(fast, head);
    // 500 bytes every 200 ms = 2500 bytes/s, for well over the 1 s limit.
    assert.equal(await trickle(fast, `${'z'.repeat(98)}\r\n`.repeat(75), 500, 200), 'sent');
    fast.send('.\r\n');
    assert.equal((await fast.reply()).code, 250);
    fast.close();
  } finally {
    await s.close();
  }
});
