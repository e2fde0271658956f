/*
 * The text table format (table(5), aliases(5)): entries, continuation
 * lines, comments, quoting, and every error with FILE:LINE.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatTableLine, parseTableEntries, parseTableText, TableSyntaxError } from '../../src/table/text-format.js';

const entries = (text: string, shape?: 'map' | 'set' | 'any') => parseTableEntries(text, 'f', shape ? { shape } : {}).map((e) => [e.key, e.value, e.line]);

describe('entries', () => {
  const cases: [string, string, [string, string, number][]][] = [
    ['key value', 'smtp.gmail.com user@gmail.com:secret\n', [['smtp.gmail.com', 'user@gmail.com:secret', 1]]],
    ['key: value (aliases)', 'root: calomel\n', [['root', 'calomel', 1]]],
    ['key:value without a blank', 'root:calomel\n', [['root', 'calomel', 1]]],
    ['tabs and several blanks', 'bob_smith@example.org:\t robert \n', [['bob_smith@example.org', 'robert', 1]]],
    ['keys are lowercased, values kept', 'Root: Calomel\n', [['root', 'Calomel', 1]]],
    ['a list', 'example.org\n*.example.net\n', [['example.org', '', 1], ['*.example.net', '', 2]]],
    ['IPv6 keys are whole', '::1\n2001:db8::/32\n[::1]\n', [['::1', '', 1], ['2001:db8::/32', '', 2], ['[::1]', '', 3]]],
    ['IPv6 key in the aliases form', '2001:db8::1: x\n', [['2001:db8::1', 'x', 1]]],
    ['a quoted key', '"two words": bob\n"a:b" c\n', [['two words', 'bob', 1], ['a:b', 'c', 2]]],
    [
      'continuation lines (aliases(5))',
      'staff: bob, alice,\n\tcarol,\n   dave@example.net\nnext: x\n',
      [['staff', 'bob, alice, carol, dave@example.net', 1], ['next', 'x', 4]],
    ],
    ['continuation without a trailing comma joins with a blank', 'cmd: "|/usr/bin/x\n  --flag"\n', [['cmd', '"|/usr/bin/x --flag"', 1]]],
    ['a trailing comma is dropped', 'staff: bob, alice,\n', [['staff', 'bob, alice', 1]]],
    ['a trailing comma does not swallow the next entry', 'staff: bob,\nroot: calomel\n', [['staff', 'bob', 1], ['root', 'calomel', 2]]],
    [
      'comments: whole lines, after a blank, inside continuations',
      '# aliases\n  # indented comment\nroot: calomel # the admin\nlist: a,\n# members\n  b\npass: ab#cd\n',
      [['root', 'calomel', 3], ['list', 'a, b', 4], ['pass', 'ab#cd', 7]],
    ],
    ['"#" inside double quotes is not a comment', 'x: "|/bin/echo #1"\n', [['x', '"|/bin/echo #1"', 1]]],
    ['CRLF line ends', 'a: b\r\nc: d\r\n', [['a', 'b', 1], ['c', 'd', 2]]],
    ['an empty file', '', []],
    ['only comments', '# nothing\n\n', []],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => assert.deepEqual(entries(text), want));
  }
});

describe('errors name FILE:LINE', () => {
  const cases: [string, string, number, RegExp, ('map' | 'set' | 'any')?][] = [
    ['continuation before any entry', '  bob\n', 1, /continuation line without an entry/],
    ['duplicate key', 'root: a\n\nRoot: b\n', 3, /duplicate entry for "root" \(first at line 1\)/],
    ['a map entry without value', 'root: calomel\npostmaster\n', 2, /missing value for "postmaster"/],
    ['a list entry with a value', 'example.org\nexample.net x\n', 2, /unexpected value after "example.net"/],
    ['set: no values', 'a b\n', 1, /unexpected value/, 'set'],
    ['map: values needed', 'a\n', 1, /missing value/, 'map'],
    ['NUL', 'a: b\nc: \0\n', 2, /NUL/],
    ['a control character', 'a: b\x07\n', 1, /control character/],
    ['a bare CR', 'a: b\rc\n', 1, /control character/],
    ['an unterminated quoted key', '"abc: d\n', 1, /unterminated/],
    ['an empty key', ': value\n', 1, /empty key/],
  ];
  for (const [name, text, line, re, shape] of cases) {
    test(name, () => {
      assert.throws(
        () => parseTableEntries(text, '/etc/mail/aliases', shape ? { shape } : {}),
        (e: unknown) => e instanceof TableSyntaxError && e.line === line && e.message.startsWith(`/etc/mail/aliases:${line}: `) && re.test(e.message),
      );
    });
  }
});

test('parseTableText gives a map', () => {
  assert.deepEqual([...parseTableText('a: 1\nb: 2\n', 'f')], [['a', '1'], ['b', '2']]);
});

test('formatTableLine writes what parseTableEntries reads back', () => {
  const samples: [string, string][] = [
    ['root', 'calomel'],
    ['list', 'a, b, "|/usr/bin/x a,b"'],
    ['two words', 'x'],
    ['a:b', 'c'],
    ['2001:db8::/32', ''],
    ['has#hash', 'v#1'],
    ['quote"key', 'v'],
    ['example.org', ''],
  ];
  for (const [k, v] of samples) {
    const line = formatTableLine(k, v);
    assert.deepEqual(entries(line), [[k, v, 1]], line);
  }
});
