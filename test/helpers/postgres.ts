/*
 * test/helpers/postgres.ts — a throwaway PostgreSQL server for a test.
 *
 * Debian's postgresql (any version under /usr/lib/postgresql/N/bin): initdb
 * makes a cluster in a temporary folder, pg_ctl starts it listening on a
 * unix socket in that folder and on a TCP address (127.0.18.1 by default,
 * this worktree's range) on a free port. Run as root (CI), both programs
 * run as the unprivileged `postgres` user (runuser), which owns the folder.
 * The database superuser is "postern", trust authentication (the server
 * listens on loopback only and dies with the test).
 *
 * stop() shuts down cleanly; kill() sends SIGKILL to the postmaster (its
 * backends then exit on their own) — a crashed database; start() again on
 * the same folder runs crash recovery. cleanup() stops it and removes all.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PgServer {
  /** postgres://postern@HOST:PORT/postern */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The folder with the unix socket (.s.PGSQL.PORT). */
  readonly socketDir: string;
  readonly dir: string;
  /** Start (again) and wait until it accepts connections. */
  start(): void;
  /** Fast shutdown. */
  stop(): void;
  /** SIGKILL to the postmaster: a crash. */
  kill(): void;
  /** Is the postmaster running? */
  running(): boolean;
  cleanup(): void;
  /** The server's log so far (for failure messages). */
  log(): string;
}

function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  const v = versions[0];
  if (v === undefined) throw new Error('postgresql is not installed (apt-get install postgresql; scripts/install-test-peers.sh)');
  return join(base, v, 'bin');
}

/** A free TCP port on `host` (bound and released: a race with other programs is possible but unlikely). */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const asRoot = process.getuid?.() === 0;

function pgRun(prog: string, args: readonly string[]): string {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', prog, ...args]] : [prog, [...args]];
  return execFileSync(cmd as string, argv as string[], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

export async function startPostgres(opts: { host?: string; fsync?: boolean } = {}): Promise<PgServer> {
  const bin = binDir();
  const host = opts.host ?? '127.0.18.1';
  const dir = mkdtempSync(join(tmpdir(), 'postern-pg-'));
  chmodSync(dir, 0o700);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  pgRun(join(bin, 'initdb'), ['-D', data, '-U', 'postern', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await freePort(host);
  const options = [
    `-c listen_addresses=${host}`,
    `-c port=${port}`,
    `-c unix_socket_directories=${dir}`,
    `-c fsync=${opts.fsync === false ? 'off' : 'on'}`,
    '-c max_connections=100',
    '-c shared_buffers=32MB',
  ].join(' ');
  const server: PgServer = {
    url: `postgres://postern@${host}:${port}/postgres`,
    host,
    port,
    socketDir: dir,
    dir,
    start() {
      pgRun(join(bin, 'pg_ctl'), ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
    },
    stop() {
      if (server.running()) pgRun(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    kill() {
      const pid = postmasterPid(data);
      if (pid !== undefined) {
        process.kill(pid, 'SIGKILL');
        // The backends notice the postmaster is gone and exit; wait for the socket to close.
        for (let i = 0; i < 200 && pidAlive(pid); i++) spawnSync('sleep', ['0.05']);
      }
    },
    running() {
      const pid = postmasterPid(data);
      return pid !== undefined && pidAlive(pid);
    },
    cleanup() {
      try {
        server.stop();
      } catch {
        server.kill();
      }
      rmSync(dir, { recursive: true, force: true });
    },
    log() {
      return existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    },
  };
  server.start();
  return server;
}

function postmasterPid(data: string): number | undefined {
  try {
    const n = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A TCP relay to the database for one node, so that a test can cut that
 * node off (a network partition, made here by closing the relay and every
 * connection through it: the only way to partition one process on one
 * loopback without network namespaces) and join it again.
 */
export interface Partition {
  readonly url: string;
  /** Close every connection through the relay and refuse new ones. */
  cut(): Promise<void>;
  /** Accept connections again. */
  heal(): Promise<void>;
  close(): Promise<void>;
}

export async function partitionable(server: PgServer, listenHost = '127.0.18.1'): Promise<Partition> {
  const { createConnection } = await import('node:net');
  const port = await freePort(listenHost);
  const sockets = new Set<import('node:net').Socket>();
  let relay: import('node:net').Server | undefined;
  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((client) => {
        const up = createConnection({ host: server.host, port: server.port });
        sockets.add(client);
        sockets.add(up);
        const drop = (): void => {
          client.destroy();
          up.destroy();
          sockets.delete(client);
          sockets.delete(up);
        };
        client.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
        client.pipe(up);
        up.pipe(client);
      });
      s.on('error', reject);
      s.listen(port, listenHost, () => resolve());
      relay = s;
    });
  const shut = async (): Promise<void> => {
    const s = relay;
    relay = undefined;
    for (const k of sockets) k.destroy();
    sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await open();
  return { url: `postgres://postern@${listenHost}:${port}/postgres`, cut: shut, heal: open, close: shut };
}
