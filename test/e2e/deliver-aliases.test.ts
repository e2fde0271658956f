/*
 * test/e2e/deliver-aliases.test.ts — aliases(5) and virtual domains through
 * the running smtpd, with the tables as text files (`table aliases
 * file:$DIR/aliases`). One alias holds every kind of destination: a local
 * user, user@domain routed again (local, and remote — relayed to Postfix's
 * smtp-sink on 127.0.0.2 by `relay host`), /path/file, |command and
 * :include:; error: entries refuse at RCPT; loops are cut (and a loop with
 * nobody behind it is refused); a message that already carries the
 * recipient's Delivered-To: is a loop at delivery and bounces (the bounce
 * relayed to the sink). A virtual domain (`action … virtual <table>`)
 * resolves user@domain, bare user and @domain keys.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startSmtpSink, type Sink } from '../helpers/mta-peers.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { HEAD, IS_ROOT, fileLines, listDir, message, readMbox, send, sendOk, startSite, testDir, usersTable, waitFor, waitForMbox, writeFiles } from './deliver-helpers.js';

const SINK = '127.0.0.2';

/** |command destination: records its argument, environment and input. */
const PIPE_SH = `#!/bin/sh
f="$DIR/pipe-out/$1.$$"
{ echo "USER=$USER"; echo "SENDER=$SENDER"; echo "RECIPIENT=$RECIPIENT"; echo "ORIGINAL_RECIPIENT=$ORIGINAL_RECIPIENT"; id -u; } > "$f.env"
cat > "$f.msg"
`;

const ALIASES = `# aliases(5), as a text table
root: alice
postmaster: root

# every kind of destination
team: alice, bob@test.example, dave@remote.example,
      $DIR/archive/team.mbox,
      "|$DIR/bin/pipe.sh team",
      :include:$DIR/team.inc

# refusals
gone: error:550 5.1.6 gone: write to gone@elsewhere.example instead
busy: error:450 4.2.1 try again later

# loops: one with a user behind it, one without
loop1: loop2
loop2: loop1, alice
dead1: dead2
dead2: dead1

# an alias named after a user: the user itself, and a copy
carol: carol, $DIR/archive/carol.copy
`;

const VIRTUAL = `info@virt.example     alice, bob
sales@virt.example    dave@remote.example
abuse                 erin
@virt.example         carol
known@virt2.example   alice
`;

const CONFIG = (port: number): string => `${HEAD}
table users file:$DIR/users
table aliases file:$DIR/aliases
table virtual file:$DIR/virtual
action "local" mbox alias <aliases> userbase <users>
action "vdom" mbox virtual <virtual> userbase <users>
action "relay" relay host smtp+notls://${SINK}:${port}
match from any for domain "test.example" action "local"
match from any for domain { "virt.example", "virt2.example" } action "vdom"
match from any for local action "local"
match from local for any action "relay"
`;

describe('aliases and virtual domains through the daemon', () => {
  let sink: Sink;
  let port = 0;
  before(async () => {
    port = await freePort([SINK]);
    sink = await startSmtpSink(SINK, port);
  });
  after(async () => {
    await sink.close();
  });

  /** smtp-sink's dumps that carry this text. */
  const dumps = (text: string): string[] => sink.messages().filter((m) => m.includes(text));

  async function site(t: Parameters<typeof testDir>[0]) {
    const dir = testDir(t);
    writeFiles(dir, {
      users: usersTable(dir, ['alice', 'bob', 'carol', 'erin']),
      aliases: ALIASES,
      virtual: VIRTUAL,
      'team.inc': '# included by team\nerin\nfrank@remote.example\n',
      'bin/pipe.sh': [PIPE_SH, 0o755],
      // Files and commands of an alias that is no user run as nobody when Postern is root.
      'archive/.keep': ['', 0o666],
      'pipe-out/.keep': ['', 0o666],
    });
    for (const sub of ['archive', 'pipe-out']) chmodSync(join(dir, sub), 0o1777);
    const d = await startSite(dir, CONFIG(port));
    return { dir, d, mbox: (u: string) => join(dir, 'mail', u) };
  }

  it('one alias with every kind of destination', async (t) => {
    const { dir, d, mbox } = await site(t);
    const msgid = await sendOk(d.port, { from: 'zoe@remote.example', to: ['team@test.example'], data: message({ Subject: 'to the team', 'Message-ID': '<team@remote.example>' }, 'From all of us\nhello team\n') });

    // user, user@domain (local), and the :include:d user: their mboxes.
    // Delivered-To: the address each copy is for — the alias, or the forward address that led to it.
    for (const [u, to] of [['alice', 'team@test.example'], ['bob', 'bob@test.example'], ['erin', 'team@test.example']] as const) {
      const [m, ...more] = await waitForMbox(mbox(u), 1, { daemon: d });
      assert.equal(more.length, 0, `${u} got one copy`);
      assert.equal(m?.header('Delivered-To'), to, u);
      assert.equal(m?.header('Subject'), 'to the team', u);
      assert.equal(m?.text, '>From all of us\nhello team\n');
    }
    // /path/file: appended in mbox format.
    const [copy] = await waitForMbox(join(dir, 'archive', 'team.mbox'), 1, { daemon: d });
    assert.match(copy?.from ?? '', /^zoe@remote\.example /);
    assert.equal(copy?.header('Subject'), 'to the team');
    // |command: the message on stdin, the envelope in the environment, as nobody when root.
    const out = await waitFor('the command', () => {
      const fs = listDir(join(dir, 'pipe-out')).filter((f) => f.endsWith('.msg'));
      return fs.length > 0 && d.logs.some((l) => /^mda delivery ok .*stat="2\.0\.0 command: delivered"/.test(l)) ? fs : undefined;
    }, { daemon: d });
    assert.equal(out.length, 1);
    const base = join(dir, 'pipe-out', (out[0] as string).replace(/\.msg$/, ''));
    const env = fileLines(`${base}.env`);
    assert.equal(env[1], 'SENDER=zoe@remote.example');
    assert.equal(env[3], 'ORIGINAL_RECIPIENT=team@test.example');
    assert.equal(env[4], IS_ROOT ? String(Number(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))?.split(':')[2])) : String(process.getuid?.()));
    assert.match(readFileSync(`${base}.msg`, 'utf8'), /^Return-Path: <zoe@remote\.example>\nDelivered-To: team@test\.example\n[^]*\nSubject: to the team\nMessage-ID: <team@remote\.example>\n\nFrom all of us\nhello team\n$/);
    // user@domain remote, direct and from the include file: relayed to the sink, one transaction.
    const [relayed, ...others] = await waitFor('the relayed copy', () => {
      const ms = dumps('Subject: to the team');
      return ms.length > 0 ? ms : undefined;
    }, { daemon: d });
    assert.equal(others.length, 0);
    assert.match(relayed ?? '', /X-Mail-Args: <zoe@remote\.example>/);
    assert.deepEqual([...(relayed ?? '').matchAll(/X-Rcpt-Args: <([^>]+)>/g)].map((m) => m[1]).sort(), ['dave@remote.example', 'frank@remote.example']);
    await waitFor('every delivery', () => (d.logs.filter((l) => /^(mda|mta) delivery ok /.test(l) && l.includes(msgid)).length === 7 ? true : undefined), { daemon: d });
    assert.equal(d.logs.filter((l) => /^(mda|mta) delivery (tempfail|permfail)/.test(l)).length, 0, d.logs.join('\n'));
  });

  it('error: entries refuse at RCPT; loops are cut; postmaster always has a destination; keys ignore case', async (t) => {
    const { dir, d, mbox } = await site(t);
    const c = await RawClient.open(d.port);
    await dialogue(
      c,
      `S: 220
C: EHLO client.test
S: 250
C: MAIL FROM:<zoe@remote.example>
S: 250
C: RCPT TO:<gone@test.example>
S: 550 5.1.6 gone: write to gone@elsewhere.example instead
C: RCPT TO:<busy@test.example>
S: 450 4.2.1 try again later
C: RCPT TO:<dead1@test.example>
S: 550 5.4.6
C: RCPT TO:<nosuchuser@test.example>
S: 550 5.1.1
C: RCPT TO:<loop1@test.example>
S: 250
C: RCPT TO:<postmaster>
S: 250
C: RCPT TO:<ROOT@Test.Example>
S: 250
C: DATA
S: 354
C: Subject: loops and postmaster
C:
C: x
C: .
S: 250 2.0.0
C: QUIT
S: 221`,
    );
    c.close();
    // loop1 → loop2 → (loop1: cut), alice; postmaster → root → alice; ROOT → alice: alice once.
    const ms = await waitForMbox(mbox('alice'), 1, { daemon: d });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await readMbox(mbox('alice'))).length, 1, 'one copy for alice, whatever the paths');
    assert.equal(ms[0]?.header('Subject'), 'loops and postmaster');
    assert.deepEqual(listDir(join(dir, 'mail')), ['alice']);
  });

  it('an alias named after its user delivers to the user and the copy', async (t) => {
    const { dir, d, mbox } = await site(t);
    await sendOk(d.port, { from: 'zoe@remote.example', to: ['carol@test.example'], data: message({ Subject: 'for carol' }, 'x\n') });
    const [m] = await waitForMbox(mbox('carol'), 1, { daemon: d });
    assert.equal(m?.header('Subject'), 'for carol');
    const [copy] = await waitForMbox(join(dir, 'archive', 'carol.copy'), 1, { daemon: d });
    assert.equal(copy?.header('Subject'), 'for carol');
  });

  it('a message that already went through the recipient (Delivered-To) is a loop: 5.4.6, bounced to the sender through the relay', async (t) => {
    const { d, mbox } = await site(t);
    const msgid = await sendOk(d.port, { from: 'looper@remote.example', to: ['bob@test.example'], data: message({ 'Delivered-To': 'bob@test.example', Subject: 'round and round' }, 'x\n') });
    await waitFor('the loop', () => d.logs.find((l) => /^mda delivery permfail .*to=<bob@test\.example>.*stat="5\.4\.6 /.test(l)), { daemon: d });
    const [bounce] = await waitFor('the bounce at the sink', () => {
      const ms = dumps(`X-Postern-Queue-ID: ${msgid}`);
      return ms.length > 0 ? ms : undefined;
    }, { daemon: d });
    assert.match(bounce ?? '', /X-Mail-Args: <>/);
    assert.match(bounce ?? '', /X-Rcpt-Args: <looper@remote\.example>/);
    assert.match(bounce ?? '', /\nAction: failed\r?\nStatus: 5\.4\.6\r?\n/);
    assert.deepEqual(await readMbox(mbox('bob')), []);
  });

  it('a virtual domain: user@domain, bare user and @domain keys; no catch-all means unknown', async (t) => {
    const { d, mbox } = await site(t);
    const r = await send(d.port, {
      from: 'zoe@remote.example',
      to: ['info@virt.example', 'abuse@virt.example', 'anything@virt.example', 'sales@virt.example', 'known@virt2.example', 'nosuch@virt2.example'],
      data: message({ Subject: 'virtual' }, 'x\n'),
    });
    assert.deepEqual(r.rcpts.map(([code]) => code), [250, 250, 250, 250, 250, 550]);
    assert.match(r.rcpts[5]?.[1] ?? '', /^5\.1\.1 /);
    assert.equal(r.data?.[0], 250);
    // info → alice, bob; abuse (bare key) → erin; anything (@virt.example) → carol; known@virt2 → alice (once).
    for (const u of ['alice', 'bob', 'carol', 'erin']) {
      const ms = await waitForMbox(mbox(u), 1, { daemon: d });
      assert.equal(ms[0]?.header('Subject'), 'virtual', u);
    }
    // sales → a remote address, relayed.
    const [relayed] = await waitFor('the relayed copy', () => {
      const ms = dumps('Subject: virtual');
      return ms.length > 0 ? ms : undefined;
    }, { daemon: d });
    assert.match(relayed ?? '', /X-Rcpt-Args: <dave@remote\.example>/);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await readMbox(mbox('alice'))).length, 1);
  });
});
