/*
 * policy/zmailer/router.ts — ZMailer's `smtpserver -R router` with
 * `PARAM enable-router`: an address-verification program asked about
 * addresses while the client waits.
 *
 * ZMailer fed its router a shell function call; Postern runs the program
 * with an argument vector and no shell, so nothing a client sends can
 * become a command:
 *
 *   ROUTER rcpt ADDRESS      at RCPT (style flag "t", on by default with -R)
 *   ROUTER from ADDRESS      at MAIL, when the style has "f" ("" for <>)
 *
 * The answer is the exit status: 0 accepts; 1–63 refuses with 550 5.1.1
 * (or the first line of standard output when it starts with a 5xx code);
 * 75 (EX_TEMPFAIL) and anything else — a crash, a time-out (10 s), a
 * program that cannot be run — is 451 4.3.0: a failed check is never read
 * as an answer. The address is one argument, given as the client wrote it
 * (already parsed and free of control characters by the session).
 */
import { execFile } from 'node:child_process';
import { formatMailbox, type Mailbox } from '../../mail/address.js';
import { reply, sanitizeReplyText } from '../../mail/reply.js';
import type { PolicyPhase } from '../policy.js';
import { PASS, type Verdict } from '../verdict.js';

export interface RouterOptions {
  readonly program: string;
  /** Check MAIL FROM too (style flag "f"). */
  readonly checkSender: boolean;
  readonly timeoutMs?: number;
}

/** Run the router once: the verdict for this address. */
export function askRouter(program: string, what: 'rcpt' | 'from', address: string, timeoutMs = 10_000): Promise<Verdict> {
  return new Promise((resolve) => {
    execFile(program, [what, address], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024, env: { PATH: '/usr/bin:/bin' } }, (err, stdout) => {
      const first = String(stdout).split('\n')[0]?.trim() ?? '';
      if (!err) return resolve(PASS);
      const code = typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : undefined;
      if (code !== undefined && code >= 1 && code <= 63) {
        const m = /^(5\d\d)(?:[ -]+(5\.\d{1,3}\.\d{1,3}))?\s*(.*)$/.exec(first);
        const r = m ? reply(Number(m[1]), m[2] ?? '5.1.1', sanitizeReplyText(m[3] || 'Address refused by the router')) : reply(550, '5.1.1', `<${address}>: address refused by the router`);
        return resolve({ kind: 'reject', reply: r, reason: `router ${program} ${what} ${address}: exit ${code}${first ? `: ${first}` : ''}` });
      }
      resolve({ kind: 'reject', reply: reply(451, '4.3.0', 'Address verification failed temporarily, try again later'), reason: `router ${program} ${what} ${address}: ${err.message}` });
    });
  });
}

export function routerPhase(o: RouterOptions): PolicyPhase {
  return {
    name: 'router',
    mail(_s, tx) {
      if (!o.checkSender) return PASS;
      return askRouter(o.program, 'from', tx.sender === null ? '' : formatMailbox(tx.sender), o.timeoutMs);
    },
    rcpt(_s, _tx, rcpt: Mailbox) {
      return askRouter(o.program, 'rcpt', formatMailbox(rcpt), o.timeoutMs);
    },
  };
}
