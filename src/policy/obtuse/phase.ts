/*
 * policy/obtuse/phase.ts — the rules file as a policy phase.
 *
 * The rules are checked at RCPT, when the client, the sender and the
 * recipient are all known (as Obtuse smtpd did). The first matching rule
 * decides:
 *
 *   allow       the recipient is accepted: smtpd.conf's rules decide its
 *               action, and when none matches it is relayed (a grant)
 *   noto        refuse this recipient; the session goes on
 *   deny        refuse and close the session
 *   noto_delay  as noto, after waiting delays.notoMs (default 60 s)
 *   deny_delay  as deny, after waiting delays.denyMs (default 60 s)
 *   debug       note the match (in explain()) and go on to the next rule
 *
 * No matching rule: allow, as Obtuse's default build (CHECK_FAILURE 1);
 * `noMatch` can make it noto or deny. A DNS lookup that fails is a 451
 * temporary failure — Obtuse let such mail through, Postern never reads
 * a failed lookup as an answer.
 *
 * The reply is the rule's "XXX text" (or Obtuse's default "550 Mail from
 * %F to %T prohibited from your location (%U@%H ip=%I)") with the
 * variables filled in; values are stripped of control characters so a
 * sender address cannot split the reply.
 */
import { formatMailbox, type Mailbox } from '../../mail/address.js';
import { reply, sanitizeReplyText, type Reply } from '../../mail/reply.js';
import type { PolicyPhase, SessionFacts, TxFacts } from '../policy.js';
import { PASS, type Verdict } from '../verdict.js';
import { canonicalIp } from '../../net/ip.js';
import { LookupFailure, RuleMatcher, type MatchSubject, type ObtuseDns } from './match.js';
import { DEFAULT_MESSAGE, type AddressPattern, type MessageTemplate, type ObtuseRule, type ObtuseRules, type PatternList, type SourcePattern } from '../../config/obtuse/parse.js';

export interface ObtuseDelays {
  /** Wait before a noto_delay refusal (ms). Obtuse's NOTO_DELAY: 60 s. */
  readonly notoMs: number;
  /** Wait before a deny_delay refusal (ms). Obtuse's DENY_DELAY: 60 s. */
  readonly denyMs: number;
}

export const DEFAULT_OBTUSE_DELAYS: ObtuseDelays = Object.freeze({ notoMs: 60_000, denyMs: 60_000 });

export interface ObtuseRulesOptions {
  readonly rules: ObtuseRules;
  /** For NS= and RBL. patterns; required when the rules use them. */
  readonly dns?: ObtuseDns;
  /**
   * The client's ident (RFC 1413) user name, asked for only when a rule or
   * message needs it. Default here: unknown; policy/build.ts passes
   * policy/obtuse/ident.ts's client.
   */
  readonly ident?: (s: SessionFacts) => Promise<string | undefined>;
  readonly delays?: Partial<ObtuseDelays>;
  /** What happens when no rule matches. Default 'allow' (Obtuse's default). */
  readonly noMatch?: 'allow' | 'noto' | 'deny';
}

export type ObtuseOutcome = 'allow' | 'noto' | 'deny' | 'no-match' | 'tempfail';

export interface ObtuseExplanation {
  readonly verdict: Verdict;
  readonly outcome: ObtuseOutcome;
  /** The rule that decided (undefined for no-match). */
  readonly rule?: ObtuseRule;
  /** `debug` rules that matched on the way. */
  readonly debug: readonly ObtuseRule[];
  /** One line for the dry run: where the decision came from. */
  readonly why: string;
}

export interface ObtuseRulesPhase extends PolicyPhase {
  rcpt(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<Verdict>;
  /** The same decision as rcpt(), with the rule that made it. */
  explain(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<ObtuseExplanation>;
}

/** Longest reply text after expansion (a reply line is at most 512 octets, RFC 5321 §4.5.3.1.5). */
const MAX_TEXT = 450;

const TEMPFAIL = reply(451, '4.3.0', 'Temporary failure, please try again later');

/** Build the rcpt-time policy phase of a parsed rules file. */
export function obtuseRulesPhase(opts: ObtuseRulesOptions): ObtuseRulesPhase {
  const delays: ObtuseDelays = { ...DEFAULT_OBTUSE_DELAYS, ...opts.delays };
  for (const [k, v] of Object.entries(delays)) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`obtuse delay ${k} must be 0 or more milliseconds`);
  }
  if (opts.dns === undefined) {
    const needs = opts.rules.rules.filter(usesDns);
    if (needs.length > 0) {
      const where = needs.map((r) => `${r.pos.file}:${r.pos.line}`).join(', ');
      throw new Error(`NS= and RBL. patterns need a DNS resolver (${where})`);
    }
  }
  const noMatch = opts.noMatch ?? 'allow';
  const file = opts.rules.file;

  async function explain(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<ObtuseExplanation> {
    let identAnswer: Promise<string | undefined> | undefined;
    const subject: MatchSubject = {
      ip: canonicalIp(s.clientAddress),
      ...(s.rdns !== undefined ? { host: s.rdns } : {}),
      from: tx.sender === null ? '' : formatMailbox(tx.sender),
      to: formatMailbox(rcpt),
      ident: () => (identAnswer ??= opts.ident ? opts.ident(s).catch(() => undefined) : Promise.resolve(undefined)),
    };
    const m = new RuleMatcher(subject, opts.dns);
    const debug: ObtuseRule[] = [];
    for (const rule of opts.rules.rules) {
      let hit: boolean;
      try {
        hit = (await m.source(rule.source)) && (await m.address(rule.from, subject.from)) && (await m.address(rule.to, subject.to));
      } catch (e) {
        if (!(e instanceof LookupFailure)) throw e;
        const where = `${rule.pos.file}:${rule.pos.line}`;
        return { verdict: { kind: 'reject', reply: TEMPFAIL, reason: `${where}: ${e.message}` }, outcome: 'tempfail', rule, debug, why: `${where}: ${e.message}` };
      }
      if (!hit) continue;
      if (rule.action === 'debug') {
        debug.push(rule);
        continue;
      }
      const where = `${rule.pos.file}:${rule.pos.line}`;
      const why = `${where}: ${rule.line}`;
      // "allow an SMTP connection" (seed 001): the recipient may be relayed (policy.ts applies the grant).
      if (rule.action === 'allow') return { verdict: { kind: 'pass', grant: { kind: 'relay', rule: where } }, outcome: 'allow', rule, debug, why };
      const closes = rule.action === 'deny' || rule.action === 'deny_delay';
      const delayMs = rule.action === 'noto_delay' ? delays.notoMs : rule.action === 'deny_delay' ? delays.denyMs : 0;
      const r = await render(rule.message ?? DEFAULT_MESSAGE, subject);
      const verdict: Verdict = {
        kind: 'reject',
        reply: r,
        reason: `${where}: ${rule.action} ${subject.from || '<>'} -> ${subject.to} from ${subject.ip}`,
        ...(closes ? { disconnect: true } : {}),
        ...(delayMs > 0 ? { delayMs } : {}),
      };
      return { verdict, outcome: closes ? 'deny' : 'noto', rule, debug, why };
    }
    const why = `${file}: no rule matched (default: ${noMatch})`;
    if (noMatch === 'allow') return { verdict: PASS, outcome: 'no-match', debug, why };
    const r = await render(DEFAULT_MESSAGE, subject);
    return {
      verdict: { kind: 'reject', reply: r, reason: why, ...(noMatch === 'deny' ? { disconnect: true } : {}) },
      outcome: 'no-match',
      debug,
      why,
    };
  }

  return {
    name: 'obtuse-rules',
    explain,
    async rcpt(s, tx, rcpt) {
      return (await explain(s, tx, rcpt)).verdict;
    },
  };
}

/** Expand %F %T %H %I %U %C %% in a rule's message. */
export async function expandMessage(text: string, subject: MatchSubject): Promise<string> {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const code = text[++i];
    switch (code) {
      case '%':
        out += '%';
        break;
      case 'C':
        out += ':';
        break;
      case 'F':
        out += value(`<${subject.from}>`);
        break;
      case 'T':
        out += value(`<${subject.to}>`);
        break;
      case 'H':
        out += value(subject.host ?? 'UNKNOWN');
        break;
      case 'I':
        out += value(subject.ip);
        break;
      case 'U':
        out += value((await subject.ident()) ?? 'UNKNOWN');
        break;
      default:
        // The parser refuses unknown codes; keep them literally should one slip through.
        out += `%${code ?? ''}`;
    }
  }
  return out.length > MAX_TEXT ? `${out.slice(0, MAX_TEXT - 3)}...` : out;
}

async function render(m: MessageTemplate, subject: MatchSubject): Promise<Reply> {
  return reply(m.code, m.enhanced, await expandMessage(m.text, subject));
}

/** A variable's value: no control characters (CR/LF would split the reply), bounded length. */
function value(v: string): string {
  const clean = sanitizeReplyText(v);
  return clean.length > 300 ? `${clean.slice(0, 297)}...` : clean;
}

function usesDns(rule: ObtuseRule): boolean {
  const src = (p: SourcePattern): boolean => (p.kind === 'ident' ? src(p.host) : p.kind === 'ns' || p.kind === 'rbl');
  const addr = (p: AddressPattern): boolean => p.kind === 'ns' || (p.kind === 'mailbox' && p.domain.kind === 'ns');
  return anyIn(rule.source, src) || anyIn(rule.from, addr) || anyIn(rule.to, addr);
}

function anyIn<T>(l: PatternList<T>, f: (p: T) => boolean): boolean {
  return l.items.some(f) || (l.except !== undefined && anyIn(l.except, f));
}
