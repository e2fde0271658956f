/*
 * control/grammar.ts — smtpctl's command grammar, declared as a table of
 * patterns ("pause envelope <id>" → handler), as OpenSMTPD's parser.c.
 * Pure.
 *
 * The patterns make a tree of words. Each argument word is matched, in
 * this order, against: a literal word of the tree (any case); an argument
 * placeholder whose syntax it has; the one literal it is a prefix of
 * ("sh q" = "show queue"). When it is a prefix of several, the error
 * names them all; when nothing fits, the error says what was expected.
 * A literal standing where an argument may stand ("all" in "remove all")
 * is never abbreviated, so that "remove a" cannot mean "remove all".
 *
 * Placeholders: <msgid> (8 hex digits), <evpid> (16), <id> (either),
 * <name> (a table name), <string> (anything). Ids are lower-cased.
 */
import { argValid, argWhat, type ArgKind } from './protocol.js';

export interface GrammarEntry<T> {
  readonly pattern: string;
  readonly help: string;
  readonly value: T;
}

export type Parsed<T> =
  | { readonly ok: true; readonly entry: GrammarEntry<T>; readonly params: Readonly<Record<string, string>>; readonly words: readonly string[] }
  | { readonly ok: false; readonly error: string };

type Placeholder = 'msgid' | 'evpid' | 'id' | 'name' | 'string';

const PLACEHOLDERS: Readonly<Record<Placeholder, ArgKind | undefined>> = { msgid: 'msgid', evpid: 'evpid', id: 'id', name: 'name', string: undefined };

interface Node<T> {
  readonly token: string;
  readonly placeholder?: Placeholder;
  readonly children: Node<T>[];
  entry?: GrammarEntry<T>;
}

export class Grammar<T> {
  private readonly root: Node<T> = { token: '', children: [] };

  constructor(readonly entries: readonly GrammarEntry<T>[]) {
    for (const e of entries) this.add(e);
  }

  parse(argv: readonly string[]): Parsed<T> {
    let node = this.root;
    const words: string[] = [];
    const params: Record<string, string> = {};
    for (const w of argv) {
      const lw = w.toLowerCase();
      let next = node.children.find((c) => c.placeholder === undefined && c.token === lw);
      if (next === undefined) {
        next = node.children.find((c) => c.placeholder !== undefined && placeholderMatches(c.placeholder, w));
        if (next?.placeholder !== undefined) params[next.placeholder] = next.placeholder === 'string' || next.placeholder === 'name' ? w : lw;
      }
      // A literal in an argument's place ("all" beside <id>) is never abbreviated: "remove a" must not mean "remove all".
      if (next === undefined && lw !== '' && !node.children.some((c) => c.placeholder !== undefined)) {
        const cands = node.children.filter((c) => c.token.startsWith(lw));
        if (cands.length > 1) return { ok: false, error: `ambiguous command "${[...words, w].join(' ')}": ${cands.map((c) => [...words, c.token].join(' ')).join(', ')}` };
        next = cands[0];
      }
      if (next === undefined) return { ok: false, error: this.mismatch(node, words, w) };
      words.push(next.placeholder === undefined ? next.token : (params[next.placeholder] as string));
      node = next;
    }
    if (node.entry === undefined) {
      if (words.length === 0) return { ok: false, error: 'no command given (smtpctl help lists the commands)' };
      return { ok: false, error: `incomplete command "${words.join(' ')}"; possibilities: ${this.under(node, words).join(', ')}` };
    }
    return { ok: true, entry: node.entry, params, words };
  }

  /** `smtpctl help`: every pattern and what it does. */
  help(): string {
    const width = Math.max(...this.entries.map((e) => e.pattern.length));
    return this.entries.map((e) => `  ${e.pattern.padEnd(width)}  ${e.help}\n`).join('');
  }

  private add(e: GrammarEntry<T>): void {
    let node = this.root;
    for (const tok of e.pattern.split(/\s+/).filter((t) => t !== '')) {
      const m = /^<([a-z]+)>$/.exec(tok);
      const placeholder = m ? (m[1] as Placeholder) : undefined;
      if (placeholder !== undefined && !Object.hasOwn(PLACEHOLDERS, placeholder)) throw new Error(`grammar: unknown placeholder ${tok}`);
      let child = node.children.find((c) => c.token === tok);
      if (child === undefined) {
        child = placeholder === undefined ? { token: tok, children: [] } : { token: tok, placeholder, children: [] };
        node.children.push(child);
      }
      node = child;
    }
    if (node.entry) throw new Error(`grammar: duplicate pattern "${e.pattern}"`);
    node.entry = e;
  }

  private mismatch(node: Node<T>, words: readonly string[], w: string): string {
    if (node === this.root) return `unknown command "${w}" (smtpctl help lists the commands)`;
    if (node.children.length === 0) return `unexpected "${w}" after "${words.join(' ')}"`;
    const expected = node.children.map((c) => (c.placeholder === undefined ? `"${c.token}"` : describe(c.placeholder)));
    return `"${w}" does not fit after "${words.join(' ')}": expected ${expected.join(' or ')}`;
  }

  /** Complete patterns below `node`, shown as continuations of `words`. */
  private under(node: Node<T>, words: readonly string[]): string[] {
    const out: string[] = [];
    const walk = (n: Node<T>, path: string[]): void => {
      if (n.entry) out.push(path.join(' '));
      for (const c of n.children) walk(c, [...path, c.token]);
    };
    for (const c of node.children) walk(c, [...words, c.token]);
    return out;
  }
}

function placeholderMatches(p: Placeholder, w: string): boolean {
  const kind = PLACEHOLDERS[p];
  return kind === undefined ? true : argValid(kind, w);
}

function describe(p: Placeholder): string {
  const kind = PLACEHOLDERS[p];
  return kind === undefined ? 'a string' : argWhat(kind);
}
