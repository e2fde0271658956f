/*
 * The tokenizer, macros, value syntaxes and suggestions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lex } from '../../src/config/lexer.js';
import { parseMacroOverride } from '../../src/config/load.js';
import { editDistance, suggest } from '../../src/config/suggest.js';
import { parseDuration, parseNetwork, parsePort, parseRelayUrl, parseSize } from '../../src/config/values.js';
import { errors, ok } from './config-helpers.js';

function tokens(text: string): string[] {
  return lex(text, 'f').tokens.map((t) => `${t.pos.line}:${t.pos.col} ${t.kind} ${t.kind === 'newline' ? '' : t.text}`.trimEnd());
}

test('lexer: words, strings, punctuation, comments, positions', () => {
  assert.deepEqual(tokens('table t { a, "b c" }  # comment\nmatch !from <x> => $m'), [
    '1:1 word table',
    '1:7 word t',
    '1:9 punct {',
    '1:11 word a',
    '1:12 punct ,',
    '1:14 string b c',
    '1:20 punct }',
    '1:32 newline',
    '2:1 word match',
    '2:7 punct !',
    '2:8 word from',
    '2:13 punct <',
    '2:14 word x',
    '2:15 punct >',
    '2:17 punct =>',
    '2:20 macro m',
    '2:22 newline',
    '2:22 eof',
  ]);
});

test('lexer: URLs, paths, networks and sizes are single words', () => {
  const words = lex('smtp+tls://bob@mx.example.org:587 file:/etc/mail/aliases 10.0.0.0/8 2001:db8::/32 35M', 'f')
    .tokens.filter((t) => t.kind === 'word')
    .map((t) => t.text);
  assert.deepEqual(words, ['smtp+tls://bob@mx.example.org:587', 'file:/etc/mail/aliases', '10.0.0.0/8', '2001:db8::/32', '35M']);
});

test('lexer: string escapes and line continuation', () => {
  const r = lex('"a\\"b" \'c d\' "e\\\nf" "g\\x" x\\\ny', 'f');
  assert.deepEqual(
    r.tokens.filter((t) => t.kind === 'string' || t.kind === 'word').map((t) => t.text),
    ['a"b', 'c d', 'ef', 'g\\x', 'x', 'y'],
  );
  assert.deepEqual(r.diagnostics, []);
  const y = r.tokens.find((t) => t.text === 'y');
  assert.deepEqual(y?.pos, { file: 'f', line: 3, col: 1 });
});

test('lexer: CRLF line endings', () => {
  assert.deepEqual(tokens('a\r\nb\r\n'), ['1:1 word a', '1:3 newline', '2:1 word b', '2:3 newline', '3:1 newline', '3:1 eof']);
});

test('macros: definitions, expansion into several tokens, quoted values stay literal', () => {
  const c = ok(`ext = "eth0"
tlsopts = "port 587 tls-require"
listen on $ext $tlsopts
listen on lo0 tag "$ext"
action a mbox
match for local action a
`);
  assert.deepEqual([c.listeners[0]?.on, c.listeners[0]?.port, c.listeners[0]?.tls], ['eth0', 587, 'require']);
  assert.equal(c.listeners[1]?.tag, '$ext');
  assert.deepEqual([...c.macros], [
    ['ext', 'eth0'],
    ['tlsopts', 'port 587 tls-require'],
  ]);
});

test('macros: -D overrides the file, and may define what the file lacks', () => {
  const c = ok('port = 25\nlisten on lo0 port $port\nlisten on lo1 port $other\n', {
    macros: new Map([
      ['port', '2525'],
      ['other', '26'],
    ]),
  });
  assert.deepEqual(
    c.listeners.map((l) => l.port),
    [2525, 26],
  );
  assert.equal(c.macros.get('port'), '2525');
});

test('macros: a macro may use another; a macro that refers to itself is an error', () => {
  const c = ok('a = lo0\nb = $a\nlisten on $b\n');
  assert.equal(c.listeners[0]?.on, 'lo0');
  assert.deepEqual(errors('m = "x $m"\nlisten on $m\n'), ['smtpd.conf:2:11: macro "$m" refers to itself']);
});

test('macros: a macro used before its definition is undefined there', () => {
  assert.deepEqual(errors('listen on $x\nx = lo0\n'), ['smtpd.conf:1:11: undefined macro "$x"']);
});

test('parseMacroOverride (smtpd -D)', () => {
  assert.deepEqual(parseMacroOverride('port=2525'), { name: 'port', value: '2525' });
  assert.deepEqual(parseMacroOverride('opts=a=b'), { name: 'opts', value: 'a=b' });
  assert.deepEqual(parseMacroOverride('x'), { error: 'invalid macro definition "x" (expected name=value)' });
  assert.deepEqual(parseMacroOverride('a-b=1'), { error: 'invalid macro name "a-b" (letters, digits and "_" only)' });
});

test('values: sizes', () => {
  assert.deepEqual(parseSize('35M'), { ok: true, value: 35 * 1024 * 1024 });
  assert.deepEqual(parseSize('1.5k'), { ok: true, value: 1536 });
  assert.deepEqual(parseSize('10MB'), { ok: true, value: 10 * 1024 * 1024 });
  assert.deepEqual(parseSize('100'), { ok: true, value: 100 });
  assert.equal(parseSize('-1').ok, false);
  assert.equal(parseSize('M').ok, false);
});

test('values: durations', () => {
  assert.deepEqual(parseDuration('4d'), { ok: true, value: 4 * 86_400_000 });
  assert.deepEqual(parseDuration('90'), { ok: true, value: 90_000 });
  assert.deepEqual(parseDuration('250ms', true), { ok: true, value: 250 });
  assert.equal(parseDuration('250ms').ok, false, 'ms only where sub-second values make sense');
  assert.equal(parseDuration('1y').ok, false);
});

test('values: ports, networks, relay URLs', () => {
  assert.deepEqual(parsePort('submission'), { ok: true, value: 587 });
  assert.equal(parsePort('0').ok, false);
  assert.equal(parseNetwork('192.0.2.0/24').ok, true);
  assert.equal(parseNetwork('2001:db8::/129').ok, false);
  assert.equal(parseNetwork('127.1').ok, false, 'dotted quads only');
  assert.deepEqual(parseRelayUrl('smtp+tls://bob@[2001:db8::1]:587'), {
    ok: true,
    value: { scheme: 'smtp+tls', label: 'bob', host: '2001:db8::1', port: 587 },
  });
  assert.deepEqual(parseRelayUrl('mx.example.org'), { ok: true, value: { scheme: 'smtp', host: 'mx.example.org' } });
  assert.equal(parseRelayUrl('smtp://').ok, false);
  assert.equal(parseRelayUrl('smtp://a_b..c').ok, false);
});

test('suggestions: obvious typos only', () => {
  assert.equal(editDistance('lisen', 'listen'), 1);
  assert.equal(editDistance('lsiten', 'listen'), 1);
  assert.equal(suggest('lisen', ['listen', 'table']), 'listen');
  assert.equal(suggest('Listen', ['listen']), 'listen');
  assert.equal(suggest('frobnicate', ['listen', 'table']), undefined);
  assert.equal(suggest('xy', ['tag', 'tls']), undefined);
  assert.equal(suggest('tgs', ['tags']), 'tags');
  assert.equal(suggest('tga', ['tag']), 'tag');
});
