/*
 * test/helpers/fake-session-env.ts — a Session with a fake environment:
 * the real front door (queue/enqueue.ts) over plain objects for the spool
 * (messages kept in memory), the policy
 * (everything passes unless a test says otherwise), the mail log (events
 * kept in a list), the scheduler seam, the authenticator and its failure
 * counter. No socket, no daemon: tests call the session's methods and
 * check the values they return.
 */
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import type { Config, Listener } from '../../src/config/model.js';
import type { Envelope } from '../../src/mail/envelope.js';
import { reply } from '../../src/mail/reply.js';
import type { MessageWriter } from '../../src/spool/spool.js';
import type { RcptDecision } from '../../src/policy/policy.js';
import { PASS } from '../../src/policy/verdict.js';
import { FrontDoor } from '../../src/queue/enqueue.js';
import { Session, type CommandResult, type DataEndInfo, type PeerInfo, type SessionEnv } from '../../src/smtp/session.js';

export interface LoggedEvent {
  readonly subsystem: string;
  readonly event: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface FakeEnvOptions {
  /** More smtpd.conf lines (smtp options). */
  readonly config?: string;
  /** Overrides of the listener (tls, auth, senders …). */
  readonly listener?: Partial<Listener>;
  /** user → password, for AUTH (and CRAM-MD5's secret). */
  readonly users?: Readonly<Record<string, string>>;
  /** Offer CRAM-MD5. */
  readonly cram?: boolean;
  /** Replace policy phases. */
  readonly policy?: Partial<SessionEnv['policy']>;
  /** Failed AUTH attempts allowed before 454 (default: many). */
  readonly authFailLimit?: number;
}

export interface FakeSessionEnv {
  readonly env: SessionEnv;
  readonly peer: PeerInfo;
  readonly config: Config;
  readonly events: LoggedEvent[];
  /** Committed messages: the envelope and every byte written (our Received: header first). */
  readonly committed: { readonly envelope: Envelope; readonly body: string }[];
  /** msgids of writers aborted. */
  readonly aborted: string[];
  /** Envelopes handed to the scheduler seam. */
  readonly enqueued: Envelope[];
  readonly etrn: string[];
  readonly stats: Map<string, number>;
}

const BASE = `hostname "mx.test.example"
queue path "/nonexistent/spool"
listen on 127.0.0.1 port 2525
`;

export function fakeSessionEnv(opts: FakeEnvOptions = {}): FakeSessionEnv {
  const res = loadConfigText(BASE + (opts.config ?? ''), 'fake.conf', { cwd: '/' });
  if (!res.config) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const config = res.config;
  const base = config.listeners[0];
  if (!base) throw new Error('no listener');
  const listener: Listener = { ...base, ...opts.listener };
  const events: LoggedEvent[] = [];
  const committed: FakeSessionEnv['committed'] = [];
  const aborted: string[] = [];
  const enqueued: Envelope[] = [];
  const etrn: string[] = [];
  const stats = new Map<string, number>();
  const users = opts.users ?? {};
  let failures = 0;
  let nextId = 0;
  const rcptAccept = (address: string): RcptDecision => ({
    kind: 'accept',
    action: 'local',
    rule: 'fake',
    targets: [{ address, action: 'local', rule: 'fake', dest: { kind: 'user', user: address.split('@')[0] ?? address } }],
  });
  const env: SessionEnv = {
    config,
    log: {
      event: (subsystem, event, fields = {}) => void events.push({ subsystem, event, fields }),
      error: (text) => void events.push({ subsystem: 'error', event: text, fields: {} }),
      warn: (text) => void events.push({ subsystem: 'warn', event: text, fields: {} }),
      tracing: () => false,
      trace: () => undefined,
    },
    // The real front door, over a spool kept in memory.
    get queue() {
      return door;
    },
    policy: {
      connect: async () => PASS,
      helo: async () => PASS,
      mail: async () => PASS,
      rcpt: async (_s, _tx, rcpt) => rcptAccept(`${rcpt.local}@${rcpt.domain}`),
      data: async () => PASS,
      commit: async () => ({ kind: 'accept' }),
      ...opts.policy,
    },
    stats: { inc: (name, n = 1) => void stats.set(name, (stats.get(name) ?? 0) + n) },
    scheduler: {
      etrn: (domain) => {
        etrn.push(domain);
        return reply(250, '2.0.0', `Queuing for node ${domain} started`);
      },
      enqueued: (e) => void enqueued.push(e),
    },
    freeSpace: async () => 1e12,
    now: () => Date.UTC(2026, 0, 2, 3, 4, 5),
    tables: { lookup: () => ({ kind: 'notfound' }) },
    auth: {
      authenticator: {
        check: async (_l, user, password) => (users[user] === password ? { kind: 'ok' } : { kind: 'refused' }),
        cramAvailable: () => opts.cram === true,
        cramSecret: (_l, user) => users[user],
      },
      failrate: {
        allowed: () => failures < (opts.authFailLimit ?? 1000),
        fail: () => ++failures,
      },
    },
  };
  const spool = {
    createMessage: async () => fakeWriter((++nextId).toString(16).padStart(8, '0'), committed, aborted),
    appendOutcome: async () => undefined,
    remove: async () => undefined,
  };
  const door = new FrontDoor({ config, policy: env.policy, spool, log: env.log, stats: env.stats, scheduler: env.scheduler, now: env.now });
  const peer: PeerInfo = { address: '192.0.2.7', port: 40000, fromSocket: false, listener: '127.0.0.1:2525', hostname: 'mx.test.example', noDsn: false, config: listener };
  return { env, peer, config, events, committed, aborted, enqueued, etrn, stats };
}

function fakeWriter(msgid: string, committed: FakeSessionEnv['committed'], aborted: string[]): MessageWriter {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    msgid,
    get size() {
      return size;
    },
    write(chunk) {
      chunks.push(Buffer.from(chunk));
      size += chunk.length;
    },
    drain: async () => undefined,
    bodyFile: async () => {
      throw new Error('the fake spool has no files');
    },
    async commit(e) {
      const recipients = e.recipients.map(({ evpid, ...r }, i) => ({ evpid: evpid ?? `${msgid}${i.toString(16).padStart(8, '0')}`, ...r }));
      const envelope: Envelope = { ...e, recipients, version: 1, msgid, size };
      committed.push({ envelope, body: Buffer.concat(chunks).toString('latin1') });
      return envelope;
    },
    async abort() {
      aborted.push(msgid);
    },
  };
}

/** A greeted session on a fake environment. */
export async function fakeSession(opts: FakeEnvOptions = {}): Promise<{ session: Session; fake: FakeSessionEnv }> {
  const fake = fakeSessionEnv(opts);
  const session = new Session('s1', fake.env, fake.peer);
  await session.greet();
  return { session, fake };
}

/** The reply of one command, as "code enhanced text" (the last line), for short assertions. */
export function text(r: CommandResult | { readonly code: number; readonly enhanced?: string; readonly lines: readonly string[] } | undefined): string {
  const rep = r === undefined ? undefined : 'code' in r ? r : r.reply;
  if (!rep) return '(none)';
  return [String(rep.code), rep.enhanced, rep.lines[rep.lines.length - 1]].filter((x) => x !== undefined && x !== '').join(' ');
}

/** Run several commands; the replies as text(). */
export async function script(session: Session, lines: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const l of lines) out.push(text(await session.command(l)));
  return out;
}

/** EHLO, MAIL, RCPT — a transaction ready for its content. */
export async function openTransaction(session: Session, rcpts: readonly string[] = ['root@test.example']): Promise<void> {
  await session.command('EHLO client.example');
  await session.command('MAIL FROM:<a@example.org>');
  for (const r of rcpts) await session.command(`RCPT TO:<${r}>`);
}

export const CLEAN_END: DataEndInfo = { size: 0, overflow: false, bareCr: false, bareLf: false, nul: false };

/** DATA, the content, the final dot: the 354 result and the final reply. */
export async function sendData(session: Session, body: string): Promise<{ start: CommandResult; end: string }> {
  const start = await session.command('DATA');
  if (start.then?.mode !== 'data') return { start, end: '(no data)' };
  await session.content(Buffer.from(body, 'latin1'));
  return { start, end: text(await session.dataEnd({ ...CLEAN_END, size: body.length })) };
}

/** BDAT with its chunk: the command's result and the reply after the chunk (if any). */
export async function sendBdat(session: Session, chunk: string, last: boolean, declared = chunk.length): Promise<{ start: CommandResult; end: string }> {
  const start = await session.command(`BDAT ${declared}${last ? ' LAST' : ''}`);
  if (start.then?.mode !== 'bytes') return { start, end: '(no chunk)' };
  await session.bdatChunk(Buffer.from(chunk, 'latin1'));
  return { start, end: text(await session.bdatEnd(declared)) };
}
