/*
 * test/e2e/deliver-mda.test.ts — `mda "command"` through the running smtpd:
 *  - Debian's procmail files messages by its recipes into maildir folders,
 *    seeing the envelope in SENDER/RECIPIENT/EXTENSION (procmail -p keeps
 *    the environment; -d would need real users and /var/mail);
 *  - a shell script records its environment (env -0), arguments and
 *    standard input: the variables docs/delivery.md lists, the format
 *    specifiers passed as arguments, the message with Return-Path and
 *    Delivered-To in front;
 *  - envelope values full of shell syntax ($(…), `…`, ;, |, &) reach the
 *    command as data and run nothing (OpenSMTPD's CVE-2020-7247).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { python, requireTool, run } from '../helpers/tools.js';
import { HEAD, listDir, message, sendOk, startSite, testDir, usersTable, waitFor, writeFiles } from './deliver-helpers.js';

/** Writes <out>/<n>.env (env -0), <n>.args (NUL-separated), <n>.msg (stdin), <n>.pwd; exits with $MDA_EXIT's value if that file exists. */
const RECORD_SH = `#!/bin/sh
out="$DIR/out"
n=$(ls "$out" | grep -c '\\.done$')
env -0 > "$out/$n.env"
printf '%s\\0' "$@" > "$out/$n.args"
pwd > "$out/$n.pwd"
cat > "$out/$n.msg"
touch "$out/$n.done"
`;

interface Recorded {
  readonly env: Record<string, string>;
  readonly args: string[];
  readonly msg: string;
  readonly pwd: string;
}

function records(dir: string): Recorded[] {
  const out = join(dir, 'out');
  const n = listDir(out).filter((f) => f.endsWith('.done')).length;
  return Array.from({ length: n }, (_, i) => {
    const env: Record<string, string> = {};
    for (const kv of readFileSync(join(out, `${i}.env`), 'utf8').split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const args = readFileSync(join(out, `${i}.args`), 'utf8').split('\0').slice(0, -1);
    return { env, args, msg: readFileSync(join(out, `${i}.msg`), 'utf8'), pwd: readFileSync(join(out, `${i}.pwd`), 'utf8').trim() };
  });
}

/** Every file under dir whose name contains "pwned". */
function pwned(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.toLowerCase().includes('pwned'));
}

describe('mda delivery through the daemon', () => {
  it('a shell script gets the envelope in its environment, format specifiers as arguments, the message on stdin', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice']), aliases: 'postbox: alice\n', 'bin/record.sh': [RECORD_SH, 0o755], 'out/.keep': '' });
    const d = await startSite(
      dir,
      `${HEAD}
table users file:$DIR/users
table aliases file:$DIR/aliases
action "rec" mda "$DIR/bin/record.sh %{sender} '%{rcpt}' \\"<%{dest}>\\" %{user.username} %{rcpt.user:strip} %{mbox.from}" alias <aliases> userbase <users>
match from any for domain "test.example" action "rec"
`,
    );
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice+lists@test.example'], data: message({ Subject: 'for the script', From: 'carol@remote.example' }, 'From the top\n.\nbye\n') });
    await waitFor('the first record', () => (records(dir).length >= 1 ? true : undefined), { daemon: d });
    await sendOk(d.port, { from: '', to: ['Postbox@test.example'], data: message({ Subject: 'via an alias, from <>' }, 'x\n') });
    const [r1, r2] = await waitFor('two records', () => {
      const rs = records(dir);
      return rs.length >= 2 ? rs : undefined;
    }, { daemon: d });
    assert.ok(r1 && r2);
    const home = join(dir, 'home', 'alice');
    const common = { USER: 'alice', LOGNAME: 'alice', HOME: home, PATH: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin', SHELL: '/bin/sh' };
    const mine = (e: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(e).filter(([k]) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(k) && !k.startsWith('POSTERN_FORMAT_')));
    // Nothing of the daemon's own environment leaks in: exactly these variables.
    assert.deepEqual(mine(r1.env), { ...common, SENDER: 'carol@remote.example', RECIPIENT: 'alice+lists@test.example', ORIGINAL_RECIPIENT: 'alice+lists@test.example', LOCAL: 'alice+lists', DOMAIN: 'test.example', EXTENSION: 'lists' });
    assert.deepEqual(r1.args, ['carol@remote.example', 'alice+lists@test.example', '<alice+lists@test.example>', 'alice', 'alice', 'carol@remote.example']);
    assert.equal(r1.pwd, home, 'runs in the user\'s home');
    // stdin: Return-Path and Delivered-To, then the message, LF line ends, no From_ quoting, dots unstuffed.
    assert.match(r1.msg, /^Return-Path: <carol@remote\.example>\nDelivered-To: alice\+lists@test\.example\nReceived: from client\.test /);
    assert.ok(r1.msg.endsWith('\nSubject: for the script\nFrom: carol@remote.example\n\nFrom the top\n.\nbye\n'), r1.msg);
    assert.ok(!r1.msg.includes('\r'));

    // The null sender through an alias: SENDER empty, no Return-Path, MAILER-DAEMON for %{mbox.from}.
    assert.equal(r2.env.SENDER, '');
    assert.equal(r2.env.USER, 'alice');
    assert.equal(r2.env.ORIGINAL_RECIPIENT, 'Postbox@test.example');
    assert.equal(r2.env.EXTENSION, undefined);
    assert.deepEqual(r2.args.slice(3), ['alice', 'Postbox', 'MAILER-DAEMON']);
    assert.match(r2.msg, /^Delivered-To: /);
    assert.match(d.logs.filter((l) => l.startsWith('mda delivery ok')).join('\n'), /action=rec .*stat="2\.0\.0 mda: delivered"/);
  });

  it('envelope values made of shell syntax reach the command as data and run nothing', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice']), 'bin/record.sh': [RECORD_SH, 0o755], 'out/.keep': '' });
    const d = await startSite(
      dir,
      `${HEAD}
table users file:$DIR/users
action "rec" mda "$DIR/bin/record.sh %{sender:raw} '%{rcpt:raw}' \\"%{rcpt.user:raw}\\" %{sender}" userbase <users>
match from any for domain "test.example" action "rec"
`,
    );
    // A quoted local part may hold blanks, $( ), ;, |, & and backquotes; a dot-atom may hold ` $ { } | & ' too.
    // (A local part is at most 64 octets.)
    const sender = '"$(touch pwned1);`touch pwned2`|touch pwned3&\'x\'"@evil.example';
    const rcpt = "alice+`touch${IFS}pwned4`|sh&{x}'y'$HOME@test.example";
    await sendOk(d.port, { from: sender, to: [rcpt], data: message({ Subject: 'hostile envelope' }, 'x\n') });
    const [r] = await waitFor('the record', () => {
      const rs = records(dir);
      return rs.length >= 1 ? rs : undefined;
    }, { daemon: d });
    assert.ok(r);
    assert.deepEqual(pwned(dir), [], 'nothing ran');
    assert.equal(r.env.SENDER, sender);
    assert.equal(r.env.RECIPIENT, rcpt);
    assert.equal(r.env.EXTENSION, "`touch${IFS}pwned4`|sh&{x}'y'$HOME");
    // :raw values arrive as they are, whatever the quoting around them; without :raw, OpenSMTPD's rewrite to ":".
    assert.deepEqual(r.args, [sender, rcpt, rcpt.slice(0, rcpt.lastIndexOf('@')), '":(touch pwned1);:touch pwned2::touch pwned3::x:"@evil.example']);
    assert.ok(r.msg.startsWith(`Return-Path: <${sender}>\nDelivered-To: ${rcpt}\n`), r.msg);
  });

  it('procmail files by its recipes and sees the envelope', async (t) => {
    const procmail = requireTool('procmail');
    requireTool('formail');
    const dir = testDir(t);
    writeFiles(dir, {
      users: usersTable(dir, ['alice']),
      procmailrc: [
        `MAILDIR=$DIR/pm
DEFAULT=$MAILDIR/inbox/
LOGFILE=$DIR/pm/procmail.log
VERBOSE=no

:0 fhw
| formail -I "X-Envelope-To: $RECIPIENT" -I "X-Envelope-From: $SENDER" -I "X-Extension: $EXTENSION"

:0
* ^Subject:.*urgent
urgent/
`,
        0o600,
      ],
      'pm/.keep': '',
    });
    const d = await startSite(
      dir,
      `${HEAD}
table users file:$DIR/users
action "pm" mda "${procmail} -p -Y $DIR/procmailrc" userbase <users>
match from any for domain "test.example" action "pm"
`,
    );
    await sendOk(d.port, { from: 'news@remote.example', to: ['alice+news@test.example'], data: message({ Subject: 'weekly news', From: 'news@remote.example' }, 'From the editor:\nhello\n') });
    await sendOk(d.port, { from: 'boss@remote.example', to: ['alice@test.example'], data: message({ Subject: 'urgent: call me' }, 'now\n') });
    const read = async (folder: string): Promise<{ headers: [string, string][]; body: string }[]> => {
      const path = join(dir, 'pm', folder);
      if (!existsSync(join(path, 'new'))) return [];
      const r = await run(python(), ['-c', 'import json,mailbox,sys\nprint(json.dumps([{"headers": [[k, str(v)] for k, v in m.items()], "body": m.get_payload()} for m in mailbox.Maildir(sys.argv[1], factory=None, create=False)]))', path]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { headers: [string, string][]; body: string }[];
    };
    await waitFor('both messages filed', () => (listDir(join(dir, 'pm', 'inbox', 'new')).length + listDir(join(dir, 'pm', 'urgent', 'new')).length >= 2 ? true : undefined), { daemon: d });
    const [inbox, urgent] = [await read('inbox'), await read('urgent')];
    assert.equal(inbox.length, 1);
    assert.equal(urgent.length, 1);
    const h = (m: { headers: [string, string][] } | undefined, k: string): string | undefined => m?.headers.find(([x]) => x === k)?.[1];
    assert.equal(h(inbox[0], 'Subject'), 'weekly news');
    assert.equal(h(inbox[0], 'Return-Path'), '<news@remote.example>');
    assert.equal(h(inbox[0], 'Delivered-To'), 'alice+news@test.example');
    assert.equal(h(inbox[0], 'X-Envelope-To'), 'alice+news@test.example');
    assert.equal(h(inbox[0], 'X-Envelope-From'), 'news@remote.example');
    assert.equal(h(inbox[0], 'X-Extension'), 'news');
    assert.equal(inbox[0]?.body, 'From the editor:\nhello\n');
    assert.equal(h(urgent[0], 'Subject'), 'urgent: call me');
    assert.equal(h(urgent[0], 'X-Envelope-To'), 'alice@test.example');
    assert.equal(urgent[0]?.body, 'now\n');
  });

  it('exit statuses: 75 defers, 67 is "no such user" (5.1.1), the output goes into the detail', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, {
      users: usersTable(dir, ['alice', 'bob']),
      'bin/exit.sh': ['#!/bin/sh\necho "status $1 for $USER" >&2\nexit "$1"\n', 0o755],
    });
    const d = await startSite(
      dir,
      `${HEAD}
table users file:$DIR/users
action "busy" mda "$DIR/bin/exit.sh 75" userbase <users>
action "nouser" mda "$DIR/bin/exit.sh 67" userbase <users>
match from any for domain "busy.example" action "busy"
match from any for domain "nouser.example" action "nouser"
`,
    );
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice@busy.example', 'bob@nouser.example'], data: message({ Subject: 'x' }, 'x\n') });
    const busy = await waitFor('the deferral', () => d.logs.find((l) => l.startsWith('mda delivery tempfail') && l.includes('to=<alice@busy.example>')), { daemon: d });
    assert.match(busy, /attempts=1 stat="4\.3\.0 mda: exited 75 \(EX_TEMPFAIL\): status 75 for alice"/);
    const nouser = await waitFor('the failure', () => d.logs.find((l) => l.startsWith('mda delivery permfail') && l.includes('to=<bob@nouser.example>')), { daemon: d });
    assert.match(nouser, /stat="5\.1\.1 mda: exited 67 \(EX_NOUSER\): status 67 for bob"/);
  });
});
