/*
 * submit/enqueue-client.ts — the client side of local submission: write a
 * message into the spool's offline/ folder (created exclusively, fsynced,
 * the folder fsynced) and ask the daemon through its enqueue socket to
 * take it (submit/offline-format.ts describes the file, enqueue-socket.ts
 * the answers). Used by `sendmail` and by `smtpserver -i`/`-n`, which hand
 * the messages their sessions accepted on to the daemon's queue this way.
 */
import { openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { open as openDir } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { encodeOffline, type OfflineHeader } from './offline-format.js';

/** Write one offline file durably; returns its name in offline/. Throws on failure. */
export async function writeOfflineFile(queuePath: string, header: OfflineHeader, data: Buffer): Promise<string> {
  const dir = join(queuePath, 'offline');
  const name = `${Date.now()}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const fd = openSync(join(dir, name), 'wx', 0o600);
  try {
    writeSync(fd, encodeOffline(header));
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const d = await openDir(dir, 'r');
  await d.sync().catch(() => undefined);
  await d.close();
  return name;
}

/** One request line to the enqueue socket; the answer, or undefined when no daemon listens. */
export function askDaemon(queuePath: string, line: string, timeoutMs = 120_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    const sock = connect(join(queuePath, 'enqueue.sock'));
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('TEMPFAIL the daemon did not answer in time');
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(line));
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(buf === '' ? undefined : buf.trim());
    });
  });
}
