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
 * arrives while it is busy, unless the one before it said `more` (a batch:
 * the pool sends several jobs at once; they still run one after another,
 * and their answers are sent together once the maildir folders they wrote
 * to are fsynced, once each at the end of the batch, through descriptors
 * opened with each writer's ids — group commit), and exits when it cannot
 * switch back. A maildir job gets its message whole when it is small
 * (worker-body.ts) and makes synchronous file calls (file-calls.ts): the
 * worker has nothing else to do meanwhile, and libuv's thread pool (one
 * more thread for every set*id call to signal) is never started for it.
 *
 * mda and |command jobs are not run here (the daemon starts them through
 * setpriv, agent.ts). Ends: standard input closed (the daemon is gone) →
 * exit once the jobs in hand are over (a message cut short fails its job
 * and its partial write is undone); SIGTERM → the jobs in hand are aborted,
 * answered, and the worker exits.
 */
import { enterUser, isRoot, leaveUser, rootAgain } from './effective-ids.js';
import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { syncCalls } from './file-calls.js';
import { runJob, type HelperRequest } from './job.js';
import { describe, tempfail, type Outcome } from './outcome.js';
import { WorkerBody } from './worker-body.js';
import { WorkerInputParser, type WorkerInput } from './worker-protocol.js';

interface Queued {
  readonly request: HelperRequest | Error;
  readonly body: WorkerBody;
  readonly ac: AbortController;
}

const parser = new WorkerInputParser();
/** Jobs received and not yet performed, in order; the first may be running. */
const queue: Queued[] = [];
let running = false;
/** The body the next message bytes go to: that of the last request. */
let feeding: WorkerBody | undefined;
/** The last request said `more`: the next request belongs to its batch. */
let batchOpen = false;
/** Answers of the batch so far, sent together once the maildir folders they wrote to are fsynced. */
let answers: { outcome: Outcome; readonly dirs: string[] }[] = [];
/**
 * The new/ folders the batch's jobs renamed files into, each opened (once) right after the rename, with the
 * ids of the user who wrote there — or why it could not be; fsynced through these descriptors at the end of
 * the batch (fsync checks no permission), so the worker switches users without an fsync in between.
 */
const folders = new Map<string, number | Error>();
/** Exit once the jobs in hand are answered (input closed, SIGTERM, broken stream, ids not restored). */
let exitAfter: number | undefined;
/** The exit status when the ids could not be switched back: no further job runs. */
const IDS_STUCK = 70;

function busy(): boolean {
  return running || queue.length > 0 || answers.length > 0;
}

function bail(code: number): void {
  if (busy()) {
    exitAfter ??= code;
    if (!running && queue.length === 0) answer();
  } else process.exit(code);
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
    exitAfter = IDS_STUCK;
    throw e;
  }
}

/**
 * Perform one job with the user's effective ids. Consecutive jobs for the
 * same credentials (a busy mailbox) keep them for up to HOLD_MS instead of
 * switching to root and back: every set*id call is signalled by glibc to
 * each thread of the process, six calls and a group lookup per job (about
 * 2 ms of CPU here). The real and saved ids stay root's throughout; a job
 * for other credentials takes back root's euid and enters the next user's
 * ids (groups, egid, euid), and a job for mbox's root-open mode (which
 * switches inside the job) first returns to root fully (groups, egid).
 * `key`: the request's credentials as JSON (made once per job, by drain()).
 */
async function perform(request: HelperRequest, key: string, body: WorkerBody, signal: AbortSignal, syncLater: (dir: string) => void): Promise<Outcome> {
  if (request.v !== 1) throw new Error(`unknown request version ${String(request.v)}`);
  const { creds, job } = request;
  if (job.kind === 'mda') throw new Error('commands are not run by the delivery worker');
  const keep = creds.mode !== 'root-open';
  // A maildir job takes its message whole once it has arrived (one write, synchronous file calls: no stream,
  // no thread hand-off); the others, and a message too large to hold, read it as a stream as it comes.
  if (job.kind === 'maildir') await body.wait();
  const input = (job.kind === 'maildir' ? body.whole() : undefined) ?? body.toStream();
  const now = performance.now();
  try {
    let hooks = {};
    if (!held || held.key !== key || !keep || now - held.since > HOLD_MS) {
      // From one user straight to the next: root's euid is enough, as enterUser() sets the groups and the egid
      // anew (four set*id calls instead of seven). A job that starts as root (root-open) gets a full return.
      if (held && keep) {
        held = undefined;
        rootAgain();
      } else if (held) release();
      hooks = enterUser(creds, job.kind);
      if (keep) held = { key, since: now };
    }
    return await runJob(job, input, { signal, hooks, syncLater, calls: syncCalls });
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

/** Hold new/ open for the batch's fsync (see `folders`); called with the ids of the job that wrote there. */
function holdFolder(dir: string): void {
  if (folders.has(dir)) return;
  try {
    folders.set(dir, openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY));
  } catch (e) {
    folders.set(dir, e as Error);
  }
}

/**
 * fsync the new/ folders held for the batch, once each, and close them: before the answers are sent. Done
 * at the end of the batch rather than per user, a folder's fsync usually finds its entry already on disk (the
 * journal commit of a later file's fsync took it along). A folder that could not be opened or fsynced turns
 * the answers of the jobs that wrote to it into temporary failures (delivered again later: a duplicate at worst).
 */
function syncFolders(): void {
  const failed = new Map<string, string>();
  for (const [dir, fd] of folders) {
    if (fd instanceof Error) failed.set(dir, describe(fd));
    else {
      try {
        fsyncSync(fd);
      } catch (e) {
        failed.set(dir, describe(e));
      }
      closeSync(fd);
    }
  }
  folders.clear();
  for (const a of answers) {
    const bad = a.dirs.find((d) => failed.has(d));
    if (bad !== undefined && a.outcome.status === 'ok') a.outcome = tempfail('4.3.0', `maildir: fsync of ${bad}: ${failed.get(bad) ?? ''}`);
  }
}

/** Every answer of the batch, written at once once their folders are on disk: none says "delivered" before. */
function answer(): void {
  syncFolders();
  const lines = answers.map((a) => `${JSON.stringify(a.outcome)}\n`).join('');
  answers = [];
  process.stdout.write(lines, () => {
    if (exitAfter !== undefined && !busy()) process.exit(exitAfter);
  });
}

/** Perform the queued jobs one after another (never two at once: one set of ids per process). */
async function drain(): Promise<void> {
  if (running) return;
  running = true;
  for (let job = queue[0]; job !== undefined; job = queue[0]) {
    const dirs: string[] = [];
    const request = job.request;
    let o: Outcome;
    if (request instanceof Error) o = tempfail('4.3.0', `delivery worker: ${describe(request)}`);
    else if (exitAfter === IDS_STUCK) o = tempfail('4.3.0', 'delivery worker: could not return to root');
    else {
      const key = JSON.stringify(request.creds);
      const syncLater = (d: string): void => {
        dirs.push(d);
        holdFolder(d);
      };
      o = await perform(request, key, job.body, job.ac.signal, syncLater).catch((e: unknown) => tempfail('4.3.0', `delivery worker: ${describe(e)}`));
    }
    job.body.discard();
    queue.shift();
    answers.push({ outcome: o, dirs });
    // Whatever is left of the message is read and thrown away (a discarded body ignores its bytes).
    const more = !(request instanceof Error) && request.more === true;
    if (!more || (queue.length === 0 && exitAfter !== undefined)) answer();
  }
  running = false;
}

function start(line: string): void {
  if (busy() && !batchOpen) {
    process.stderr.write('delivery worker: a request arrived while a job was running; exiting\n');
    process.exit(2);
  }
  let request: HelperRequest | Error;
  try {
    request = JSON.parse(line) as HelperRequest;
  } catch (e) {
    request = e as Error;
  }
  batchOpen = !(request instanceof Error) && request.more === true;
  const body = new WorkerBody(process.stdin);
  feeding = body;
  queue.push({ request, body, ac: new AbortController() });
  void drain();
}

function handle(ev: WorkerInput): void {
  switch (ev.kind) {
    case 'request':
      return start(ev.line);
    case 'data':
      return feeding?.push(ev.bytes);
    case 'end':
      feeding?.end();
      return;
    case 'abandoned':
      feeding?.fail(new Error('the daemon could not read the whole message'));
      return;
    case 'error':
      feeding?.fail(new Error(ev.message));
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
  for (const job of queue) {
    job.ac.abort();
    job.body.fail(Object.assign(new Error('delivery interrupted'), { name: 'AbortError' }));
  }
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
