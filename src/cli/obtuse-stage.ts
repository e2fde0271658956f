/*
 * cli/obtuse-stage.ts — the two inner stages of Obtuse smtpd (see
 * daemon/obtuse/confine.ts), run by the launcher, never by hand:
 *
 *   obtuse-stage.js confine SPEC   root, in a private mount namespace: bind
 *                                  the port, build the confined root, run
 *                                  the receiver under chroot as -u/-g
 *   obtuse-stage.js receive SPEC   the receiver itself (fd 3: the bound socket)
 *
 * SPEC is one JSON argument (cli/obtuse-smtpd.ts's StageSpec).
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { confine } from '../daemon/obtuse/confine.js';
import { startReceiver } from '../daemon/obtuse/receiver.js';
import { MailLog } from '../log/maillog.js';
import type { StageSpec } from './obtuse-smtpd.js';

/**
 * Postern's installation: dist/src/cli → the package root; installed as a
 * dependency (…/node_modules/postern), the whole node_modules folder, where
 * npm may have hoisted Postern's own dependencies.
 */
const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const HOISTED = PACKAGE.lastIndexOf('/node_modules/');
const CODE = HOISTED >= 0 ? PACKAGE.slice(0, HOISTED + '/node_modules'.length) : PACKAGE;

function fail(msg: string): never {
  process.stderr.write(`smtpd: ${msg}\n`);
  process.exit(1);
}

async function confineStage(s: StageSpec): Promise<void> {
  const server = createServer();
  await new Promise<void>((ok, ko) => {
    server.once('error', (e) => ko(e));
    server.listen({ host: s.address, port: s.port, backlog: 1024 }, () => ok());
  }).catch((e: Error) => fail(`cannot listen on ${s.address} port ${s.port}: ${e.message}`));
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) fail('cannot pass the listening socket on');
  try {
    confine({ root: s.root, home: s.home, code: CODE, node: process.execPath });
  } catch (e) {
    fail(`cannot confine the receiver to ${s.home}: ${(e as Error).message}`);
  }
  const child = spawn('chroot', [`--userspec=${s.uid}:${s.gid}`, `--groups=${s.gid}`, s.root, process.execPath, fileURLToPath(import.meta.url), 'receive', JSON.stringify(s)], {
    stdio: ['ignore', 'inherit', 'inherit', fd],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...(process.env.TZ ? { TZ: process.env.TZ } : {}) },
  });
  child.on('error', (e) => fail(`cannot run chroot: ${e.message}`));
  server.close();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  process.on('SIGHUP', () => undefined);
  // The launcher gone (even by SIGKILL): stop the receiver too, so that the port is free for the next start.
  whenOrphaned(() => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => {
    // Take the new root down and remove its mount point (the launcher does too, unless it was killed).
    spawnSync('umount', ['--lazy', s.root]);
    try {
      rmdirSync(s.root);
    } catch {
      /* the launcher's, or already gone */
    }
    process.exit(code ?? (signal ? 1 : 0));
  });
}

/** Call `f` once this process's parent has gone (it is re-parented). Node has no PR_SET_PDEATHSIG. */
function whenOrphaned(f: () => void): void {
  const parent = process.ppid;
  const t = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(t);
    f();
  }, 1000);
  t.unref();
}

async function receiveStage(s: StageSpec): Promise<void> {
  process.chdir(s.home);
  const log = new MailLog({});
  const r = await startReceiver({ home: s.home, spool: s.spool, address: s.address, port: s.port, fd: 3 }, log).catch((e: Error) => fail(e.message));
  log.info(`smtpd (Obtuse) receiver pid ${process.pid} uid ${process.getuid?.()} listening on ${s.address} port ${r.port}, spooling into ${s.home}${s.spool}`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    r.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The rules file is read again when it changes; SIGHUP changes nothing else.
  process.on('SIGHUP', () => log.info('SIGHUP: the rules file is read again when it changes, at the next session'));
  whenOrphaned(stop);
}

const [stage, json] = process.argv.slice(2);
let spec: StageSpec;
try {
  spec = JSON.parse(json ?? '') as StageSpec;
} catch {
  fail('obtuse-stage: expected "confine" or "receive" and a JSON spec (run smtpd -c HOME instead)');
}
if (stage === 'confine') void confineStage(spec);
else if (stage === 'receive') void receiveStage(spec);
else fail(`obtuse-stage: unknown stage ${JSON.stringify(stage)}`);
