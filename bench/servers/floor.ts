/*
 * bench/servers/floor.ts — the floor as a server under test
 * (bench/floor-server.ts): the least a Node.js process does for the
 * maildir scenario — SMTP, a journal fdatasynced before each 250, each
 * message fsynced into the user's maildir and new/ fsynced per batch —
 * with no MTA logic and no switch to the user's ids. It tells what the
 * language and this machine's kernel cost per message before any of
 * Postern's work; its cells claim no ratio (not the same work).
 */
import { join } from 'node:path';
import { LISTEN_HOST, exitStatus, stopTree, type RunningServer, type ServerKind, type StartOptions } from './server.js';
import { HOMES } from '../users.js';
import { REPO_ROOT, spawnWithLimits, waitListening } from '../util.js';

const FLOOR = join(REPO_ROOT, 'dist', 'bench', 'floor-server.js');

export const floorKind: ServerKind = {
  name: 'floor',
  method: {
    maildir: 'the least a Node.js process does for this work (bench/floor-server.ts): SMTP with pipelining, the message appended to a journal with one fdatasync per batch of concurrent commits before the 250, then written into the user\'s ~/Maildir/tmp, fsynced, renamed into new/, new/ fsynced once per batch — as root, with no policy, log, queue file, scheduler or switch to the user\'s ids',
    lmtp: 'cannot',
    mda: 'cannot',
    relay: 'cannot',
  },
  notSameWork: 'the floor does less than the same work (no policy, log, queue file or switch of ids): what Node.js and the kernel cost at least',
  unavailable: () => undefined,
  cannot: (mode) => (mode === 'maildir' ? undefined : 'the floor exists for the maildir scenarios only'),
  version: () => `floor (bench/floor-server.ts), Node ${process.version}`,
  async start(o: StartOptions): Promise<RunningServer> {
    const log = join(o.workDir, 'floor.log');
    const child = spawnWithLimits(process.execPath, [FLOOR, '--port', String(o.port), '--spool', join(o.workDir, 'spool'), '--homes', HOMES], { logFile: log });
    const alive = (): boolean => child.exitCode === null && child.signalCode === null;
    try {
      await waitListening(LISTEN_HOST, o.port, 10_000, alive);
    } catch (e) {
      await stopTree(child, 1000);
      throw new Error(`the floor did not start (${exitStatus(child)}): ${(e as Error).message}`);
    }
    return { kind: 'floor', host: LISTEN_HOST, port: o.port, rootPid: child.pid as number, logFile: log, alive, stop: () => stopTree(child, 2000) };
  },
};
