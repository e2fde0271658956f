/*
 * daemon/privsep/child.ts — the SMTP side of a root-started smtpd: the
 * child of the privileged parent (parent.ts), started as root with
 * POSTERN_PRIVSEP_CHILD=UID:GID and an IPC channel.
 *
 * It reads its configuration, tables and certificates as root, then gives
 * up root for good (drop(): setgroups([gid]), setgid, setuid — real, effective
 * and saved ids; glibc applies them to every thread) before it opens the
 * spool or reads a byte from the network. From then on it asks the parent,
 * over the channel (protocol.ts), for what needs root: bound sockets, local
 * deliveries, sendmail's offline files, the secret files at reload, a
 * ~/.forward in a home it cannot enter, filter processes run as their
 * configured user (filter-relay.ts). Its
 * mail log goes to the parent through a pipe of its own (log-pipe.ts); the
 * parent writes the log file and the system log (so that the file stays
 * root's and SIGUSR1's reopen, by root, keeps working).
 *
 * When the channel closes (the parent died), it stops as on SIGTERM.
 */
import type { Readable } from 'node:stream';
import type { RemoteDeliver, RemoteRequest } from '../../delivery/local/agent.js';
import { posix } from '../../delivery/local/effective-ids.js';
import { tempfail, type Outcome } from '../../delivery/local/outcome.js';
import type { LogRelay, Severity } from '../../log/maillog.js';
import { encodeLine, LogPipeWriter } from './log-pipe.js';
import { setBinder, type BindSpec } from '../../privsep/listen.js';
import { setSystemPasswordCheck } from '../../privsep/passwords.js';
import { setForwardLookup } from '../../expand/forward.js';
import { setFilterSpawner } from '../../filter/proc/spawn.js';
import { FilterRelay } from './filter-relay.js';
import { joinPieces, wholeBody } from '../../spool/whole-body.js';
import { Coalescer, unbatch } from './coalesce.js';
import { preloadSecrets, secretPaths, setSecrets } from '../../privsep/secrets.js';
import type { Config } from '../../config/model.js';
import { asBuffer, INLINE_MAX, MAX_REQS, type ChildMessage, type ParentMessage } from './protocol.js';
import type { Server } from 'node:net';

export const CHILD_ENV = 'POSTERN_PRIVSEP_CHILD';

/** What Daemon.start needs of the parent (daemon.ts). */
export interface PrivsepHooks {
  /** Give up root: after the first generation is built (certificates, tables read), before the spool is opened. */
  drop(config: Config): void;
  readonly remote: RemoteDeliver;
  readOffline(name: string): Promise<{ uid: number; data: Buffer } | { error: string; code?: number }>;
  /** Before a reload: the parent reads the configuration again; an error refuses the reload. */
  reload(): Promise<string | undefined>;
}

export interface ChildLink extends PrivsepHooks, LogRelay {
  ready(): void;
  fatal(message: string): Promise<void>;
  /** Hand the log lines gathered so far to the parent; resolves once they are on the channel (before an exit). */
  flush(): Promise<void>;
  /** Call `fn` once when the parent goes away. */
  onParentGone(fn: () => void): void;
}

/** Real, effective and saved ids, for good (glibc applies them to every thread); throws if root could come back. */
export function giveUpRoot(uid: number, gid: number): void {
  posix.setgroups([gid]);
  posix.setgid(gid);
  posix.setuid(uid);
  if (posix.getuid() !== uid || posix.geteuid() !== uid || posix.getgid() !== gid || posix.getegid() !== gid) throw new Error('could not give up root');
  let back = false;
  try {
    posix.setuid(0);
    back = true;
  } catch {
    /* as it should be */
  }
  if (back) throw new Error('could still become root again after giving it up');
}

type Pending = { resolve: (m: ParentMessage, handle?: unknown) => void };

/** The link to the parent, when this process is the SMTP side of a root-started smtpd. */
export function childLink(): ChildLink | undefined {
  const ids = process.env[CHILD_ENV];
  if (ids === undefined || !process.send) return undefined;
  const m = /^(\d+):(\d+)$/.exec(ids);
  if (!m) throw new Error(`${CHILD_ENV}: expected UID:GID`);
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  delete process.env[CHILD_ENV];
  // What is sent in one turn leaves as one channel message (coalesce.ts): the deliveries of several messages, say.
  const out = new Coalescer<ChildMessage>((msg, done) => {
    if (!process.connected) return done();
    process.send?.(msg, undefined, {}, () => done());
  });
  const send = (msg: ChildMessage): Promise<void> => out.send(msg);
  let nextId = 1;
  const pending = new Map<number, Pending>();
  const ask = <T extends ParentMessage>(msg: (id: number) => ChildMessage): Promise<{ m: T; handle?: unknown }> =>
    new Promise((resolve, reject) => {
      if (!process.connected) return reject(new Error('the privileged parent is gone'));
      const id = nextId++;
      pending.set(id, { resolve: (r, handle) => resolve({ m: r as T, handle }) });
      void send(msg(id));
    });
  let gone: (() => void) | undefined;
  let isGone = false;
  const filters = new FilterRelay((m) => void send(m), () => nextId++);
  setFilterSpawner((decl) => filters.spawn(decl));
  process.on('message', (raw: unknown, handle?: unknown) => {
    for (const x of unbatch(raw)) {
      const r = x as ParentMessage;
      if (typeof r !== 'object' || r === null || filters.receive(r)) continue;
      const p = pending.get(r.id);
      if (!p) continue;
      pending.delete(r.id);
      p.resolve(r, handle);
    }
  });
  process.on('disconnect', () => {
    isGone = true;
    filters.parentGone();
    for (const [id, p] of pending) {
      pending.delete(id);
      p.resolve({ t: 'outcome', id, outcomes: [tempfail('4.3.0', 'delivery interrupted (the privileged parent is gone)')] });
    }
    gone?.();
  });

  // The mail log: lines gathered per turn of the event loop (or until a reply is written: flushLines), then one
  // write to the parent's log pipe (log-pipe.ts). Without the pipe (it broke): standard error, the parent's too.
  const pipe = LogPipeWriter.open();
  let text = '';
  let scheduled = false;
  const toStderr = (batch: string): void => void process.stderr.write(batch.replace(/^\d/gm, ''));
  const flushLog = (): Promise<void> => {
    scheduled = false;
    if (text === '') return Promise.resolve();
    const batch = text;
    text = '';
    if (!pipe?.usable) return Promise.resolve(toStderr(batch));
    return pipe.write(batch).catch(() => toStderr(batch));
  };
  const flushNow = (): void => void flushLog();
  process.once('exit', () => {
    if (text !== '') toStderr(text);
  });

  setBinder(async (spec: BindSpec): Promise<Server> => {
    const { m, handle } = await ask<Extract<ParentMessage, { t: 'bound' }>>((id) => ({ t: 'bind', id, spec }));
    if (m.error !== undefined || !handle) throw Object.assign(new Error(m.error ?? 'no socket'), { code: /^E[A-Z]+/.exec(m.error ?? '')?.[0] });
    return handle as Server;
  });

  setSystemPasswordCheck(async (user, password) => {
    try {
      const { m } = await ask<Extract<ParentMessage, { t: 'checked' }>>((id) => ({ t: 'password', id, user, password }));
      return m.outcome;
    } catch (e) {
      return { kind: 'error', reason: (e as Error).message };
    }
  });

  setForwardLookup(async (user) => {
    const { m } = await ask<ParentMessage>((id) => ({ t: 'forward', id, user }));
    if (m.t !== 'forward-read') throw new Error('the privileged parent is gone');
    return m.read;
  });

  /** The parent's answer to a 'deliver' of n recipients: n outcomes (one said for all when it cannot say more). */
  const outcomesOf = (r: ParentMessage, n: number): Outcome[] => {
    const os = r.t === 'outcome' ? r.outcomes : [];
    if (os.length === n) return [...os];
    const one = os.length === 1 ? (os[0] as Outcome) : tempfail('4.3.0', 'privileged parent: unexpected answer');
    return Array.from({ length: n }, () => one);
  };
  const parentGone = (n: number): Outcome[] => Array.from({ length: n }, () => tempfail('4.3.0', 'delivery interrupted (the privileged parent is gone)'));

  /** One 'deliver' request: its id, the answer to come, and a cancel on the task's signal until then. */
  const request = (n: number, signal: AbortSignal): { id: number; answer: Promise<Outcome[]>; isDone: () => boolean } => {
    const id = nextId++;
    let done = false;
    const cancel = (): void => void send({ t: 'cancel', id });
    signal.addEventListener('abort', cancel, { once: true });
    const answer = new Promise<Outcome[]>((resolve) => {
      pending.set(id, {
        resolve: (r) => {
          done = true;
          signal.removeEventListener('abort', cancel);
          resolve(outcomesOf(r, n));
        },
      });
    });
    return { id, answer, isDone: () => done };
  };

  /** The first INLINE_MAX bytes of a message (all of it when `whole`); `broken`: it could not be read. */
  const readHead = async (openBody: () => Readable): Promise<{ body?: Readable; chunks?: AsyncIterator<Buffer>; head: Buffer[]; size: number; whole: boolean; broken: boolean }> => {
    const head: Buffer[] = [];
    let size = 0;
    let body: Readable;
    try {
      body = openBody();
    } catch {
      return { head, size, whole: false, broken: true };
    }
    const held = wholeBody(body);
    if (held !== undefined) {
      // Whole in memory already (read once by the agent, or the spool's cache): no stream to go through.
      const n = held.reduce((sum, b) => sum + b.length, 0);
      if (n <= INLINE_MAX) return { body, head: [...held], size: n, whole: true, broken: false };
    }
    const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await chunks.next();
        if (r.done) return { body, head, size, whole: true, broken: false };
        head.push(r.value);
        size += r.value.length;
        if (size > INLINE_MAX) return { body, chunks, head, size, whole: false, broken: false };
      }
    } catch {
      return { body, head, size, whole: false, broken: true };
    }
  };

  /** One recipient whose message is streamed after its request: 'body' messages, then 'end' (or 'abandon'). */
  const streamed = async (req: RemoteRequest, h: Awaited<ReturnType<typeof readHead>>, signal: AbortSignal): Promise<Outcome> => {
    const { id, answer, isDone } = request(1, signal);
    await send({ t: 'deliver', id, reqs: [req] });
    try {
      if (h.broken || !h.chunks) throw new Error('unreadable');
      for (const chunk of h.head) if (chunk.length > 0 && !isDone()) await send({ t: 'body', id, chunk });
      for (let r = await h.chunks.next(); !r.done; r = await h.chunks.next()) {
        if (isDone() || !process.connected) break;
        if (r.value.length > 0) await send({ t: 'body', id, chunk: r.value });
      }
      if (!isDone()) await send({ t: 'end', id });
    } catch {
      if (!isDone()) await send({ t: 'abandon', id });
    }
    h.body?.destroy();
    return (await answer)[0] as Outcome;
  };

  // The first INLINE_MAX bytes are read before anything is sent: a small message (the usual case) goes whole
  // inside its 'deliver' message, with every recipient of the task (one message over the channel for them all,
  // and one answer); a larger one is streamed, once per recipient.
  const remote: RemoteDeliver = async (reqs, openBody, signal): Promise<Outcome[]> => {
    if (!process.connected) return parentGone(reqs.length);
    const h = await readHead(openBody);
    if (h.whole) {
      h.body?.destroy();
      const body = joinPieces(h.head, h.size);
      const parts: Promise<Outcome[]>[] = [];
      for (let i = 0; i < reqs.length; i += MAX_REQS) {
        const part = reqs.slice(i, i + MAX_REQS);
        const { id, answer } = request(part.length, signal);
        await send({ t: 'deliver', id, reqs: part, body });
        parts.push(answer);
      }
      return (await Promise.all(parts)).flat();
    }
    return Promise.all(reqs.map(async (req, i) => streamed(req, i === 0 ? h : await readHead(openBody), signal)));
  };

  return {
    flush() {
      // The channel may be gone or stuck: never wait more than a second to exit.
      return Promise.race([flushLog(), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
    },
    relay(line, severity) {
      if (!scheduled) {
        scheduled = true;
        setImmediate(flushNow);
      }
      text += encodeLine(severity, line);
    },
    flushLines: flushNow,
    drop(config) {
      // What the SMTP side reads later but only root may read (keys, tokens): read now.
      setSecrets(preloadSecrets(secretPaths(config)));
      giveUpRoot(uid, gid);
    },
    remote,
    async readOffline(name) {
      const { m } = await ask<Extract<ParentMessage, { t: 'offline-file' }>>((id) => ({ t: 'offline', id, name }));
      if (m.error !== undefined || m.uid === undefined || !m.data) return { error: m.error ?? 'no answer', ...(m.code !== undefined ? { code: m.code } : {}) };
      return { uid: m.uid, data: asBuffer(m.data) };
    },
    async reload() {
      let r;
      try {
        r = await ask<Extract<ParentMessage, { t: 'reloaded' }>>((id) => ({ t: 'reload', id }));
      } catch (e) {
        return (e as Error).message;
      }
      if (r.m.error !== undefined) return `the privileged parent: ${r.m.error}`;
      if (r.m.secrets) setSecrets(new Map([...r.m.secrets].map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength)])));
      return undefined;
    },
    ready() {
      void send({ t: 'ready' });
    },
    async fatal(message) {
      await this.flush();
      await send({ t: 'fatal', message });
    },
    onParentGone(fn) {
      gone = fn;
      if (isGone) fn();
    },
  };
}
