/*
 * policy/zmailer/contentfilter.ts — ZMailer's content filter interface
 * (PARAM contentfilter PATH, seed 000).
 *
 * The program runs without a shell (spawned with an argument array, no
 * arguments by default, as execFile does), in the spool folder, in a
 * process group of its own, with a small environment.
 * It reads the spool file's path relative to that folder, ending in a
 * newline, on its standard input, and answers with one line:
 *
 *   <signed integer> [<code> [<enhanced code>] <text>]
 *
 *   -1 (any negative)  reject the message        default 550 5.7.1
 *    0                 accept it
 *    1 (any positive)  freeze it (hold for review) default: accepted as usual
 *
 * e.g. "0", "-1 550 5.7.1 That is spam", "1 250 2.6.0 Held for review".
 * A negative answer with a 2xx code ("-1 250 2.7.1 …") means: tell the
 * client all is well and throw the message away ("discard"). An accept
 * with a refusal code keeps the default reply (that would make the client
 * resend a message that was delivered). Lines that do not start with a
 * signed integer (such as later ZMailer's "#hungry") are skipped; the first
 * well-formed line is the answer.
 *
 * No answer: a filter that exits 0 without one freezes the message (as
 * ZMailer); one that crashes, is killed, cannot be started, or outlives
 * the time limit gets "451 4.3.0" — a temporary failure, so the client
 * keeps the message and tries again. A small semaphore bounds how many
 * filters run at once (contentfilter-maxpar, default 2).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { reply, sanitizeReplyText, type Reply } from '../../mail/reply.js';

export type FilterDisposition = 'accept' | 'reject' | 'freeze' | 'discard' | 'tempfail';

export interface FilterResult {
  readonly disposition: FilterDisposition;
  /**
   * What to tell the client. Undefined for accept/freeze without a reply of
   * the filter's own: the session's usual "250 … Message accepted".
   */
  readonly reply?: Reply;
  /** For the mail log: the filter's answer, or what went wrong. Never shown to the client. */
  readonly reason: string;
}

export interface ContentFilterOptions {
  /** Absolute path of the program. */
  readonly path: string;
  readonly args?: readonly string[];
  /** The spool folder; the program runs here and gets paths relative to it. */
  readonly cwd: string;
  /** Time limit for one message, ms (waiting for a free slot counts too). Default 60 s. */
  readonly timeoutMs?: number;
  /** Filters running at once. Default 2 (ZMailer's contentfilter-maxpar). */
  readonly maxParallel?: number;
  /** The program's environment. Default: PATH only. */
  readonly env?: Readonly<Record<string, string>>;
  /** Bytes of output kept. Default 64 KiB. */
  readonly maxOutput?: number;
}

export const CONTENT_FILTER_DEFAULTS = Object.freeze({ timeoutMs: 60_000, maxParallel: 2, maxOutput: 64 * 1024 });

const TEMPFAIL_REPLY = reply(451, '4.3.0', 'Temporary failure in content analysis, please try again later');
const REJECT_REPLY = reply(550, '5.7.1', 'Message content rejected');
const MAX_TEXT = 400;

/** A counting semaphore: at most `size` holders; waiters are served in order. */
export class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('semaphore size must be a whole number ≥ 1');
    this.free = size;
  }

  get available(): number {
    return this.free;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves when a slot is taken; the returned function gives it back (once). */
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }

  /** Remove a waiter that gave up (timed out) before it got a slot. */
  cancel(waiter: () => void): void {
    const i = this.waiting.indexOf(waiter);
    if (i >= 0) this.waiting.splice(i, 1);
  }
}

export class ContentFilter {
  private readonly sem: Semaphore;
  private readonly timeoutMs: number;
  private readonly maxOutput: number;

  constructor(private readonly opts: ContentFilterOptions) {
    if (!opts.path.startsWith('/')) throw new Error(`content filter "${opts.path}" must be an absolute path`);
    this.timeoutMs = opts.timeoutMs ?? CONTENT_FILTER_DEFAULTS.timeoutMs;
    this.maxOutput = opts.maxOutput ?? CONTENT_FILTER_DEFAULTS.maxOutput;
    this.sem = new Semaphore(opts.maxParallel ?? CONTENT_FILTER_DEFAULTS.maxParallel);
  }

  /** Filters running now / messages waiting for one. */
  get running(): number {
    return (this.opts.maxParallel ?? CONTENT_FILTER_DEFAULTS.maxParallel) - this.sem.available;
  }

  get waiting(): number {
    return this.sem.queued;
  }

  /** Ask the filter about the spool file at `relativePath`, relative to `cwd` (default: the configured one). */
  async check(relativePath: string, cwd: string = this.opts.cwd): Promise<FilterResult> {
    if (relativePath === '' || relativePath.startsWith('/') || /(^|\/)\.\.(\/|$)/.test(relativePath) || /[\r\n\0]/.test(relativePath)) {
      return tempfail(`refusing to pass spool path ${JSON.stringify(relativePath)} to the content filter`);
    }
    const started = Date.now();
    let release: (() => void) | undefined;
    const got = this.sem.acquire().then((r) => (release = r));
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([got.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), this.timeoutMs)))]);
    clearTimeout(timer);
    if (!waited) {
      // Give the slot straight back when it finally comes.
      void got.then((r) => r());
      return tempfail(`no content filter free within ${this.timeoutMs} ms`);
    }
    const left = Math.max(1, this.timeoutMs - (Date.now() - started));
    return this.run(relativePath, cwd, left, release as () => void);
  }

  private run(relativePath: string, cwd: string, timeoutMs: number, release: () => void): Promise<FilterResult> {
    return new Promise<FilterResult>((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (r: FilterResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      let child: ChildProcess;
      try {
        // spawn with an argument array and no shell (what execFile does), in a
        // process group of its own so a timeout kills what the filter started too.
        child = spawn(this.opts.path, [...(this.opts.args ?? [])], {
          cwd,
          env: { ...(this.opts.env ?? { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }) },
          stdio: ['pipe', 'pipe', 'pipe'],
          shell: false,
          detached: true,
          windowsHide: true,
        });
      } catch (e) {
        release();
        resolve(tempfail(`content filter could not be started: ${(e as Error).message}`));
        return;
      }
      const out = new Collector(this.maxOutput);
      const err = new Collector(4096);
      child.stdout?.on('data', (b: Buffer) => out.add(b));
      child.stderr?.on('data', (b: Buffer) => err.add(b));
      child.once('error', (e: NodeJS.ErrnoException) => {
        release();
        finish(tempfail(`content filter could not be started: ${e.code ?? ''} ${e.message}`.trim()));
      });
      child.once('exit', release);
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        const text = out.text();
        const answer = parseAnswer(text);
        if (answer !== undefined) return finish(answer);
        if (code === 0) return finish({ disposition: 'freeze', reason: `content filter answered nothing usable (${describe(text)}): message frozen` });
        const how = signal ? `killed by ${signal}` : `exit status ${code}`;
        const stderr = err.text();
        finish(tempfail(`content filter failed (${how})${stderr.trim() ? `: ${describe(stderr)}` : ''}`));
      });
      timer = setTimeout(() => {
        kill(child);
        finish(tempfail(`content filter took longer than ${this.timeoutMs} ms`));
      }, timeoutMs);
      child.stdin?.on('error', () => undefined); // the filter may exit without reading
      child.stdin?.end(`${relativePath}\n`);
    });
  }
}

/** Keeps the first `max` bytes of a stream. */
class Collector {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  add(b: Buffer): void {
    if (this.size >= this.max) return;
    const part = b.subarray(0, this.max - this.size);
    this.parts.push(part);
    this.size += part.length;
  }

  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}

/** Parse the filter's output: the first line that starts with a signed integer. */
export function parseAnswer(output: string): FilterResult | undefined {
  for (const raw of output.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const m = /^\s*([+-]?[0-9]+)(?:\s+(.*))?$/.exec(line);
    if (m === null) continue;
    const n = Number(m[1]);
    const rest = (m[2] ?? '').trim();
    const given = parseReplyText(rest);
    const reason = `content filter: ${sanitizeReplyText(line.trim()).slice(0, MAX_TEXT)}`;
    if (n < 0) {
      if (given !== undefined && given.code < 300) return { disposition: 'discard', reply: given, reason };
      return { disposition: 'reject', reply: given ?? (rest !== '' ? reply(550, '5.7.1', clip(rest)) : REJECT_REPLY), reason };
    }
    if (n === 0) {
      if (given !== undefined && given.code < 300) return { disposition: 'accept', reply: given, reason };
      return { disposition: 'accept', reason: given !== undefined ? `${reason} (refusal code ignored for an accepted message)` : reason };
    }
    return { disposition: 'freeze', ...(given !== undefined ? { reply: given } : {}), reason };
  }
  return undefined;
}

/** "550 5.7.1 text", "250 text": a reply the filter chose; undefined when the text has no code. */
function parseReplyText(s: string): Reply | undefined {
  const m = /^([245][0-9][0-9])(?:\s+([245]\.[0-9]{1,3}\.[0-9]{1,3}))?(?:\s+(.*))?$/.exec(s);
  if (m === null) return undefined;
  const code = Number(m[1]);
  const cls = String(Math.floor(code / 100));
  const enhanced = m[2] !== undefined && m[2].startsWith(cls) ? m[2] : cls === '2' ? '2.6.0' : `${cls}.7.1`;
  const text = clip((m[3] ?? '').trim()) || (code < 300 ? 'Message accepted' : 'Message content rejected');
  return reply(code, enhanced, text);
}

function clip(s: string): string {
  const clean = sanitizeReplyText(s);
  return clean.length > MAX_TEXT ? `${clean.slice(0, MAX_TEXT - 3)}...` : clean;
}

function describe(s: string): string {
  const t = sanitizeReplyText(s.trim());
  return t === '' ? 'no output' : JSON.stringify(t.length > 200 ? `${t.slice(0, 197)}...` : t);
}

function tempfail(reason: string): FilterResult {
  return { disposition: 'tempfail', reply: TEMPFAIL_REPLY, reason };
}

/** Kill the filter and anything it started (it leads its own process group). */
function kill(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
