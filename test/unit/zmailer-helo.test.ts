/*
 * HELO-pattern lines and style flags: the glob, first match wins, "!message"
 * refusals, load limits, every style flag, -s strict/sloppy; and the
 * ZMailer policy phase built on them (HELO refusal, max-error-recipients).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatZmailerDiagnostic, parseZmailerConf } from '../../src/config/zmailer/parse.js';
import { DEFAULT_STYLE, parseStyleFlags, parseStyleOption, STYLE_FLAGS } from '../../src/config/zmailer/helo-patterns.js';
import { findHeloPattern, shellGlob } from '../../src/policy/zmailer/helo-patterns.js';
import { styleFor, zmailerPolicyPhase } from '../../src/policy/zmailer/phase.js';
import { zmailerConnectionLimits, zmailerTarpit } from '../../src/policy/zmailer/limits.js';
import { zmailerSmtpOverrides } from '../../src/config/zmailer/merge.js';
import type { ZmailerConf } from '../../src/config/zmailer/params.js';
import { facts, mbox, tx } from './obtuse-helpers.js';

function conf(text: string): ZmailerConf {
  const r = parseZmailerConf(text, 'smtpserver.conf', { executable: () => true });
  if (!r.ok) throw new Error(r.diagnostics.map(formatZmailerDiagnostic).join('\n'));
  return r.conf;
}

test('shell glob: *, ?, classes, negation, ranges, escapes', () => {
  const rows: [string, string, boolean][] = [
    ['*', '', true],
    ['*', 'anything.example', true],
    ['*.example.com', 'mx.example.com', true],
    ['*.example.com', 'example.com', false],
    ['mx?.example.com', 'mx1.example.com', true],
    ['mx?.example.com', 'mx12.example.com', false],
    ['mx[0-9].example.com', 'mx7.example.com', true],
    ['mx[0-9].example.com', 'mxa.example.com', false],
    ['mx[!0-9].example.com', 'mxa.example.com', true],
    ['mx[^0-9].example.com', 'mx7.example.com', false],
    ['[abc]*', 'banana', true],
    ['[]]x', ']x', true],
    ['\\[*\\]', '[192.0.2.1]', true],
    ['\\[*\\]', '192.0.2.1', false],
    ['[*', '[foo', true],
    ['a*b*c*d*e*f*g', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false],
  ];
  for (const [p, s, want] of rows) assert.equal(shellGlob(p, s), want, `${p} ~ ${s}`);
});

test('style flags: every letter, "-" for none, unknown letters refused; -s strict / sloppy', () => {
  const all = parseStyleFlags(STYLE_FLAGS.join(''));
  assert.ok(all.ok);
  assert.deepEqual([...(all.ok ? all.flags : [])].sort(), [...STYLE_FLAGS].sort());
  for (const f of STYLE_FLAGS) {
    const r = parseStyleFlags(f);
    assert.ok(r.ok && r.flags.has(f) && r.flags.size === 1, f);
  }
  const none = parseStyleFlags('-');
  assert.ok(none.ok && none.flags.size === 0);
  assert.deepEqual(parseStyleFlags('veX'), { ok: false, error: 'unknown style flag "X" (expected some of ftveRShDFT, or "-" for none)' });
  assert.deepEqual([...DEFAULT_STYLE], ['v', 'e']);
  assert.deepEqual(parseStyleOption('strict'), { kind: 'strict' });
  assert.deepEqual(parseStyleOption('sloppy'), { kind: 'sloppy' });
  const o = parseStyleOption('ftveRS');
  assert.ok(o.kind === 'flags' && [...o.flags].join('') === 'ftveRS');
  assert.equal(parseStyleOption('q').kind, 'error');
});

test('HELO pattern lines: load average, "*" placeholder, flags, !message, comments, case', () => {
  const r = parseZmailerConf(
    [
      'localhost           999 ftveR',
      'Some.Host.Domain    999 !NO EMAIL ACCEPTED FROM YOUR MACHINE',
      'busy.example        5 ve   # busy client',
      'starred.example     * veR',
      'tiny.example        1 ve',
      'bare.example        !',
      'plain.example',
      '*                   veR',
    ].join('\n'),
    'smtpserver.conf',
  );
  assert.ok(r.ok);
  const p = r.conf.heloPatterns;
  assert.deepEqual(
    p.map((x) => [x.pattern, x.maxLoadAvg, x.action.kind === 'refuse' ? `!${x.action.message ?? ''}` : [...x.action.flags].join('')]),
    [
      ['localhost', undefined, 'ftveR'],
      ['some.host.domain', undefined, '!NO EMAIL ACCEPTED FROM YOUR MACHINE'],
      ['busy.example', 5, 've'],
      ['starred.example', undefined, 'veR'],
      ['tiny.example', 2, 've'],
      ['bare.example', undefined, '!'],
      ['plain.example', undefined, ''],
      ['*', undefined, 'veR'],
    ],
  );
  assert.deepEqual(r.diagnostics.map(formatZmailerDiagnostic), [
    'smtpserver.conf:1: warning: style flags f, t have no effect in Postern (see docs/policy.md)',
    "smtpserver.conf:5: warning: load average limit 1 raised to 2, ZMailer's minimum",
  ]);
  const bad = parseZmailerConf('foo.example 10 vex', 'f');
  assert.deepEqual(bad.diagnostics.map(formatZmailerDiagnostic), ['f:1: HELO pattern "foo.example": unknown style flag "x" (expected some of ftveRShDFT, or "-" for none)']);
});

test('first matching HELO pattern wins; matching ignores case', () => {
  const c = conf('*.example.com ve\nmx.example.com !never reached\n* veR');
  assert.equal(findHeloPattern(c.heloPatterns, 'MX.Example.COM')?.pos.line, 1);
  assert.equal(findHeloPattern(c.heloPatterns, 'other.example')?.pos.line, 3);
  assert.equal(findHeloPattern(conf('a.example ve').heloPatterns, 'b.example'), undefined);
  assert.deepEqual([...styleFor(c, 'mx.example.com')], ['v', 'e']);
  assert.deepEqual([...styleFor(c, 'x.example')], ['v', 'e', 'R']);
  assert.deepEqual([...styleFor(c, undefined)], ['v', 'e']);
  assert.deepEqual([...styleFor(conf(''), 'x', new Set(['S']))], ['S']);
});

test('the phase: "!message" refuses the greeting with 501 5.7.1, naming the client', () => {
  const phase = zmailerPolicyPhase({ conf: conf('some.host.domain 999 !NO EMAIL ACCEPTED FROM YOUR MACHINE\nbare.example !\n* veR') });
  const v = phase.helo(facts('192.0.2.9'), 'some.host.domain');
  assert.equal(v.kind, 'reject');
  if (v.kind === 'reject') {
    assert.deepEqual([v.reply.code, v.reply.enhanced, v.reply.lines], [501, '5.7.1', ['Sorry 192.0.2.9, NO EMAIL ACCEPTED FROM YOUR MACHINE']]);
    assert.equal(v.disconnect, undefined);
    assert.equal(v.reason, 'smtpserver.conf:1: HELO some.host.domain matches "some.host.domain"');
  }
  const d = phase.helo(facts('::ffff:192.0.2.9'), 'bare.example');
  assert.deepEqual(d.kind === 'reject' ? d.reply.lines : [], ['Sorry 192.0.2.9, access denied.']);
  assert.equal(phase.helo(facts('192.0.2.9'), 'fine.example').kind, 'pass');
  assert.equal(phase.explainHelo(facts('192.0.2.9'), 'fine.example').why, 'smtpserver.conf:3: * style "veR"');
});

test('the phase: a HELO pattern’s load average limit ends the session with 421 4.3.2', () => {
  let load = 3.5;
  const phase = zmailerPolicyPhase({ conf: conf('busy.example 4 ve\n* ve'), loadAverage: () => load });
  assert.equal(phase.helo(facts('192.0.2.9'), 'busy.example').kind, 'pass');
  load = 4.2;
  const v = phase.helo(facts('192.0.2.9'), 'busy.example');
  assert.ok(v.kind === 'reject' && v.reply.code === 421 && v.reply.enhanced === '4.3.2' && v.disconnect === true && v.reply.close === true);
  assert.equal(phase.helo(facts('192.0.2.9'), 'other.example').kind, 'pass', 'no limit on the other pattern');
  assert.equal(zmailerPolicyPhase({ conf: conf('busy.example 4 ve') }).helo(facts('192.0.2.9'), 'busy.example').kind, 'pass', 'no load source, no check');
});

test('the phase: max-error-recipients limits recipients of MAIL FROM:<>', () => {
  const phase = zmailerPolicyPhase({ conf: conf('PARAM max-error-recipients 2') });
  const s = facts('192.0.2.9');
  assert.equal(phase.rcpt(s, tx('', 0), mbox('a@example.com')).kind, 'pass');
  assert.equal(phase.rcpt(s, tx('', 1), mbox('b@example.com')).kind, 'pass');
  const v = phase.rcpt(s, tx('', 2), mbox('c@example.com'));
  assert.ok(v.kind === 'reject' && v.reply.code === 552 && v.reply.enhanced === '5.7.1');
  assert.equal(phase.rcpt(s, tx('someone@example.org', 50), mbox('c@example.com')).kind, 'pass', 'only the null sender is limited');
  const dflt = zmailerPolicyPhase({ conf: conf('') });
  assert.equal(dflt.rcpt(s, tx('', 3), mbox('d@example.com')).kind, 'reject', 'default 3');
});

test('what a ZMailer file means for the limits and the smtp options', () => {
  const c = conf('PARAM MaxSameIpSource 10\nPARAM MaxParallelConnections 50\nPARAM tarpit 20 2\nPARAM maxsize 1000\nPARAM RcptLimitCount 200\nPARAM NoPIPELINING\nPARAM No8BITMIME\nPARAM VRFYcmd\nPARAM help hello\nPARAM min-availspace 2000\nPARAM max-unknown-commands 4\nPARAM NoEHLO\nPARAM no-multiline-replies\nPARAM allowsourceroute');
  const l = zmailerConnectionLimits(c);
  assert.deepEqual(l, { maxPerClient: 10, maxTotal: 50, silentDropFactor: 4, silentDropExtra: 100, refusalCode: 450 });
  assert.deepEqual(zmailerTarpit(c), { initialSec: 20, multiplier: 2, capSec: 250 });
  const o = zmailerSmtpOverrides(c);
  assert.deepEqual({ ...o, disabledExtensions: [...o.disabledExtensions].sort() }, {
    maxMessageSize: 1000,
    maxRcpt: 200,
    maxUnknownCommands: 4,
    vrfy: true,
    expn: false,
    help: ['hello'],
    disabledExtensions: ['8BITMIME', 'PIPELINING'],
    ehlo: false,
    multilineReplies: false,
    minFreeSpace: 2000 * 1024,
    allowSourceRoute: true,
  });
});
