/*
 * control/bind.ts — binding the control socket (control/server.ts says
 * who may connect and why it is done this way): an existing socket at the
 * path is removed when nothing answers on it (a daemon that crashed); a
 * live one is an error, and so is a file that is not a socket. The socket
 * is bound inside a fresh 0700 folder next to its final path, given mode
 * 0660 there (and the group `gid` when running as root), and renamed into
 * place, so nobody can connect while it still has the umask's mode.
 *
 * Used by the control server itself, and by the privileged parent of a
 * root-started smtpd, which binds the socket for its unprivileged SMTP side
 * (daemon/privsep/parent.ts). Returns the socket's inode (close() removes
 * the socket only if it is still that one).
 */
import { chmodSync, chownSync, lstatSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';

/** Bind `server` to the control socket at `path`; its inode. Throws "control socket PATH: why". */
export async function bindControlSocket(path: string, server: Server, gid?: number): Promise<number> {
  await clearStale(path);
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  for (const n of safeReaddir(dir)) if (n.startsWith(prefix) && /^[A-Za-z0-9]{6}$/.test(n.slice(prefix.length))) rmSync(join(dir, n), { recursive: true, force: true });
  const tmp = mkdtempSync(join(dir, prefix)); // mode 0700
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(join(tmp, 's'), () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(join(tmp, 's'), 0o660);
    if (gid !== undefined && process.getuid?.() === 0) chownSync(join(tmp, 's'), -1, gid);
    renameSync(join(tmp, 's'), path);
    return lstatSync(path).ino;
  } catch (e) {
    server.close();
    throw new Error(`control socket ${path}: ${(e as Error).message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function clearStale(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const answer = await new Promise<string>((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve('alive');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  if (answer === 'alive') throw new Error(`another smtpd answers on the control socket ${path}`);
  // Only a socket nobody listens on is stale; anything else (EACCES …) is not ours to remove.
  if (answer !== 'ECONNREFUSED' && answer !== 'ENOENT') throw new Error(`cannot tell whether ${path} is in use (${answer})`);
  unlinkSync(path);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
