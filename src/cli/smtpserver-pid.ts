/*
 * cli/smtpserver-pid.ts — ZMailer's start-up rule: "kill the previous
 * smtpserver daemon, if any". The pid in the pid file is sent SIGTERM when
 * that process is alive and is a Postern command (its command line names
 * smtpserver, smtpd or postern: a pid reused by something else is never
 * signalled); we wait up to 10 s for it to finish its sessions and go.
 */
import { readFileSync } from 'node:fs';
import { alive } from '../daemon/pidfile.js';

/** Stop the process named by the pid file; its pid, or undefined when none ran. */
export async function stopPrevious(pidFile: string, waitMs = 10_000): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || !alive(pid)) return undefined;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    /* no /proc: trust the pid file, as ZMailer does */
    cmdline = 'smtpserver';
  }
  if (!/smtpserver|smtpd|postern|main\.js/.test(cmdline)) return undefined;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + waitMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) throw new Error(`the previous smtpserver (pid ${pid}) did not stop within ${waitMs / 1000} s`);
  return pid;
}
