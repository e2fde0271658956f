/*
 * delivery/local/deliver-worker.ts — a long-lived delivery worker: the
 * process that writes mailboxes (mbox, maildir, aliases' /file) as their
 * users when the daemon runs as root (Postfix's local(8) model).
 *
 * Started by the daemon's pool (worker-pool.ts) as `node deliver-worker.js`
 * as root, with an empty environment, in "/". It reads jobs from standard
 * input (worker-protocol.ts: a request line, then the message framed) and
 * answers each with one JSON line on standard output, the Outcome. It never
 * reads the spool (0700 root) and never sees the network: its only input is
 * the daemon's pipe.
 *
 * Per job it switches its EFFECTIVE ids to the recipient's (groups, egid,
 * euid — effective-ids.ts), runs the job (job.ts), so that every file is
 * opened and written with the user's permissions, and switches back to
 * root — before the next job for other credentials: consecutive jobs of
 * one user keep its effective ids for up to a second (perform()). Jobs are
 * strictly serialized: glibc applies set*id to every thread,
 * libuv's thread pool included, so a second job running at the same time
 * would run with the first one's ids. The worker refuses a request that
 * arrives while it is busy, and exits when it cannot switch back.
 *
 * mda and |command jobs are not run here (the daemon starts them through
 * setpriv, agent.ts). Ends: standard input closed (the daemon is gone) →
 * exit once the job in hand is over (a message cut short fails it and its
 * partial write is undone); SIGTERM → the job in hand is aborted, answered,
 * and the worker exits.
 */
import { PassThrough } from 'node:stream';
import { enterUser, isRoot, leaveUser } from './effective-ids.js';
import { runJob, type HelperRequest } from './job.js';
import { describe, tempfail, type Outcome } from './outcome.js';
import { WorkerInputParser, type WorkerInput } from './worker-protocol.js';

interface Current {
  readonly body: PassThrough;
  readonly ac: AbortController;
}

const parser = new WorkerInputParser();
let current: Current | undefined;
/** Exit once the job in hand is answered (input closed, SIGTERM, broken stream, ids not restored). */
let exitAfter: number | undefined;

function bail(code: number): void {
  if (current) exitAfter ??= code;
  else process.exit(code);
}

/**
 * The credentials the worker's effective ids are switched to between jobs
 * (see below), and since when; undefined: root.
 */
let held: { readonly key: string; readonly since: number } | undefined;
/** How long the ids of one user are kept for the next jobs: a change of its groups is seen after this. */
const HOLD_MS = 1000;

/** Back to root (if not already); a failure makes the worker exit once it has answered. */
function release(): void {
  held = undefined;
  try {
    leaveUser();
  } catch (e) {
    process.stderr.write(`delivery worker: ${describe(e)}; exiting\n`);
    exitAfter = 70;
    throw e;
  }
}

/**
 * Perform one job with the user's effective ids. Consecutive jobs for the
 * same credentials (a busy mailbox) keep them for up to HOLD_MS instead of
 * switching to root and back: every set*id call is signalled by glibc to
 * each thread of the process, six calls and a group lookup per job (about
 * 2 ms of CPU here). The real and saved ids stay root's throughout; a job
 * for other credentials, or for mbox's root-open mode (which switches
 * inside the job), first returns to root.
 */
async function perform(line: string, body: PassThrough, signal: AbortSignal): Promise<Outcome> {
  const request = JSON.parse(line) as HelperRequest;
  if (request.v !== 1) throw new Error(`unknown request version ${String(request.v)}`);
  const { creds, job } = request;
  if (job.kind === 'mda') throw new Error('commands are not run by the delivery worker');
  const keep = creds.mode !== 'root-open';
  const key = JSON.stringify(creds);
  const now = performance.now();
  try {
    let hooks = {};
    if (!held || held.key !== key || !keep || now - held.since > HOLD_MS) {
      if (held) release();
      hooks = enterUser(creds, job.kind);
      if (keep) held = { key, since: now };
    }
    return await runJob(job, body, signal, hooks);
  } finally {
    if (!held) {
      try {
        release();
      } catch {
        /* exitAfter is set */
      }
    }
  }
}

function start(line: string): void {
  if (current) {
    process.stderr.write('delivery worker: a request arrived while a job was running; exiting\n');
    process.exit(2);
  }
  const body = new PassThrough();
  // The job may not be reading yet (waiting for the mailbox lock): an error stays on the stream for it to find.
  body.on('error', () => undefined);
  const job: Current = { body, ac: new AbortController() };
  current = job;
  perform(line, body, job.ac.signal)
    .catch((e: unknown) => tempfail('4.3.0', `delivery worker: ${describe(e)}`))
    .then((o) => {
      body.destroy();
      current = undefined;
      process.stdout.write(`${JSON.stringify(o)}\n`, () => {
        if (exitAfter !== undefined) process.exit(exitAfter);
      });
      // Whatever is left of the message is read and thrown away (feed() finds no job).
    });
}

/** Write message bytes to the job's stream, holding standard input while the job lags behind. */
function feed(bytes: Buffer): void {
  const body = current?.body;
  if (!body || body.destroyed || body.writableEnded) return;
  if (!body.write(bytes)) {
    process.stdin.pause();
    const go = (): void => {
      body.off('drain', go);
      body.off('close', go);
      process.stdin.resume();
    };
    body.on('drain', go);
    body.on('close', go);
  }
}

function handle(ev: WorkerInput): void {
  switch (ev.kind) {
    case 'request':
      return start(ev.line);
    case 'data':
      return feed(ev.bytes);
    case 'end':
      current?.body.end();
      return;
    case 'abandoned':
      current?.body.destroy(new Error('the daemon could not read the whole message'));
      return;
    case 'error':
      current?.body.destroy(new Error(ev.message));
      process.stdin.pause();
      return bail(ev.message.startsWith('message cut short') ? 0 : 2);
  }
}

if (!isRoot()) {
  process.stderr.write('delivery worker: must run as root\n');
  process.exit(2);
}
if (process.env.UV_USE_IO_URING !== '0') {
  // io_uring requests would run with the ring's credentials (root), not the ids switched per job (worker-pool.ts).
  process.stderr.write('delivery worker: must run with UV_USE_IO_URING=0\n');
  process.exit(2);
}
process.on('SIGTERM', () => {
  current?.ac.abort();
  current?.body.destroy(Object.assign(new Error('delivery interrupted'), { name: 'AbortError' }));
  bail(0);
});
process.stdout.on('error', () => process.exit(0)); // the daemon is gone; nobody to answer
process.stdin.on('data', (chunk: Buffer) => {
  for (const ev of parser.push(chunk)) handle(ev);
});
process.stdin.on('end', () => {
  const ev = parser.finish();
  if (ev) handle(ev);
  else bail(0);
});
