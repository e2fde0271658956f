/*
 * expand/expand.ts — recipient expansion at RCPT time (OpenSMTPD's lka).
 *
 * The rules chose an action for a recipient; this turns the recipient into
 * its final destinations, each of which becomes its own envelope with its
 * own delivery state:
 *
 *   relay action       the address itself, remote.
 *   virtual action     the virtual table, keys user+ext@domain, user@domain,
 *                      user+ext, user, @domain, @ — first found wins; its
 *                      value is expanded like an alias value.
 *   other (local)      the alias table (keys user+ext, then user), else a
 *                      user of the userbase table or of the system.
 *
 * Alias and virtual values (table/aliases.ts) name users (expanded again),
 * addresses (routed again through the rules with env.route: a local
 * action expands them again, a relay makes them remote), files, commands,
 * :include: files and error: replies.
 *
 * Outcomes:
 *   - A failed lookup anywhere (table unreadable, value that does not parse,
 *     unreadable include file, 4xx from the rules) defers the recipient:
 *     451 4.3.0. Never a partial expansion, never "no such user".
 *   - A branch that leads nowhere (unknown user, error: entry, missing
 *     include, rules refusing a forward address, a loop with no user behind
 *     it) is dropped and listed in `dropped`, as long as something else
 *     receives the mail; when nothing does, the recipient is refused with the
 *     reply of the first error: entry met, else of the first dropped branch.
 *   - Loops: an alias met again inside its own expansion is delivered to the
 *     local user of that name, if one exists (sendmail's rule); otherwise the
 *     branch is dropped. A virtual mapping met again is dropped. Deeper than
 *     MAX_DEPTH levels or more than MAX_NODES destinations: 550 5.2.4.
 *   - Duplicates (same user, file, command or remote address) are kept once;
 *     an alias reached twice is expanded once.
 *   - postmaster and mailer-daemon always have a destination: their alias,
 *     else root (RFC 5321 §4.5.1), even when root is unknown to the userbase;
 *     only an explicit error: entry refuses them.
 *   - +extension: the exact key first, then without it; when a user was found
 *     without it, the extension is kept (`extension`) for maildir sub-folders,
 *     if it is safe as a folder name (no "/", no leading ".", no "..").
 *   - Files and commands run as the local user the alias is named after, when
 *     that user exists and is not root, else as `nobody` (NOBODY), as
 *     OpenSMTPD runs them as its unprivileged user; those of virtual tables
 *     always as NOBODY (a virtual address names no local user). They come
 *     only from table values and :include: files, never from the envelope;
 *     an unsafe (group/other-writable) include file may not name them.
 *   - ~/.forward (expand/forward.ts): a system user reached under a local
 *     delivery action, whose home holds a safe .forward, receives at its
 *     destinations instead of the mailbox (under privilege separation a file
 *     the SMTP side may not read is read by the privileged parent:
 *     expandRecipientAsync); the user's own name inside it
 *     (also "\\user") means the mailbox, without alias lookup. Its "|command"
 *     and "/file" destinations (and those of files it :include:s) need
 *     `forward allow commands` / `files` and run as the user; an unsafe
 *     .forward is ignored (listed in `dropped`), an unreadable one defers.
 *   - expand-only actions deliver only what aliases name (files, commands,
 *     forward addresses): a plain local user is refused; forward-only
 *     actions accept only forward addresses.
 *
 * No destination carries CR, LF or NUL; file paths are absolute.
 *
 * Why this file is long (~520 lines): one recursive walk (aliases,
 * :include:, virtual tables, userbase, system users, ~/.forward) whose
 * loop and depth bookkeeping must stay in one function's reach, and its
 * asynchronous driver (expandRecipientAsync), which re-runs it.
 */
import type { Action, Config, MatchRule } from '../config/model.js';
import type { UserBase, UserInfo } from '../users/system-users.js';
import type { LocalNames } from '../rules/localnames.js';
import type { RuleDecision } from '../rules/rules.js';
import type { Mailbox } from '../mail/address.js';
import { formatMailbox } from '../mail/address.js';
import type { Reply } from '../mail/reply.js';
import { reply } from '../mail/reply.js';
import type { Destination } from '../mail/envelope.js';
import { aliasNodeText, lookupAlias, type AliasNode } from '../table/aliases.js';
import { lookupUserinfo } from '../table/services.js';
import type { TableRegistry } from '../table/table.js';
import { readIncludeFile, type IncludeRead } from './include.js';
import { includePaths, readIncludeAsUser } from './include-as.js';
import { NOBODY } from '../users/system-users.js';
import type { ForwardOptions } from '../config/model.js';
import { DEFAULT_FORWARD } from '../config/parse-forward.js';
import { ForwardAbsent } from './forward-absent.js';
import { forwardLookup, readForwardFile, type ForwardRead } from './forward.js';

export interface ExpandTarget {
  /** The address this copy is for: the recipient, or the forward address that led to it. */
  readonly address: string;
  readonly action: Action;
  /** The deciding rule, "file:line". */
  readonly rule: string;
  readonly dest: Destination;
  /** A local user's +extension, lowercased and safe as a maildir sub-folder name. */
  readonly extension?: string;
}

/** A branch of the expansion that delivers nowhere (for the log). */
export interface DroppedBranch {
  readonly what: string;
  readonly reason: string;
}

export type ExpandResult =
  | { kind: 'ok'; targets: ExpandTarget[]; dropped?: readonly DroppedBranch[] }
  | { kind: 'reject'; reply: Reply; reason: string };

export interface ExpandEnv {
  tables: TableRegistry;
  users: UserBase;
  local: LocalNames;
  config: Config;
  /** Route an address produced by expansion through the smtpd.conf rules with the same session context. */
  route(address: string): RuleDecision;
  /** How a ~/.forward is read: by default readForwardFile(); 'ask' = the privileged parent must (expandRecipientAsync). */
  readForward?(user: UserInfo): ForwardRead | 'ask';
  /** How an :include: of a user's ~/.forward that did not come with it is read: by default as the user (include-as.ts). */
  readForwardInclude?(user: UserInfo, path: string): IncludeRead;
}

/** Alias nesting levels (OpenSMTPD's EXPAND_DEPTH). */
export const MAX_DEPTH = 10;
/** Destinations looked at for one recipient. */
export const MAX_NODES = 10_000;

const TEMPFAIL_REPLY = reply(451, '4.3.0', 'Temporary lookup failure, please try again later');
const NO_USER_REPLY = reply(550, '5.1.1', 'Invalid recipient: no such user here');
const EXPANSION_REPLY = reply(550, '5.2.4', 'Mailing list expansion problem');
const LOOP_REPLY = reply(550, '5.4.6', 'Alias loop detected');

export function expandRecipient(rcpt: Mailbox, first: { rule: MatchRule; action: Action }, env: ExpandEnv): ExpandResult {
  const r = expandOnce(rcpt, first, env);
  return r.kind === 'ask' ? { kind: 'reject', reply: TEMPFAIL_REPLY, reason: `~/.forward of ${r.users.join(', ')}: not readable here` } : r;
}

/** The users the privileged parent said have no ~/.forward, while their homes are unchanged. */
const absent = new ForwardAbsent();
const MISSING: ForwardRead = Object.freeze({ kind: 'missing' });

/**
 * expandRecipient for the SMTP side of a root-started smtpd: a ~/.forward it may not read (a 0700
 * home) is read by the privileged parent (forwardLookup()). The expansion runs, notes every user
 * whose file it could not read, asks the parent for all of them at once, and runs again with the
 * answers — one more round per level of ~/.forward nesting, at most MAX_DEPTH + 1.
 */
export async function expandRecipientAsync(rcpt: Mailbox, first: { rule: MatchRule; action: Action }, env: ExpandEnv): Promise<ExpandResult> {
  const ask = forwardLookup();
  if (ask === undefined) return expandRecipient(rcpt, first, env);
  const fetched = new Map<string, ForwardRead>();
  /** The homes of the users asked about, as they were before asking (forward-absent.ts). */
  const stamps = new Map<string, string | undefined>();
  const readForward = (u: UserInfo): ForwardRead | 'ask' => {
    const got = fetched.get(u.name);
    if (got !== undefined) return got;
    if (absent.known(u)) return MISSING;
    const r = readForwardFile(u);
    // The parent reads it, and the files it includes as the user: never this side (its user owns the spool).
    const ask = (r.kind === 'ok' && includePaths(r.nodes).length > 0) || (r.kind === 'unsafe' && r.denied === true);
    if (!ask) return r;
    stamps.set(u.name, absent.stamp(u));
    return 'ask';
  };
  const readForwardInclude = (u: UserInfo, path: string): IncludeRead => ({ kind: 'error', reason: `${path}: an :include: of ${u.name}'s ~/.forward the privileged parent did not read (more than its limit of files)` });
  for (let round = 0; round <= MAX_DEPTH + 1; round++) {
    const r = expandOnce(rcpt, first, { ...env, readForward, readForwardInclude });
    if (r.kind !== 'ask') return r;
    try {
      const answers = await Promise.all(r.users.map(async (u) => [u, await ask(u)] as const));
      for (const [u, a] of answers) {
        fetched.set(u, a);
        const stamp = stamps.get(u);
        if (a.kind === 'missing' && stamp !== undefined) absent.remember(u, stamp);
      }
    } catch (e) {
      return { kind: 'reject', reply: TEMPFAIL_REPLY, reason: `~/.forward of ${r.users.join(', ')}: the privileged parent did not answer: ${(e as Error).message}` };
    }
  }
  return { kind: 'reject', reply: EXPANSION_REPLY, reason: `${formatMailbox(rcpt)}: ~/.forward files nested deeper than ${MAX_DEPTH} levels` };
}

function expandOnce(rcpt: Mailbox, first: { rule: MatchRule; action: Action }, env: ExpandEnv): ExpandResult | { kind: 'ask'; users: string[] } {
  const x = new Expansion(env);
  const address = formatMailbox(rcpt);
  try {
    x.address({ address, local: rcpt.local, domain: rcpt.domain }, first.rule, first.action, { chain: [], depth: 0 });
    const refused = x.failures.some((f) => f.explicit);
    if (x.targets.length === 0 && !refused && isPostmaster(splitExtension(rcpt.local.toLowerCase()).bare) && first.action.kind !== 'relay') {
      x.add({ address, action: first.action, rule: ruleRef(first.rule), dest: { kind: 'user', user: 'root' } }, 'postmaster');
    }
  } catch (e) {
    if (e instanceof TempFail) return { kind: 'reject', reply: TEMPFAIL_REPLY, reason: e.message };
    if (e instanceof PermFail) return { kind: 'reject', reply: e.reply, reason: e.message };
    throw e;
  }
  if (x.ask.size > 0) return { kind: 'ask', users: [...x.ask] };
  if (x.targets.length > 0) return x.dropped.length > 0 ? { kind: 'ok', targets: x.targets, dropped: x.dropped } : { kind: 'ok', targets: x.targets };
  const failure = x.failures.find((f) => f.explicit) ?? x.failures[0];
  if (!failure) return { kind: 'reject', reply: EXPANSION_REPLY, reason: `${address}: expanded to no destination` };
  return { kind: 'reject', reply: failure.reply, reason: failure.reason };
}

/** Virtual table keys for a recipient, in lookup order. */
export function virtualKeys(local: string, domain: string): string[] {
  const { bare, ext } = splitExtension(local.toLowerCase());
  const user = ext === undefined ? bare : `${bare}+${ext}`;
  const d = domain.toLowerCase();
  const keys = d === '' ? [user, bare] : [`${user}@${d}`, `${bare}@${d}`, user, bare, `@${d}`, '@'];
  return [...new Set(keys)];
}

/** "bob+lists" → bare "bob", ext "lists"; a leading "+" is not an extension. */
export function splitExtension(name: string): { bare: string; ext?: string } {
  const plus = name.indexOf('+');
  return plus > 0 ? { bare: name.slice(0, plus), ext: name.slice(plus + 1) } : { bare: name };
}

class TempFail extends Error {}

class PermFail extends Error {
  constructor(
    readonly reply: Reply,
    reason: string,
  ) {
    super(reason);
  }
}

interface Frame {
  readonly chain: readonly string[];
  readonly depth: number;
}

interface Here extends Frame {
  readonly rule: MatchRule;
  readonly action: Action;
  /** The nearest address: the recipient or a forward address. */
  readonly address: string;
}

/** Where a list of destinations came from. */
interface Origin {
  /** The alias/virtual key, for logs. */
  readonly key: string;
  /** The local user the key names, if any: files and commands run as that user. */
  readonly user?: string;
  /** Inside an unsafe include file: no files or commands. */
  readonly unsafe: boolean;
  /** From a ~/.forward: files and commands only as these options allow. */
  readonly forward?: ForwardOptions;
  /** From this user's ~/.forward: its :include: files are read as the user, or taken from `includes`. */
  readonly forwardUser?: UserInfo;
  readonly includes?: ReadonlyMap<string, IncludeRead>;
}

interface Failure {
  readonly reply: Reply;
  readonly reason: string;
  /** An error: entry, whose reply wins. */
  readonly explicit: boolean;
}

class Expansion {
  readonly targets: ExpandTarget[] = [];
  readonly dropped: DroppedBranch[] = [];
  readonly failures: Failure[] = [];
  /** Users whose ~/.forward only the privileged parent may read (env.readForward said 'ask'). */
  readonly ask = new Set<string>();
  private readonly seenTargets = new Set<string>();
  private readonly expanded = new Set<string>();
  private nodes = 0;

  constructor(private readonly env: ExpandEnv) {}

  /** An address with the action the rules chose for it. */
  address(a: { address: string; local: string; domain: string }, rule: MatchRule, action: Action, frame: Frame): void {
    const here: Here = { ...frame, rule, action, address: a.address };
    if (action.kind === 'relay') {
      this.add({ address: a.address, action, rule: ruleRef(rule), dest: { kind: 'remote' } }, a.address);
      return;
    }
    if (action.virtual !== undefined) {
      this.virtual(a.local, a.domain, action.virtual, here);
      return;
    }
    this.user(a.local, here);
  }

  private virtual(local: string, domain: string, table: string, here: Here): void {
    for (const key of virtualKeys(local, domain)) {
      if (this.tableEntry(table, key, here)) return;
    }
    const { bare } = splitExtension(local.toLowerCase());
    if (isPostmaster(bare)) return this.user('root', here);
    this.fail(NO_USER_REPLY, `${here.address}: no virtual mapping in table ${table}`, here.address);
  }

  /** A user name (recipient local part or alias value) under the current action. */
  private user(name: string, here: Here): void {
    const lower = name.toLowerCase();
    const { bare, ext } = splitExtension(lower);
    // Inside bare's own ~/.forward, its name is its mailbox (sendmail's "\\user").
    if (here.chain.includes(forwardTag(bare))) return this.realUser(lower, bare, ext, here);
    const table = here.action.virtual ?? here.action.alias;
    if (table !== undefined) {
      for (const key of unique([lower, bare])) {
        const tag = tableTag(table, key);
        if (here.chain.includes(tag)) {
          // Back at an alias we are inside of: its own user, as sendmail does.
          if (here.action.virtual !== undefined) return this.fail(LOOP_REPLY, `virtual mapping loop: ${loopText(here.chain, tag)}`, key);
          return this.realUser(lower, bare, ext, here, `alias loop: ${loopText(here.chain, tag)}`);
        }
        if (this.tableEntry(table, key, here)) return;
      }
    }
    if (isPostmaster(bare) && !here.chain.includes('postmaster')) {
      return this.user('root', { ...here, chain: [...here.chain, 'postmaster'] });
    }
    this.realUser(lower, bare, ext, here);
  }

  /** Look `key` up in an alias/virtual table; expand it and answer true when found. */
  private tableEntry(table: string, key: string, here: Here): boolean {
    const t = this.env.tables.get(table);
    if (!t) throw new TempFail(`table "${table}" is not defined`);
    const r = lookupAlias(t, key);
    if (r.kind === 'error') throw new TempFail(r.reason);
    if (r.kind === 'notfound') return false;
    const virtual = here.action.virtual !== undefined;
    const tag = tableTag(table, key);
    if (here.chain.includes(tag)) {
      this.fail(LOOP_REPLY, `${virtual ? 'virtual mapping' : 'alias'} loop: ${loopText(here.chain, tag)}`, key);
      return true;
    }
    const once = `${here.action.name}\0${tag}`;
    if (this.expanded.has(once)) return true;
    this.expanded.add(once);
    // Files and commands of an alias run as the local user the alias is named after; a virtual address names none.
    const user = virtual ? undefined : splitExtension(key).bare;
    this.list(r.value, { ...here, chain: [...here.chain, tag], depth: here.depth + 1 }, { key, user, unsafe: false });
    return true;
  }

  /** A user of the userbase table or of the system. */
  private realUser(lower: string, bare: string, ext: string | undefined, here: Here, loop?: string): void {
    let info = this.lookupUser(here.action, lower);
    let extension: string | undefined;
    if (info === undefined && bare !== lower) {
      info = this.lookupUser(here.action, bare);
      if (info !== undefined) extension = safeExtension(ext);
    }
    if (info === undefined) {
      if (loop !== undefined) return this.fail(LOOP_REPLY, `${loop}, and no user ${bare}`, bare);
      return this.fail(NO_USER_REPLY, `no such user: ${bare}`, bare);
    }
    if (here.action.kind === 'expand-only' || here.action.kind === 'forward-only') {
      return this.fail(NO_USER_REPLY, `action ${here.action.name} is ${here.action.kind}: no delivery to the mailbox of ${info.name}`, info.name);
    }
    if (here.action.userbase === undefined && this.forwardFile(info, here)) return;
    const t: ExpandTarget = { address: here.address, action: here.action, rule: ruleRef(here.rule), dest: { kind: 'user', user: info.name } };
    this.add(extension !== undefined ? { ...t, extension } : t, info.name);
  }

  private lookupUser(action: Action, name: string): UserInfo | undefined {
    if (action.userbase !== undefined) {
      const t = this.env.tables.get(action.userbase);
      if (!t) throw new TempFail(`table "${action.userbase}" is not defined`);
      const r = lookupUserinfo(t, name);
      if (r.kind === 'error') throw new TempFail(r.reason);
      return r.kind === 'found' ? r.value : undefined;
    }
    const u = this.env.users.lookup(name);
    if (u !== undefined && 'error' in u) throw new TempFail(u.error);
    return u;
  }

  /** The destinations of one alias/virtual value or include file. */
  private list(nodes: readonly AliasNode[], here: Here, origin: Origin): void {
    if (here.depth > MAX_DEPTH) throw new PermFail(EXPANSION_REPLY, `${here.address}: aliases nested deeper than ${MAX_DEPTH} levels (at ${origin.key})`);
    for (const n of nodes) {
      if (++this.nodes > MAX_NODES) throw new PermFail(EXPANSION_REPLY, `${here.address}: more than ${MAX_NODES} destinations`);
      this.node(n, here, origin);
    }
  }

  private node(n: AliasNode, here: Here, origin: Origin): void {
    switch (n.kind) {
      case 'user':
        return this.user(n.name, here);
      case 'address':
        return this.forward(n, here);
      case 'file':
      case 'command': {
        const what = aliasNodeText(n);
        if (origin.unsafe) return this.fail(EXPANSION_REPLY, `${origin.key}: ${what}: files and commands are not allowed in a group- or world-writable include file`, what);
        if (here.action.kind === 'forward-only') return this.fail(EXPANSION_REPLY, `${origin.key}: ${what}: action ${here.action.name} is forward-only`, what);
        const kind = n.kind === 'file' ? 'files' : 'commands';
        if (origin.forward !== undefined && !origin.forward[kind]) return this.fail(EXPANSION_REPLY, `${origin.key}: ${what}: ${kind} in ~/.forward are not allowed (forward allow ${kind})`, what);
        const user = this.runAs(here.action, origin);
        const dest: Destination = n.kind === 'file' ? { kind: 'file', path: n.path, user } : { kind: 'command', command: n.command, user };
        return this.add({ address: here.address, action: here.action, rule: ruleRef(here.rule), dest }, what);
      }
      case 'include':
        return this.include(n.path, here, origin);
      case 'error':
        this.failures.push({ reply: reply(n.code, n.enhanced, n.text), reason: `${origin.key}: error:${n.code} ${n.text}`, explicit: true });
        this.dropped.push({ what: aliasNodeText(n), reason: `${origin.key}: error entry` });
        return;
    }
  }

  /** An address named by an alias: through the rules again. */
  private forward(n: { address: string; local: string; domain: string }, here: Here): void {
    const d = this.env.route(n.address);
    if (d.kind === 'reject') {
      if (d.reply.code < 500) throw new TempFail(`${n.address}: ${d.reason}`);
      return this.fail(d.reply, `${n.address}: ${d.reason}`, n.address);
    }
    this.address(n, d.rule, d.action, here);
  }

  private include(path: string, here: Here, origin: Origin): void {
    const tag = `include:${path}`;
    if (here.chain.includes(tag)) return this.fail(LOOP_REPLY, `include loop: ${loopText(here.chain, tag)}`, `:include:${path}`);
    const once = `${here.action.name}\0${tag}`;
    if (this.expanded.has(once)) return;
    this.expanded.add(once);
    const r = origin.forwardUser !== undefined ? this.forwardInclude(origin.forwardUser, path, origin) : readIncludeFile(path);
    if (r.kind === 'error') throw new TempFail(`${origin.key}: ${r.reason}`);
    if (r.kind === 'missing') return this.fail(EXPANSION_REPLY, `${origin.key}: :include: ${r.reason}`, `:include:${path}`);
    this.list(r.nodes, { ...here, chain: [...here.chain, tag], depth: here.depth + 1 }, { ...origin, key: `${origin.key} (:include:${path})`, unsafe: origin.unsafe || r.unsafe });
  }

  /** An :include: inside a user's ~/.forward: as the parent read it, else read as the user; never as this process. */
  private forwardInclude(user: UserInfo, path: string, origin: Origin): IncludeRead {
    return origin.includes?.get(path) ?? (this.env.readForwardInclude ?? readIncludeAsUser)(user, path);
  }

  /** A safe ~/.forward of a system user: expand it and answer true; false = deliver to the mailbox. */
  private forwardFile(info: UserInfo, here: Here): boolean {
    const opts = this.env.config.forward ?? DEFAULT_FORWARD;
    const tag = forwardTag(info.name);
    if (!opts.read || here.chain.includes(tag)) return false;
    const r = this.env.readForward ? this.env.readForward(info) : readForwardFile(info);
    if (r === 'ask') {
      this.ask.add(info.name);
      return false;
    }
    if (r.kind === 'missing') return false;
    if (r.kind === 'error') throw new TempFail(r.reason);
    if (r.kind === 'unsafe') {
      this.dropped.push({ what: r.path, reason: `ignored: ${r.reason}` });
      return false;
    }
    if (r.nodes.length === 0) return false;
    const once = `${here.action.name}\0${tag}`;
    if (this.expanded.has(once)) return true;
    this.expanded.add(once);
    const includes = r.includes ? new Map(r.includes.map((e) => [e.path, e.read])) : undefined;
    this.list(r.nodes, { ...here, chain: [...here.chain, tag], depth: here.depth + 1 }, { key: r.path, user: info.name, unsafe: false, forward: opts, forwardUser: info, ...(includes ? { includes } : {}) });
    return true;
  }

  /** Files and commands run as the alias's own local user, never root; else NOBODY. */
  private runAs(action: Action, origin: Origin): string {
    if (origin.user === undefined || origin.user === '') return NOBODY;
    const info = this.lookupUser(action, origin.user);
    return info !== undefined && info.uid !== 0 ? info.name : NOBODY;
  }

  add(t: ExpandTarget, what: string): void {
    const bad = checkTarget(t);
    if (bad !== undefined) return this.fail(EXPANSION_REPLY, `${what}: ${bad}`, what);
    const key = targetKey(t);
    if (this.seenTargets.has(key)) return;
    this.seenTargets.add(key);
    this.targets.push(t);
  }

  private fail(r: Reply, reason: string, what: string): void {
    this.failures.push({ reply: r, reason, explicit: false });
    this.dropped.push({ what, reason });
  }
}

function targetKey(t: ExpandTarget): string {
  const d = t.dest;
  switch (d.kind) {
    case 'user':
      return `user\0${t.action.name}\0${d.user}\0${t.extension ?? ''}`;
    case 'file':
      return `file\0${d.path}\0${d.user}`;
    case 'command':
      return `command\0${d.command}\0${d.user}`;
    case 'remote':
      return `remote\0${t.action.name}\0${t.address.toLowerCase()}`;
  }
}

// eslint-disable-next-line no-control-regex
const CR_LF_NUL = /[\r\n\0]/;

/** Defence in depth: what reaches an envelope has no CR, LF or NUL, and file paths are absolute. */
function checkTarget(t: ExpandTarget): string | undefined {
  const d = t.dest;
  const fields = [t.address, t.extension ?? ''];
  if (d.kind === 'user') fields.push(d.user);
  if (d.kind === 'file') fields.push(d.path, d.user);
  if (d.kind === 'command') fields.push(d.command, d.user);
  if (fields.some((f) => CR_LF_NUL.test(f))) return 'CR, LF or NUL in a destination';
  if (d.kind === 'file' && !d.path.startsWith('/')) return 'a file destination must be an absolute path';
  if ((d.kind === 'user' || d.kind === 'file' || d.kind === 'command') && d.user === '') return 'no user to deliver as';
  return undefined;
}

/** A +extension usable as a maildir sub-folder name, or undefined. */
function safeExtension(ext: string | undefined): string | undefined {
  if (ext === undefined || ext === '') return undefined;
  if (!/^[a-z0-9!#$%&'*+\-=?^_`{|}~.]+$/.test(ext) || ext.startsWith('.') || ext.includes('..')) return undefined;
  return ext;
}

function isPostmaster(bare: string): boolean {
  return bare === 'postmaster' || bare === 'mailer-daemon';
}

function forwardTag(user: string): string {
  return `forward:${user}`;
}

function tableTag(table: string, key: string): string {
  return `table:${table}\0${key}`;
}

function loopText(chain: readonly string[], tag: string): string {
  return [...chain.slice(chain.indexOf(tag)), tag]
    .filter((t) => t !== 'postmaster')
    .map((t) => t.replace(/^table:[^\0]*\0/, '').replace(/^include:/, ':include:'))
    .join(' → ');
}

function ruleRef(rule: MatchRule): string {
  return `${rule.pos.file}:${rule.pos.line}`;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
