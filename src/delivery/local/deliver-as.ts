/*
 * delivery/local/deliver-as.ts — the one-shot helper that delivers as a
 * user: now only for mda and |command jobs on systems without setpriv
 * (agent.ts); mailboxes are written by the long-lived workers
 * (deliver-worker.ts).
 *
 * Started by the daemon (running as root) as `node deliver-as.js`, with
 * standard input carrying one JSON line (a HelperRequest: credentials and
 * job), then the message bytes, framed (helper-frame.ts: a message cut
 * short by the daemon's death fails the job). It gives up root —
 * initgroups(), setgid(), setuid(), in that order — before it opens
 * anything (for a root-only mail spool it switches only its effective ids
 * until the mailbox is open, see job.ts), moves to the user's home,
 * performs the job, and writes one JSON line to standard output: the
 * Outcome. Exit status 0 means "read the
 * outcome"; anything else is a failure of the helper itself.
 *
 * SIGTERM (the daemon stopping or the task's time being up) aborts the job;
 * an mda command's process group is killed with it.
 */
import { Readable } from 'node:stream';
import { frameDecoder } from './helper-frame.js';
import { runJob, type HelperRequest } from './job.js';
import { describe, tempfail, type Outcome } from './outcome.js';
import type { MboxHooks } from './mbox.js';
import { posix } from './effective-ids.js';

const MAX_REQUEST = 1024 * 1024;


/** Read stdin up to the first LF: the request; the rest is the message. */
async function readRequest(stdin: Readable): Promise<{ request: HelperRequest; rest: Readable }> {
  let head = Buffer.alloc(0);
  const it = stdin[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = (await it.next()) as IteratorResult<Buffer>;
    if (done) throw new Error('no request on standard input');
    head = Buffer.concat([head, value]);
    const nl = head.indexOf(0x0a);
    if (nl >= 0) {
      const request = JSON.parse(head.subarray(0, nl).toString('utf8')) as HelperRequest;
      const first = head.subarray(nl + 1);
      async function* rest(): AsyncGenerator<Buffer> {
        if (first.length > 0) yield first;
        for (;;) {
          const r = (await it.next()) as IteratorResult<Buffer>;
          if (r.done) return;
          yield r.value;
        }
      }
      return { request, rest: Readable.from(rest(), { objectMode: false }) };
    }
    if (head.length > MAX_REQUEST) throw new Error('request too long');
  }
}

/** Become the user for good (irreversible). */
function dropPrivileges(req: HelperRequest): void {
  const c = req.creds;
  if (c.initgroups) posix.initgroups(c.user, c.gid);
  else posix.setgroups([c.gid]);
  if (c.mode === 'user+group' && c.spoolGid !== undefined) posix.setgroups([...new Set([...posix.getgroups(), c.spoolGid])]);
  posix.setgid(c.gid);
  posix.setuid(c.uid);
  if (posix.getuid() !== c.uid || posix.geteuid() !== c.uid || posix.getgid() !== c.gid) throw new Error('could not change user');
}

// Installed first thing: a SIGTERM that arrives while the job is set up still aborts it cleanly.
const ac = new AbortController();
process.on('SIGTERM', () => ac.abort());

async function main(): Promise<Outcome> {
  const { request, rest } = await readRequest(process.stdin);
  if (request.v !== 1) throw new Error(`unknown request version ${String(request.v)}`);
  const c = request.creds;
  let hooks: MboxHooks = {};
  if (c.mode === 'root-open' && request.job.kind === 'mbox') {
    // Lock and open with root's rights, write with the user's (quota), unlock with root's again.
    if (c.initgroups) posix.initgroups(c.user, c.gid);
    else posix.setgroups([c.gid]);
    hooks = {
      afterOpen: () => {
        posix.setegid(c.gid);
        posix.seteuid(c.uid);
      },
      beforeUnlock: () => {
        if (posix.geteuid() !== 0) {
          posix.seteuid(0);
          posix.setegid(0);
        }
      },
    };
  } else {
    dropPrivileges(request);
  }
  try {
    process.chdir(c.home);
  } catch {
    process.chdir('/');
  }
  // The message is framed (helper-frame.ts): a daemon that died half-way fails the job instead of cutting the message short.
  const body = rest.pipe(frameDecoder());
  rest.once('error', (e) => body.destroy(e));
  // The job may not be reading yet (taking the mailbox lock): the error stays on the stream for it to find.
  body.on('error', () => undefined);
  return runJob(request.job, body, { signal: ac.signal, hooks });
}

main().then(
  (o) => {
    process.stdout.write(`${JSON.stringify(o)}\n`, () => process.exit(0));
  },
  (e) => {
    const o = tempfail('4.3.0', `delivery helper: ${describe(e)}`);
    process.stdout.write(`${JSON.stringify(o)}\n`, () => process.exit(0));
  },
);
