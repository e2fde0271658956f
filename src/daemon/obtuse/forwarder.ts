/*
 * daemon/obtuse/forwarder.ts — smtpfwdd: hand what the Obtuse receiver
 * spooled to the real MTA, one message at a time, by running its
 * sendmail program with an argument vector (never a shell line):
 *
 *   SENDMAIL -oi -f SENDER -- RECIPIENT…      (message on standard input, LF line ends)
 *
 * The message is removed from the spool only after sendmail exited 0 —
 * by then the MTA has it. Any other ending (a status, a signal, a time-out,
 * sendmail missing) keeps it and tries again later, backing off from
 * retryMs to maxRetryMs. Killed at any point, smtpfwdd loses nothing: at
 * worst the MTA got a message whose removal did not happen, and gets it
 * again (a duplicate, never a loss).
 *
 * Every address is checked with the SMTP parser before it reaches the
 * argument vector; an envelope with one that does not parse is left in the
 * spool and logged (it did not come from the receiver).
 */
import { spawn } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseMailFromArg, parseRcptToArg } from '../../mail/address.js';
import type { Envelope } from '../../mail/envelope.js';
import type { Spool } from '../../spool/spool.js';
import type { MailLog } from '../../log/maillog.js';

export interface ForwarderOptions {
  readonly spool: Pick<Spool, 'list' | 'load' | 'openBody' | 'remove'>;
  readonly log: Pick<MailLog, 'info' | 'warn' | 'error'>;
  /** The MTA's sendmail program (absolute path). */
  readonly sendmail: string;
  /** How often to look into the spool. Default 1000 ms. */
  readonly pollMs?: number;
  /** First wait after a failure; doubles up to maxRetryMs. Defaults 60 s and 15 min. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
  /** Longest sendmail run. Default 10 min. */
  readonly timeoutMs?: number;
  /** Environment for sendmail (default: PATH only). */
  readonly env?: NodeJS.ProcessEnv;
}

/** sendmail's arguments for an envelope, or why the envelope cannot be handed over. */
export function sendmailArgs(env: Pick<Envelope, 'sender' | 'recipients' | 'smtputf8'>): { readonly args: readonly string[] } | { readonly error: string } {
  const opts = { smtputf8: env.smtputf8, strict: true };
  const from = parseMailFromArg(`FROM:<${env.sender}>`, opts);
  if (!from.ok || from.params !== '') return { error: `sender ${JSON.stringify(env.sender)} is not an address` };
  const rcpts: string[] = [];
  for (const r of env.recipients) {
    const to = parseRcptToArg(`TO:<${r.address}>`, opts);
    if (!to.ok || to.params !== '' || to.mailbox === null || r.address.startsWith('-')) return { error: `recipient ${JSON.stringify(r.address)} is not an address` };
    if (!rcpts.includes(r.address)) rcpts.push(r.address);
  }
  if (rcpts.length === 0) return { error: 'no recipients' };
  // "<>" is the null sender to sendmail -f (Sendmail and Postfix alike).
  return { args: ['-oi', '-f', env.sender === '' ? '<>' : env.sender, '--', ...rcpts] };
}

/** CRLF → LF, as a local sendmail program expects; a CR alone is kept. */
export class CrlfToLf extends Transform {
  private pendingCr = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let s = this.pendingCr ? Buffer.concat([Buffer.from('\r'), chunk]) : chunk;
    this.pendingCr = s.length > 0 && s[s.length - 1] === 0x0d;
    if (this.pendingCr) s = s.subarray(0, s.length - 1);
    cb(null, Buffer.from(s.toString('latin1').replaceAll('\r\n', '\n'), 'latin1'));
  }
  override _flush(cb: TransformCallback): void {
    cb(null, this.pendingCr ? Buffer.from('\r') : undefined);
  }
}

export class Forwarder {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** msgid → when to try again, and the wait after the next failure. */
  private readonly waiting = new Map<string, { at: number; nextMs: number }>();

  constructor(private readonly o: ForwarderOptions) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.pass().catch((e: Error) => this.o.log.error(`smtpfwdd: ${e.message}`));
      void this.running.then(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.o.pollMs ?? 1000);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One look into the spool: every message due is handed over, one after another. */
  async pass(): Promise<void> {
    const now = Date.now();
    for (const msgid of (await this.o.spool.list()).sort()) {
      if (this.stopped) return;
      const w = this.waiting.get(msgid);
      if (w !== undefined && w.at > now) continue;
      const ok = await this.forward(msgid);
      if (ok) {
        this.waiting.delete(msgid);
        continue;
      }
      const waitMs = w?.nextMs ?? this.o.retryMs ?? 60_000;
      this.waiting.set(msgid, { at: Date.now() + waitMs, nextMs: Math.min(waitMs * 2, this.o.maxRetryMs ?? 900_000) });
    }
  }

  private async forward(msgid: string): Promise<boolean> {
    let envelope: Envelope;
    try {
      envelope = (await this.o.spool.load(msgid)).envelope;
    } catch (e) {
      this.o.log.warn(`smtpfwdd: ${msgid}: cannot read it: ${(e as Error).message}`);
      return false;
    }
    const a = sendmailArgs(envelope);
    if ('error' in a) {
      this.o.log.error(`smtpfwdd: ${msgid}: kept in the spool: ${a.error}`);
      return false;
    }
    const result = await this.run(msgid, a.args);
    if (result !== 'ok') {
      this.o.log.warn(`smtpfwdd: ${msgid}: ${this.o.sendmail} ${result}; kept for a retry`);
      return false;
    }
    await this.o.spool.remove(msgid);
    this.o.log.info(`smtpfwdd: ${msgid}: handed to ${this.o.sendmail} from=<${envelope.sender}> rcpts=${a.args.length - 4}`);
    return true;
  }

  /** Run sendmail with the body on its standard input: 'ok' or what went wrong. */
  private run(msgid: string, args: readonly string[]): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn(this.o.sendmail, [...args], { stdio: ['pipe', 'ignore', 'pipe'], env: this.o.env ?? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      let stderr = '';
      let settled = false;
      const done = (r: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        done('timed out');
      }, this.o.timeoutMs ?? 600_000);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < 2000) stderr += d;
      });
      child.on('error', (e) => done(`could not run: ${e.message}`));
      // A spool read that fails must not end sendmail's input as if the message were complete:
      // sendmail is killed first (this listener runs before pipeline() closes its input).
      const body = this.o.spool.openBody(msgid);
      let bodyFailed = false;
      body.on('error', () => {
        bodyFailed = true;
        child.kill('SIGKILL');
      });
      child.on('close', (code, signal) => {
        if (bodyFailed) return done('was stopped: the message could not be read from the spool');
        done(code === 0 ? 'ok' : `${signal ? `killed by ${signal}` : `exited ${code}`}${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`);
      });
      pipeline(body, new CrlfToLf(), child.stdin).catch(() => {
        // sendmail closed its input early: its exit status tells.
      });
    });
  }
}
