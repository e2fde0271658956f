/*
 * test/helpers/inproc.ts — a whole Postern daemon in the test process
 * (real sockets, real spool on disk), for scripted SMTP dialogues.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import { MailLog } from '../../src/log/maillog.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import type { StoredMessage } from '../../src/spool/spool.js';
import { RawClient } from './smtp-client.js';
import { basicConfig, tempDir } from './daemon.js';

export interface InProc {
  readonly daemon: Daemon;
  readonly port: number;
  readonly dir: string;
  readonly logs: string[];
  client(localAddress?: string): Promise<RawClient>;
  /** Committed messages, with their bodies. */
  messages(): Promise<{ stored: StoredMessage; body: string }[]>;
  close(): Promise<void>;
}

/** Deliveries are paused unless `deliver: true`: receive-side tests inspect what was queued. */
export async function startInProcess(configText = basicConfig(), opts: { deliver?: boolean } = {}): Promise<InProc> {
  const dir = tempDir();
  const text = configText.replaceAll('$DIR', dir);
  const res = loadConfigText(text, 'test.conf', { cwd: dir });
  if (!res.config) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const logs: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  const daemon = await Daemon.start(res.config, log, { pause: opts.deliver ? [] : ['mda', 'mta'] });
  const port = daemon.server.listeners[0]?.port ?? 0;
  return {
    daemon,
    port,
    dir,
    logs,
    client: (localAddress?: string) => RawClient.open(port, '127.0.0.1', localAddress),
    async messages() {
      const out: { stored: StoredMessage; body: string }[] = [];
      for (const id of await daemon.spool.list()) {
        const stored = await daemon.spool.load(id);
        const chunks: Buffer[] = [];
        for await (const c of daemon.spool.openBody(id)) chunks.push(c as Buffer);
        out.push({ stored, body: Buffer.concat(chunks).toString('latin1') });
      }
      return out;
    },
    async close() {
      await daemon.shutdown('test over', 2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Is a daemon running on this spool (its pid file names a live process)? */
function daemonAlive(root: string): boolean {
  try {
    const pid = Number(readFileSync(join(root, 'smtpd.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Read every committed message of a spool folder. With the daemon stopped
 * (or killed) the spool is opened as its owner, so the journal is replayed
 * first, as the next start would; with the daemon running, read-only.
 */
export async function spoolMessages(root: string): Promise<{ stored: StoredMessage; body: string }[]> {
  const spool = new FsSpool({ root, recover: !daemonAlive(root) });
  await spool.open();
  const out: { stored: StoredMessage; body: string }[] = [];
  for (const id of await spool.list()) {
    const stored = await spool.load(id);
    const chunks: Buffer[] = [];
    for await (const c of spool.openBody(id)) chunks.push(c as Buffer);
    out.push({ stored, body: Buffer.concat(chunks).toString('latin1') });
  }
  await spool.close();
  return out;
}
