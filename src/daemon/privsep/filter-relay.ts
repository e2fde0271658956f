/*
 * daemon/privsep/filter-relay.ts — filter processes (`filter NAME
 * proc-exec`) under privilege separation, both ends:
 *
 *   FilterHost (the privileged parent): starts the filter the SMTP side
 *   names, looked up by NAME in the parent's own configuration (a proc-exec
 *   filter, else refused: never a command from the child), with
 *   filter/proc/spawn.ts as its `user`/`group` (default nobody) — which
 *   only root can do. Its output and error go back as filter-out messages,
 *   its end as filter-exit; filter-in is written to its input. All filters
 *   are killed when the SMTP side goes.
 *
 *   relayedFilter (the SMTP side): the same exchange seen as a child
 *   process (FilterChild) for filter/proc/process.ts.
 */
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { spawnFilter, type FilterChild } from '../../filter/proc/spawn.js';
import type { Config } from '../../config/model.js';
import type { ProcDecl } from '../../config/filter-options.js';
import type { MailLog } from '../../log/maillog.js';
import { asBuffer, type ChildMessage, type ParentMessage } from './protocol.js';

type FilterMessage = Extract<ChildMessage, { t: 'filter-spawn' | 'filter-in' | 'filter-kill' }>;

export class FilterHost {
  private readonly running = new Map<number, FilterChild>();

  constructor(
    private readonly send: (m: ParentMessage) => void,
    private readonly config: () => Config,
    private readonly log: MailLog,
  ) {}

  handle(m: FilterMessage): void {
    if (m.t === 'filter-in') return void this.running.get(m.id)?.stdin.write(asBuffer(m.chunk));
    if (m.t === 'filter-kill') return void this.running.get(m.id)?.kill(m.signal);
    const decl = this.config().filters?.get(m.name);
    if (decl?.kind !== 'proc' || this.running.has(m.id)) {
      this.log.warn(`privsep: refused to start filter "${m.name}": not a proc-exec filter of the configuration`);
      return this.send({ t: 'filter-exit', id: m.id, code: null, signal: null, error: `no proc-exec filter "${m.name}" in the configuration` });
    }
    let child: FilterChild;
    try {
      child = spawnFilter(decl);
    } catch (e) {
      return this.send({ t: 'filter-exit', id: m.id, code: null, signal: null, error: (e as Error).message });
    }
    this.running.set(m.id, child);
    child.stdin.on('error', () => undefined);
    child.stdout.on('data', (b: Buffer) => this.send({ t: 'filter-out', id: m.id, fd: 1, chunk: b }));
    child.stderr.on('data', (b: Buffer) => this.send({ t: 'filter-out', id: m.id, fd: 2, chunk: b }));
    let ended = false;
    const end = (code: number | null, signal: string | null, error?: string): void => {
      if (ended) return;
      ended = true;
      this.running.delete(m.id);
      this.send({ t: 'filter-exit', id: m.id, code, signal, ...(error !== undefined ? { error } : {}) });
    };
    child.on('error', (e) => end(null, null, e.message));
    child.on('exit', (code, signal) => end(code, signal));
  }

  /** The SMTP side is gone: its filters go too. */
  stopAll(): void {
    for (const c of this.running.values()) c.kill('SIGTERM');
    this.running.clear();
  }
}

/** The SMTP side's view of a filter the parent runs. */
class RelayedFilter extends EventEmitter implements FilterChild {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin: Writable;
  private done = false;

  constructor(
    private readonly id: number,
    private readonly send: (m: ChildMessage) => void,
  ) {
    super();
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (!this.done) send({ t: 'filter-in', id, chunk });
        cb();
      },
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.done) return false;
    this.send({ t: 'filter-kill', id: this.id, signal: signal === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM' });
    return true;
  }

  /** A message from the parent about this filter. */
  receive(m: Extract<ParentMessage, { t: 'filter-out' | 'filter-exit' }>): void {
    if (m.t === 'filter-out') {
      (m.fd === 1 ? this.stdout : this.stderr).write(asBuffer(m.chunk));
      return;
    }
    this.finish(m.error, m.code, m.signal as NodeJS.Signals | null);
  }

  finish(error: string | undefined, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.done) return;
    this.done = true;
    this.stdout.end();
    this.stderr.end();
    if (error !== undefined) this.emit('error', new Error(error));
    this.emit('exit', code, signal);
  }
}

/** The SMTP side's end: a spawner for filter/proc/spawn.ts, and the router of the parent's filter messages. */
export class FilterRelay {
  private readonly filters = new Map<number, RelayedFilter>();

  constructor(
    private readonly send: (m: ChildMessage) => void,
    private readonly nextId: () => number,
  ) {}

  spawn(decl: ProcDecl): FilterChild {
    const id = this.nextId();
    const f = new RelayedFilter(id, this.send);
    this.filters.set(id, f);
    f.on('exit', () => this.filters.delete(id));
    this.send({ t: 'filter-spawn', id, name: decl.name });
    return f;
  }

  /** True when the message was a filter's. */
  receive(m: ParentMessage): boolean {
    if (m.t !== 'filter-out' && m.t !== 'filter-exit') return false;
    this.filters.get(m.id)?.receive(m);
    return true;
  }

  /** The parent is gone: every filter has ended. */
  parentGone(): void {
    for (const f of [...this.filters.values()]) f.finish('the privileged parent is gone', null, null);
  }
}
