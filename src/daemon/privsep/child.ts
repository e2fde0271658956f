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
 * deliveries, sendmail's offline files, the secret files at reload. Its
 * mail log goes to the parent, which writes the log file and the system
 * log (so that SIGUSR1's reopen, by root, keeps working).
 *
 * When the channel closes (the parent died), it stops as on SIGTERM.
 */
import type { Readable } from 'node:stream';
import type { RemoteDeliver, RemoteRequest } from '../../delivery/local/agent.js';
import { posix } from '../../delivery/local/effective-ids.js';
import { tempfail, type Outcome } from '../../delivery/local/outcome.js';
import type { Severity } from '../../log/maillog.js';
import { setBinder, type BindSpec } from '../../privsep/listen.js';
import { setSystemPasswordCheck } from '../../privsep/passwords.js';
import { preloadSecrets, secretPaths, setSecrets } from '../../privsep/secrets.js';
import type { Config } from '../../config/model.js';
import type { ChildMessage, ParentMessage } from './protocol.js';
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

export interface ChildLink extends PrivsepHooks {
  /** The mail log's relay option. */
  relay(line: string, severity: Severity): void;
  ready(): void;
  fatal(message: string): Promise<void>;
  /** Hand the log lines gathered so far to the parent; resolves once they are on the channel (before an exit). */
  flush(): Promise<void>;
  /** Call `fn` once when the parent goes away. */
  onParentGone(fn: () => void): void;
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
  const send = (msg: ChildMessage): Promise<void> =>
    new Promise((resolve) => {
      if (!process.connected) return resolve();
      process.send?.(msg, undefined, {}, () => resolve());
    });
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
  process.on('message', (raw: unknown, handle?: unknown) => {
    const r = raw as ParentMessage;
    const p = typeof r === 'object' && r !== null ? pending.get(r.id) : undefined;
    if (!p) return;
    pending.delete(r.id);
    p.resolve(r, handle);
  });
  process.on('disconnect', () => {
    isGone = true;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.resolve({ t: 'outcome', id, outcome: tempfail('4.3.0', 'delivery interrupted (the privileged parent is gone)') });
    }
    gone?.();
  });

  // The mail log: lines gathered per turn of the event loop, one message each turn.
  let lines: [Severity, string][] = [];
  const flushLog = (): Promise<void> => {
    if (lines.length === 0) return Promise.resolve();
    const batch = lines;
    lines = [];
    if (process.connected) return send({ t: 'log', lines: batch });
    process.stderr.write(batch.map((l) => l[1]).join('\n') + '\n');
    return Promise.resolve();
  };
  process.once('exit', () => {
    if (lines.length > 0) process.stderr.write(lines.map((l) => l[1]).join('\n') + '\n');
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

  const remote: RemoteDeliver = async (req: RemoteRequest, body: Readable, signal: AbortSignal): Promise<Outcome> => {
    if (!process.connected) {
      body.destroy();
      return tempfail('4.3.0', 'delivery interrupted (the privileged parent is gone)');
    }
    const id = nextId++;
    let done = false;
    const answer = new Promise<Outcome>((resolve) => {
      pending.set(id, {
        resolve: (r) => {
          done = true;
          resolve(r.t === 'outcome' ? r.outcome : tempfail('4.3.0', 'privileged parent: unexpected answer'));
        },
      });
    });
    const cancel = (): void => void send({ t: 'cancel', id });
    signal.addEventListener('abort', cancel, { once: true });
    await send({ t: 'deliver', id, req });
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (done || !process.connected) break;
        if (chunk.length > 0) await send({ t: 'body', id, chunk });
      }
      if (!done) await send({ t: 'end', id });
    } catch {
      if (!done) await send({ t: 'abandon', id });
    } finally {
      body.destroy();
    }
    const o = await answer;
    signal.removeEventListener('abort', cancel);
    return o;
  };

  return {
    flush() {
      // The channel may be gone or stuck: never wait more than a second to exit.
      return Promise.race([flushLog(), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
    },
    relay(line, severity) {
      if (lines.length === 0) setImmediate(() => void flushLog());
      lines.push([severity, line]);
    },
    drop(config) {
      // What the SMTP side reads later but only root may read (keys, tokens): read now.
      setSecrets(preloadSecrets(secretPaths(config)));
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
    },
    remote,
    async readOffline(name) {
      const { m } = await ask<Extract<ParentMessage, { t: 'offline-file' }>>((id) => ({ t: 'offline', id, name }));
      if (m.error !== undefined || m.uid === undefined || !m.data) return { error: m.error ?? 'no answer', ...(m.code !== undefined ? { code: m.code } : {}) };
      return { uid: m.uid, data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength) };
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
