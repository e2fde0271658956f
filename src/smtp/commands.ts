/*
 * smtp/commands.ts — the command table: which verb is valid in which
 * state, and what it runs (OpenSMTPD's smtp_cmd table, as data).
 *
 * A verb in the wrong state gets its own "bad sequence" reply (503 5.5.1),
 * never a crash and never a state change. ZMailer's sloppy style (S) lets
 * a few verbs run in more states (MAIL before HELO).
 */
import { reply, closing, type Reply } from '../mail/reply.js';
import type { CommandResult, Session } from './session.js';

export type SessionState = 'connect' | 'ready' | 'helo' | 'mail' | 'data' | 'bdat' | 'closed';

export interface CommandSpec {
  readonly verb: string;
  readonly states: readonly SessionState[];
  /** The EHLO keyword that must be on for this verb to exist (ETRN, BDAT…). */
  readonly extension?: string;
  /** States where the verb is also valid when the session's ZMailer style has S (sloppy). */
  readonly sloppyStates?: readonly SessionState[];
  run(s: Session, arg: string): CommandResult | Promise<CommandResult>;
  sequenceError(s: Session): Reply;
}

const AFTER_GREETING: readonly SessionState[] = ['ready', 'helo', 'mail', 'bdat'];
const badSequence = (text: string) => (): Reply => reply(503, '5.5.1', text);

function r(x: Reply): CommandResult {
  return { reply: x };
}

const table: CommandSpec[] = [
  { verb: 'EHLO', states: AFTER_GREETING, run: (s, a) => s.helloCommand(a, true), sequenceError: badSequence('Bad sequence of commands') },
  { verb: 'HELO', states: AFTER_GREETING, run: (s, a) => s.helloCommand(a, false), sequenceError: badSequence('Bad sequence of commands') },
  {
    verb: 'MAIL',
    states: ['helo'],
    sloppyStates: ['ready'],
    run: (s, a) => s.mailCommand(a),
    sequenceError: (s) => (s.state === 'ready' ? reply(503, '5.5.1', 'Send HELO/EHLO first') : reply(503, '5.5.1', 'Sender already specified')),
  },
  {
    verb: 'RCPT',
    states: ['mail'],
    run: (s, a) => s.rcptCommand(a),
    sequenceError: (s) => (s.state === 'bdat' ? reply(503, '5.5.1', 'RCPT not allowed during BDAT') : reply(503, '5.5.1', 'Need MAIL before RCPT')),
  },
  {
    verb: 'DATA',
    states: ['mail'],
    run: (s, a) => s.dataCommand(a),
    sequenceError: (s) => (s.state === 'bdat' ? reply(503, '5.5.1', 'DATA not allowed during BDAT') : reply(503, '5.5.1', 'Need MAIL command')),
  },
  // BDAT is accepted in every state after the greeting so that its chunk is always read (RFC 3030 §4.1).
  { verb: 'BDAT', states: ['ready', 'helo', 'mail', 'bdat'], extension: 'CHUNKING', run: (s, a) => s.bdatCommand(a), sequenceError: badSequence('Bad sequence of commands') },
  {
    verb: 'RSET',
    states: AFTER_GREETING,
    run: async (s, a) => {
      if (a.trim() !== '') return r(reply(501, '5.5.4', 'Syntax: RSET (no parameters)'));
      await s.resetTransaction();
      return r(reply(250, '2.0.0', 'Reset state'));
    },
    sequenceError: badSequence('Bad sequence of commands'),
  },
  { verb: 'NOOP', states: AFTER_GREETING, run: () => r(reply(250, '2.0.0', 'Ok')), sequenceError: badSequence('Bad sequence of commands') },
  {
    verb: 'QUIT',
    states: AFTER_GREETING,
    run: async (s) => {
      await s.resetTransaction();
      return r(closing(reply(221, '2.0.0', `${s.peer.hostname} Bye`)));
    },
    sequenceError: badSequence('Bad sequence of commands'),
  },
  {
    verb: 'HELP',
    states: AFTER_GREETING,
    run: (s) => {
      const lines = s.env.config.smtp.help;
      return r(reply(214, '2.0.0', ...(lines.length > 0 ? lines : ['This is Postern. Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN ETRN', 'End of HELP info'])));
    },
    sequenceError: badSequence('Bad sequence of commands'),
  },
  {
    verb: 'VRFY',
    states: AFTER_GREETING,
    run: (s, a) => {
      if (a.trim() === '') return r(reply(501, '5.5.4', 'Syntax: VRFY address'));
      // VRFYcmd turns VRFY on; with a ZMailer style it looks the address up only under flag "v".
      if (!s.env.config.smtp.vrfy || (s.style !== undefined && !s.style.has('v'))) return r(reply(252, '2.1.5', 'Cannot VRFY user, but will accept message and attempt delivery'));
      return s.vrfyCommand(a);
    },
    sequenceError: badSequence('Bad sequence of commands'),
  },
  {
    verb: 'EXPN',
    states: AFTER_GREETING,
    run: (s, a) => {
      if (!s.env.config.smtp.expn) return r(reply(502, '5.5.1', 'EXPN command not available'));
      if (a.trim() === '') return r(reply(501, '5.5.4', 'Syntax: EXPN list'));
      // EXPNcmd turns EXPN on; it expands only under a ZMailer style with flag "e".
      if (s.style?.has('e') === true) return s.expnCommand(a);
      return r(reply(252, '2.1.5', 'Cannot EXPN, but will accept message and attempt delivery'));
    },
    sequenceError: badSequence('Bad sequence of commands'),
  },
  {
    verb: 'ETRN',
    states: ['helo'],
    extension: 'ETRN',
    run: async (s, a) => {
      // RFC 1985: "@domain" includes subdomains, "#name" is a queue name; the scheduler reads both.
      const node = a.trim();
      if (node.replace(/^[@#]/, '') === '' || /[\s\x00-\x1f\x7f]/.test(node)) return r(reply(501, '5.5.4', 'Syntax: ETRN domain'));
      return r(await s.env.scheduler.etrn(node.toLowerCase()));
    },
    sequenceError: (s) => (s.state === 'ready' ? reply(503, '5.5.1', 'Send HELO/EHLO first') : reply(503, '5.5.1', 'ETRN not allowed during a mail transaction')),
  },
  { verb: 'STARTTLS', states: AFTER_GREETING, run: (s, a) => s.starttlsCommand(a), sequenceError: badSequence('Bad sequence of commands') },
  { verb: 'AUTH', states: ['helo', 'mail'], run: (s, a) => s.authCommand(a), sequenceError: () => reply(503, '5.5.1', 'Send EHLO first') },
];

export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(table.map((c) => [c.verb, c]));
