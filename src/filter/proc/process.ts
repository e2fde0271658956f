/*
 * filter/proc/process.ts — one filter process (`filter NAME proc-exec
 * "COMMAND"`), shared by every session, as OpenSMTPD runs it: started at
 * first use with /bin/sh -c (the command is configuration, never envelope
 * data), as an unprivileged user (`user`, default nobody, when Postern runs
 * as root; under privilege separation started by the privileged parent,
 * spawn.ts); the configuration handshake, then report lines and filter
 * requests in, results and data lines out, matched by session and token.
 *
 * A process that exits, breaks the protocol or does not answer in time
 * (it is then killed) fails every request waiting on it; those sessions get
 * a temporary failure, and the next session starts the process again (at
 * most once a second). Its standard error goes to the mail log.
 */
import { createInterface } from 'node:readline';
import type { ProcDecl } from '../../config/filter-options.js';
import { startFilter, type FilterChild } from './spawn.js';
import type { FilterLog } from '../filter.js';
import { configLines, filterLine, parseOutput, reportLine, type ProcPhase } from './protocol.js';

export type ProcAnswer = { readonly kind: 'result'; readonly decision: string; readonly param?: string } | { readonly kind: 'lines'; readonly lines: readonly string[] } | { readonly kind: 'failed'; readonly why: string };

interface Pending {
  readonly resolve: (a: ProcAnswer) => void;
  /** Armed when the request is complete (a data-line stream: at its "."). */
  timer?: NodeJS.Timeout;
  readonly lines?: string[];
}

/** A data-line request whose lines are written as the message comes; its answer is the filter's lines, after its ".". */
export interface DataLineStream {
  write(lines: readonly string[]): void;
  /** Write the final "." and wait for the answer. */
  end(): Promise<ProcAnswer>;
}

const HANDSHAKE_MS = 30_000;

export class FilterProcess {
  #child?: FilterChild;
  #ready?: Promise<string | undefined>;
  #registered = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  #startedAt = 0;
  #token = 0;

  constructor(
    readonly decl: ProcDecl,
    private readonly log: FilterLog,
    /** How long a request may wait for its answer. */
    readonly timeoutMs: number,
  ) {}

  /** Is `stream|event` registered (e.g. "filter|mail-from", "report|link-connect")? */
  wants(stream: 'report' | 'filter', event: string): boolean {
    return this.#registered.has(`${stream}|${event}`);
  }

  /** Started and past its handshake; undefined, or why not. */
  ensure(): Promise<string | undefined> {
    if (this.#child && this.#ready) return this.#ready;
    if (Date.now() - this.#startedAt < 1000 && this.#startedAt > 0) return Promise.resolve('filter process restarting too often');
    this.#startedAt = Date.now();
    this.#ready = this.#start();
    return this.#ready;
  }

  #start(): Promise<string | undefined> {
    let child: FilterChild;
    try {
      child = startFilter(this.decl);
    } catch (e) {
      return Promise.resolve((e as Error).message);
    }
    this.#child = child;
    this.#registered = new Set();
    const name = this.decl.name;
    createInterface({ input: child.stderr }).on('line', (l) => this.log.event('filter', 'stderr', { filter: name, line: l.slice(0, 500) }));
    child.stdin.on('error', () => undefined);
    return new Promise((resolve) => {
      let settled = false;
      const done = (why: string | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(why);
      };
      const timer = setTimeout(() => {
        done('no register|ready from the filter process');
        this.#kill('handshake timeout');
      }, HANDSHAKE_MS);
      createInterface({ input: child.stdout }).on('line', (line) => {
        const o = parseOutput(line);
        if (!settled) {
          if (o.kind === 'register') this.#registered.add(`${o.stream}|${o.event}`);
          else if (o.kind === 'register-ready') done(undefined);
          else {
            done(`unexpected line during the handshake: ${line.slice(0, 100)}`);
            this.#kill('protocol error');
          }
          return;
        }
        this.#output(o, line);
      });
      child.on('error', (e) => {
        done(`cannot start: ${e.message}`);
        this.#gone(`cannot start: ${e.message}`);
      });
      child.on('exit', (code, signal) => {
        done(`exited during the handshake (${signal ?? code})`);
        this.#gone(`exited (${signal ?? code})`);
      });
      child.stdin.write(configLines(300));
    });
  }

  #output(o: ReturnType<typeof parseOutput>, line: string): void {
    if (o.kind === 'result' || o.kind === 'dataline') {
      const key = `${o.session}|${o.token}`;
      const p = this.#pending.get(key);
      if (!p) return; // a late answer to a request that timed out
      if (o.kind === 'dataline') {
        if (!p.lines) return this.#kill(`a data line for a ${o.session} request that is not data-line`);
        if (o.line === '.') {
          this.#settle(key, { kind: 'lines', lines: p.lines });
        } else p.lines.push(o.line);
        return;
      }
      if (p.lines) return this.#kill('a filter-result for a data-line request');
      this.#settle(key, { kind: 'result', decision: o.decision, ...(o.param !== undefined ? { param: o.param } : {}) });
      return;
    }
    this.#kill(`protocol error: ${line.slice(0, 100)}`);
  }

  report(event: string, session: string, params: readonly string[] = []): void {
    if (this.#child && this.wants('report', event)) this.#child.stdin.write(reportLine(Date.now(), event, session, params));
  }

  /** A filter request; resolves with the result. */
  request(phase: ProcPhase, session: string, params: readonly string[]): Promise<ProcAnswer> {
    const child = this.#child;
    if (!child) return Promise.resolve({ kind: 'failed', why: 'filter process not running' });
    const token = this.#nextToken();
    const key = `${session}|${token}`;
    return new Promise((resolve) => {
      this.#pending.set(key, { resolve, timer: this.#timer(key, phase) });
      child.stdin.write(filterLine(Date.now(), phase, session, token, params));
    });
  }

  /**
   * A data-line request written as the message comes (OpenSMTPD feeds the
   * filter during DATA): no time limit while the client sends, the usual
   * one from the final ".".
   */
  dataLines(session: string): DataLineStream {
    const child = this.#child;
    if (!child) {
      const failed = Promise.resolve<ProcAnswer>({ kind: 'failed', why: 'filter process not running' });
      return { write: () => undefined, end: () => failed };
    }
    const token = this.#nextToken();
    const key = `${session}|${token}`;
    const answer = new Promise<ProcAnswer>((resolve) => this.#pending.set(key, { resolve, lines: [] }));
    const write = (lines: readonly string[]): void => {
      if (this.#child !== child || !this.#pending.has(key) || lines.length === 0) return;
      const now = Date.now();
      child.stdin.write(lines.map((l) => filterLine(now, 'data-line', session, token, [l])).join(''));
    };
    let ended = false;
    return {
      write,
      end: () => {
        if (!ended) {
          ended = true;
          write(['.']);
          const p = this.#pending.get(key);
          if (p) p.timer = this.#timer(key, 'data-line');
        }
        return answer;
      },
    };
  }

  #nextToken(): string {
    return (++this.#token).toString(16).padStart(16, '0');
  }

  #timer(key: string, phase: string): NodeJS.Timeout {
    return setTimeout(() => {
      this.#settle(key, { kind: 'failed', why: `no answer in ${this.timeoutMs} ms` });
      this.#kill(`no answer to ${phase} in ${this.timeoutMs} ms`);
    }, this.timeoutMs);
  }

  #settle(key: string, a: ProcAnswer): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    clearTimeout(p.timer);
    p.resolve(a);
  }

  #kill(why: string): void {
    this.log.event('filter', 'proc-failed', { filter: this.decl.name, reason: why });
    this.#child?.kill('SIGKILL');
    this.#gone(why);
  }

  #gone(why: string): void {
    if (this.#child === undefined) return;
    this.#child = undefined;
    this.#ready = undefined;
    for (const key of [...this.#pending.keys()]) this.#settle(key, { kind: 'failed', why: `filter process ${why}` });
  }

  stop(): void {
    const c = this.#child;
    this.#gone('stopped');
    c?.kill('SIGTERM');
  }
}
