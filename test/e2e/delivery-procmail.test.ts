/*
 * test/e2e/delivery-procmail.test.ts — a real MDA: Debian's procmail, run
 * by `mda "procmail -p RCFILE"` (-p: keep the environment, which procmail
 * otherwise clears), filing into maildir folders by a recipe, with
 * the envelope it read from the environment and its own From_ handling.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MODES, FakeUsers, actionOf, agent, config, message, statuses, task, tmpDir } from '../unit/delivery-helpers.js';
import { requireTool } from '../helpers/tools.js';

function files(dir: string): string[] {
  return readdirSync(join(dir, 'new')).map((f) => readFileSync(join(dir, 'new', f), 'utf8'));
}

for (const privsep of MODES) {
  describe(`procmail as the mda (${privsep ? 'through the deliver-as helper' : 'in the daemon'})`, () => {
    it('files messages by its recipes and sees the envelope', async (t) => {
      const procmail = requireTool('procmail');
      const dir = tmpDir(t);
      const home = join(dir, 'home');
      mkdirSync(home);
      mkdirSync(join(dir, 'Mail'));
      const rc = join(dir, 'procmailrc');
      writeFileSync(
        rc,
        `MAILDIR=${dir}/Mail
DEFAULT=$MAILDIR/inbox/
LOGFILE=${dir}/procmail.log
VERBOSE=no

:0
* ^Subject:.*urgent
urgent/

:0 fhw
| formail -I "X-Envelope-To: $RECIPIENT" -I "X-Extension: $EXTENSION"
`,
        { mode: 0o600 },
      );
      const c = config(`action "pm" mda "${procmail} -p -Y ${rc}"\nmatch from any for local action "pm"\n`);
      const a = agent({ config: c, users: new FakeUsers({ bob: { home } }), privsep });
      const action = actionOf(c, 'pm');
      const r1 = await a.deliver(task({ action, recipients: ['bob+news@example.org'], message: message({ Subject: 'weekly news', From: 'news@example.net' }, 'From the editor:\r\nhello\r\n') }));
      const r2 = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'urgent: call me' }, 'now\r\n') }));
      assert.deepEqual([...statuses(r1), ...statuses(r2)], ['ok 2.0.0', 'ok 2.0.0']);
      const inbox = files(join(dir, 'Mail', 'inbox'));
      assert.equal(inbox.length, 1);
      assert.match(inbox[0] ?? '', /^Return-Path: <alice@example\.net>\nDelivered-To: bob\+news@example\.org\nSubject: weekly news\n/);
      assert.match(inbox[0] ?? '', /\nX-Envelope-To: bob\+news@example\.org\nX-Extension: news\n/);
      assert.match(inbox[0] ?? '', /\n\nFrom the editor:\nhello\n$/);
      const urgent = files(join(dir, 'Mail', 'urgent'));
      assert.equal(urgent.length, 1);
      assert.match(urgent[0] ?? '', /Subject: urgent: call me\n\nnow\n$/);
    });

    it('reports procmail\'s own temporary failure (EX_TEMPFAIL) as a retry', async (t) => {
      const procmail = requireTool('procmail');
      const dir = tmpDir(t);
      const rc = join(dir, 'procmailrc');
      // EXITCODE makes procmail end with EX_TEMPFAIL, as it does when it cannot deliver.
      writeFileSync(rc, `LOGFILE=${dir}/procmail.log\nEXITCODE=75\n:0\n/dev/null\n`, { mode: 0o600 });
      const c = config(`action "pm" mda "${procmail} ${rc}"\nmatch from any for local action "pm"\n`);
      const a = agent({ config: c, users: new FakeUsers({ bob: { home: dir } }), privsep });
      const rs = await a.deliver(task({ action: actionOf(c, 'pm'), recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\r\n') }));
      assert.equal(rs[0]?.status, 'tempfail', rs[0]?.detail);
    });
  });
}
