#!/usr/bin/env node
/*
 * scripts/gen-man.mjs — the man pages under man/ from their sources,
 * docs/man/PAGE.md (one source of truth: edit the markdown, run
 * `npm run man`, commit both). `--check` writes nothing and exits 1 when a
 * page under man/ is not what its source gives (test/unit/man-pages.test.ts
 * runs it).
 *
 * The markdown is parsed by `marked` (its lexer only); the roff is written
 * here, for this subset (anything else is an error naming the file):
 *
 *   # name(SECTION) YYYY-MM-DD     first line: .TH NAME SECTION DATE "Postern" MANUAL
 *   ## TITLE / ### Title           .SH / .SS
 *   a paragraph                    text (.PP between paragraphs)
 *   **bold**, `code`, *italic*     \fB \fI (nested fonts return to the enclosing one)
 *   a line ending in a backslash   .br
 *   * term:                        a list whose every item's first line ends in ":"
 *     description                  is a tagged list (.TP): the term, then its text
 *   * item                         other lists: bullets (.IP \(bu)
 *   ```fenced code```              .nf/.fi, indented (.RS/.RE), a blank line before
 *   <!-- comment -->               dropped
 *
 * Text is escaped for roff (backslash, hyphens as \-, a leading . or ');
 * the few non-ASCII characters used (dashes, quotes, bullet) become groff
 * escapes, any other is an error, so a page is pure ASCII.
 *
 * Why not marked-man or remark-man: neither writes tagged paragraphs
 * (.TP), which every option list of these pages is, and marked-man writes
 * an undefined .HR macro (docs/architecture.md).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lexer } from 'marked';

const ROOT = join(import.meta.dirname, '..');
const SOURCES = join(ROOT, 'docs', 'man');
const OUT = join(ROOT, 'man');
const MANUALS = { 1: 'General Commands Manual', 5: 'File Formats Manual', 8: "System Manager's Manual" };
const CHARS = { '\u2014': '\\(em', '\u2013': '\\(en', '\u2018': '\\(oq', '\u2019': '\\(cq', '\u201c': '\\(lq', '\u201d': '\\(rq', '\u2022': '\\(bu', '\u00a0': '\\ ' };

class ManError extends Error {}

/** Plain text for roff: escapes, and no line that starts with a control character. */
function text(s, file) {
  let out = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  out = out.replace(/[^\x00-\x7f]/g, (c) => {
    const e = CHARS[c];
    if (e === undefined) throw new ManError(`${file}: the character ${JSON.stringify(c)} (U+${c.codePointAt(0).toString(16).toUpperCase()}) has no groff escape here`);
    return e;
  });
  return out;
}

const FONT = { strong: 'B', codespan: 'B', em: 'I' };

/** Inline tokens to roff text; `font` is the one around them (R, B or I). */
function inline(tokens, file, font = 'R') {
  let out = '';
  for (const t of tokens) {
    switch (t.type) {
      case 'text':
      case 'escape':
        out += t.tokens ? inline(t.tokens, file, font) : text(t.text, file);
        break;
      case 'strong':
      case 'em':
      case 'codespan': {
        const f = FONT[t.type];
        const inner = t.type === 'codespan' ? text(t.text, file) : inline(t.tokens, file, f);
        out += f === font ? inner : `\\f${f}${inner}\\f${font}`;
        break;
      }
      case 'br':
        out += '\n.br\n';
        break;
      case 'link':
        out += inline(t.tokens, file, font) + (t.text === t.href ? '' : ` <${text(t.href, file)}>`);
        break;
      case 'html':
        if (!/^<!--[\s\S]*-->$/.test(t.raw.trim())) throw new ManError(`${file}: inline HTML is not in the man page subset: ${t.raw}`);
        break;
      default:
        throw new ManError(`${file}: ${t.type} is not in the man page subset: ${JSON.stringify(t.raw)}`);
    }
  }
  return out;
}

/** Roff lines of a rendered run of text: one per source line, none blank, none starting with a control character. */
function lines(roff) {
  return roff
    .split('\n')
    .map((l) => l.replace(/^[ \t]+/, ''))
    .filter((l) => l !== '')
    .map((l) => (/^['.]/.test(l) && !/^\.br$/.test(l) ? `\\&${l}` : l));
}

function code(t, file) {
  return ['.RS', '.nf', ...t.text.split('\n').map((l) => (l === '' ? '' : `\\&${text(l, file)}`)).map((l) => (l === '' ? '.sp' : l)), '.fi', '.RE'];
}

/** The item's first line (the term) and the rest, when the item is "term:\ndescription". */
function splitTerm(item, file) {
  const first = item.tokens[0];
  if (first === undefined || (first.type !== 'text' && first.type !== 'paragraph')) return undefined;
  const roff = inline(first.tokens ?? [], file);
  const nl = roff.indexOf('\n');
  const term = nl < 0 ? roff : roff.slice(0, nl);
  if (!term.endsWith(':')) return undefined;
  return { term: term.slice(0, -1), body: nl < 0 ? '' : roff.slice(nl + 1), rest: item.tokens.slice(1) };
}

function list(t, file) {
  const terms = t.items.map((i) => splitTerm(i, file));
  const out = [];
  if (terms.every((x) => x !== undefined)) {
    for (const x of terms) {
      out.push('.TP', ...lines(x.term), ...lines(x.body));
      for (const b of x.rest) out.push(...(b.type === 'space' ? [] : b.type === 'paragraph' || b.type === 'text' ? ['.IP', ...lines(inline(b.tokens, file))] : blocks([b], file, true)));
    }
    return out;
  }
  for (const i of t.items) {
    out.push('.IP \\(bu 2');
    i.tokens.forEach((b, k) => {
      if (b.type === 'space') return;
      if (b.type === 'text' || b.type === 'paragraph') out.push(...(k > 0 ? ['.IP'] : []), ...lines(inline(b.tokens ?? [], file)));
      else out.push(...blocks([b], file, true));
    });
  }
  return out;
}

/** Block tokens to roff lines. */
function blocks(tokens, file, nested = false) {
  const out = [];
  let afterHeading = !nested;
  for (const t of tokens) {
    switch (t.type) {
      case 'space':
        continue;
      case 'heading':
        if (t.depth === 1) throw new ManError(`${file}: only the first line may be a level-1 heading`);
        if (t.depth > 3) throw new ManError(`${file}: level-${t.depth} headings are not in the man page subset`);
        out.push(`${t.depth === 2 ? '.SH' : '.SS'} ${text(t.text, file)}`);
        afterHeading = true;
        continue;
      case 'paragraph':
        if (!afterHeading) out.push(nested ? '.IP' : '.PP');
        out.push(...lines(inline(t.tokens, file)));
        break;
      case 'list':
        out.push(...list(t, file));
        break;
      case 'code':
        if (!afterHeading) out.push(nested ? '.IP' : '.PP');
        out.push(...code(t, file));
        break;
      case 'html':
        if (/^<!--[\s\S]*-->\s*$/.test(t.raw)) continue;
        throw new ManError(`${file}: HTML is not in the man page subset`);
      default:
        throw new ManError(`${file}: ${t.type} is not in the man page subset: ${JSON.stringify(t.raw.slice(0, 60))}`);
    }
    afterHeading = false;
  }
  return out;
}

/** The roff page for one markdown source; `file` names it in errors. */
export function renderMan(markdown, file) {
  const tokens = new Lexer({ gfm: true }).lex(markdown);
  const head = tokens.shift();
  const m = head?.type === 'heading' && head.depth === 1 ? /^([a-z][a-z0-9.]*)\((\d)\) (\d{4}-\d{2}-\d{2})$/.exec(head.text) : null;
  if (!m) throw new ManError(`${file}: the first line must be "# name(SECTION) YYYY-MM-DD"`);
  const [, name, section, date] = m;
  return [
    `.\\" ${name}(${section}) - generated by scripts/gen-man.mjs from docs/man/${name}.${section}.md:`,
    '.\\" edit that file and run `npm run man`; test/unit/man-pages.test.ts checks both agree.',
    `.TH ${name.toUpperCase()} ${section} "${date}" "Postern" "${MANUALS[section] ?? ''}"`,
    ...blocks(tokens, file),
    '',
  ].join('\n');
}

/** Every source's page: [file name under man/, roff]. */
export function renderAll() {
  return readdirSync(SOURCES)
    .filter((f) => /\.\d\.md$/.test(f))
    .sort()
    .map((f) => [f.slice(0, -3), renderMan(readFileSync(join(SOURCES, f), 'utf8'), `docs/man/${f}`)]);
}

function main() {
  const check = process.argv.includes('--check');
  let pages;
  try {
    pages = renderAll();
  } catch (e) {
    if (!(e instanceof ManError)) throw e;
    process.stderr.write(`gen-man: ${e.message}\n`);
    process.exit(1);
  }
  const stale = [];
  for (const [name, roff] of pages) {
    const path = join(OUT, name);
    let now = '';
    try {
      now = readFileSync(path, 'utf8');
    } catch {
      // missing: stale
    }
    if (now === roff) continue;
    if (check) stale.push(name);
    else writeFileSync(path, roff);
  }
  if (stale.length > 0) {
    process.stderr.write(`gen-man: man/${stale.join(', man/')} not what docs/man/ gives: run npm run man\n`);
    process.exit(1);
  }
}

if (process.argv[1] === import.meta.filename) main();
