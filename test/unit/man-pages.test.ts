/*
 * test/unit/man-pages.test.ts — the man pages under man/ (installed by
 * `postern install`): each page groff renders with -man and every warning
 * on (-ww) says nothing; each has NAME, SYNOPSIS or DESCRIPTION and SEE
 * ALSO; only ASCII and groff escapes (no raw UTF-8, which -man warns on
 * in some locales); and every option the command's --help shows is in its
 * page.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool } from '../helpers/tools.js';
import { USAGES } from '../../src/cli/version.js';

const MAN = join(import.meta.dirname, '..', '..', '..', 'man');
const PAGES = ['smtpd.8', 'smtpd.conf.5', 'smtpctl.8', 'sendmail.8', 'smtpserver.8'];

test('the five man pages exist and groff -man -ww finds nothing to warn about', () => {
  const groff = requireTool('groff');
  assert.deepEqual(readdirSync(MAN).filter((f) => /\.[1-8]$/.test(f)).sort(), [...PAGES].sort());
  for (const page of PAGES) {
    const r = spawnSync(groff, ['-man', '-Tutf8', '-ww', '-z', join(MAN, page)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${page}: ${r.stderr}`);
    assert.equal(r.stderr, '', `${page}: ${r.stderr}`);
    const text = readFileSync(join(MAN, page), 'utf8');
    assert.match(text, /^\.TH [A-Z.]+ [58] /m, page);
    for (const section of ['NAME', 'SEE ALSO']) assert.match(text, new RegExp(`^\\.SH ${section}$`, 'm'), `${page}: ${section}`);
    assert.ok(/^[\x00-\x7f]*$/.test(text), `${page}: not ASCII`);
  }
});

test("every flag of a command's usage line is in its man page", () => {
  const pages: Record<string, string> = { smtpd: 'smtpd.8', smtpctl: 'smtpctl.8', sendmail: 'sendmail.8', makemap: 'smtpctl.8', newaliases: 'sendmail.8' };
  for (const [cmd, page] of Object.entries(pages)) {
    const text = readFileSync(join(MAN, page), 'utf8').replace(/\\-/g, '-');
    const usage = USAGES[cmd]?.usage ?? '';
    // Bundled letters (-dFhnv) one by one; sendmail's -bm/-bp/-bi are words.
    const letters = new Set([...usage.matchAll(/(?:^|[\s[|])-([a-zA-Z]+)/g)].flatMap((m) => (/^b[a-z]$/.test(m[1] ?? '') ? [m[1] ?? ''] : [...(m[1] ?? '')])));
    for (const x of letters) {
      // Documented as an option: ".B -x", ".BI -x …", ".BR -x …" or ", -x" in a .TP tag.
      assert.match(text, new RegExp(`(^\\.B[IR]? |, )-${x}(?![a-zA-Z])`, 'm'), `${cmd}: -${x} is not described in ${page}`);
    }
  }
});
