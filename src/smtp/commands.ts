/*
 * smtp/commands.ts — the command table: which verb is valid in which
 * state, which policy phase it consults, what it runs (OpenSMTPD's
 * smtp_cmd table, as data), and the CommandResult every command returns.
 *
 * The handlers are the session's methods, named by the CommandHandlers
 * interface; the session builds the table once from its prototype
 * (commandTable(Session.prototype)), so this file never imports the
 * session. A verb in the wrong state gets its own "bad sequence" reply
 * (503 5.5.1), never a crash and never a state change. ZMailer's sloppy
 * style (S) lets a few verbs run in more states (MAIL before HELO). "Junk"
 * verbs count towards `smtp limit max-junk-commands` (Postfix's
 * smtpd_junk_command_limit).
 */
import { reply, closing, type Reply } from '../mail/reply.js';
import type { Verdict } from '../policy/verdict.js';
import type { PhaseName } from '../policy/policy.js';

export type SessionState = 'connect' | 'ready' | 'helo' | 'mail' | 'data' | 'bdat' | 'closed';

/** What a command asks of the connection besides writing its reply. */
export interface CommandResult {
  readonly reply?: Reply;
  /** Switch the framer: DATA content follows, or a BDAT chunk of n bytes. */
  readonly then?:
    | { readonly mode: 'data'; readonly maxSize: number }
    | { readonly mode: 'bytes'; readonly n: number }
    /** Upgrade the connection to TLS after writing the reply; discard anything buffered. */
    | { readonly mode: 'starttls' }
    /** The next line is an AUTH response, not a command (never logged). */
    | { readonly mode: 'auth' };
  /** Wait this long before writing the reply (noto_delay, deny_delay, a failed AUTH). */
  readonly delayMs?: number;
}

/** A refusal verdict as a command result: the reply (closing when the verdict says so) and its delay. */
export function refused(v: Verdict & { kind: 'reject' }): CommandResult {
  return { reply: v.disconnect ? closing(v.reply) : v.reply, ...(v.delayMs ? { delayMs: v.delayMs } : {}) };
}

type Handled = CommandResult | Promise<CommandResult>;

/** The session's command handlers, one per verb (or two verbs: HELO/EHLO differ in a flag). */
export interface CommandHandlers {
  ehloCommand(arg: string): Handled;
  heloCommand(arg: string): Handled;
  mailCommand(arg: string): Handled;
  rcptCommand(arg: string): Handled;
  dataCommand(arg: string): Handled;
  bdatCommand(arg: string): Handled;
  rsetCommand(arg: string): Handled;
  noopCommand(arg: string): Handled;
  quitCommand(arg: string): Handled;
  helpCommand(arg: string): Handled;
  vrfyCommand(arg: string): Handled;
  expnCommand(arg: string): Handled;
  etrnCommand(arg: string): Handled;
  starttlsCommand(arg: string): Handled;
  authCommand(arg: string): Handled;
}

/** A handler: one of CommandHandlers' methods, called with the session as `this`. */
export type Handler = (this: CommandHandlers, arg: string) => Handled;

export interface CommandSpec {
  readonly verb: string;
  readonly states: readonly SessionState[];
  /** The policy phase the handler consults, if any (policy/policy.ts); BDAT LAST and DATA's end also run `commit`. */
  readonly phase?: PhaseName;
  readonly handler: Handler;
  /** The reply in any other state. */
  readonly sequenceError: (state: SessionState) => Reply;
  /** The EHLO keyword that must be on for this verb to exist (ETRN, BDAT…). */
  readonly extension?: string;
  /** States where the verb is also valid when the session's ZMailer style has S (sloppy). */
  readonly sloppyStates?: readonly SessionState[];
  /** Counts towards the junk-command limit. */
  readonly junk?: true;
}

const AFTER_GREETING: readonly SessionState[] = ['ready', 'helo', 'mail', 'bdat'];

const badSequence = (): Reply => reply(503, '5.5.1', 'Bad sequence of commands');
const mailOutOfSequence = (s: SessionState): Reply => (s === 'ready' ? reply(503, '5.5.1', 'Send HELO/EHLO first') : reply(503, '5.5.1', 'Sender already specified'));
const rcptOutOfSequence = (s: SessionState): Reply => (s === 'bdat' ? reply(503, '5.5.1', 'RCPT not allowed during BDAT') : reply(503, '5.5.1', 'Need MAIL before RCPT'));
const dataOutOfSequence = (s: SessionState): Reply => (s === 'bdat' ? reply(503, '5.5.1', 'DATA not allowed during BDAT') : reply(503, '5.5.1', 'Need MAIL command'));
const etrnOutOfSequence = (s: SessionState): Reply => (s === 'ready' ? reply(503, '5.5.1', 'Send HELO/EHLO first') : reply(503, '5.5.1', 'ETRN not allowed during a mail transaction'));
const authOutOfSequence = (): Reply => reply(503, '5.5.1', 'Send EHLO first');

/** The table, its handlers taken from `h` (the session's prototype). */
export function commandTable(h: CommandHandlers): ReadonlyMap<string, CommandSpec> {
  const rows: CommandSpec[] = [
    { verb: 'EHLO', states: AFTER_GREETING, phase: 'helo', handler: h.ehloCommand, sequenceError: badSequence },
    { verb: 'HELO', states: AFTER_GREETING, phase: 'helo', handler: h.heloCommand, sequenceError: badSequence },
    { verb: 'MAIL', states: ['helo'], sloppyStates: ['ready'], phase: 'mail', handler: h.mailCommand, sequenceError: mailOutOfSequence },
    { verb: 'RCPT', states: ['mail'], phase: 'rcpt', handler: h.rcptCommand, sequenceError: rcptOutOfSequence },
    { verb: 'DATA', states: ['mail'], phase: 'data', handler: h.dataCommand, sequenceError: dataOutOfSequence },
    // BDAT is accepted in every state after the greeting so that its chunk is always read (RFC 3030 §4.1).
    { verb: 'BDAT', states: ['ready', 'helo', 'mail', 'bdat'], extension: 'CHUNKING', phase: 'data', handler: h.bdatCommand, sequenceError: badSequence },
    { verb: 'RSET', states: AFTER_GREETING, junk: true, handler: h.rsetCommand, sequenceError: badSequence },
    { verb: 'NOOP', states: AFTER_GREETING, junk: true, handler: h.noopCommand, sequenceError: badSequence },
    { verb: 'QUIT', states: AFTER_GREETING, handler: h.quitCommand, sequenceError: badSequence },
    { verb: 'HELP', states: AFTER_GREETING, junk: true, handler: h.helpCommand, sequenceError: badSequence },
    { verb: 'VRFY', states: AFTER_GREETING, junk: true, phase: 'rcpt', handler: h.vrfyCommand, sequenceError: badSequence },
    { verb: 'EXPN', states: AFTER_GREETING, phase: 'rcpt', handler: h.expnCommand, sequenceError: badSequence },
    { verb: 'ETRN', states: ['helo'], extension: 'ETRN', handler: h.etrnCommand, sequenceError: etrnOutOfSequence },
    { verb: 'STARTTLS', states: AFTER_GREETING, handler: h.starttlsCommand, sequenceError: badSequence },
    { verb: 'AUTH', states: ['helo', 'mail'], handler: h.authCommand, sequenceError: authOutOfSequence },
  ];
  return new Map(rows.map((c) => [c.verb, c]));
}
