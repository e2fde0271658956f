/*
 * test/helpers/node-children.ts — which Node.js programs a process has
 * started, read from /proc: the delivery tests sample it to prove that no
 * Node.js process is started per message.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export /** Node.js processes started among the children of pid (a program of their own, not a fork on its way to exec). */
function nodeChildren(pid: number = process.pid): number[] {
  const out: number[] = [];
  let self = '';
  let tasks: string[] = [];
  try {
    self = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let kids = '';
    try {
      kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const k of kids.split(' ').filter((x) => x !== '')) {
      try {
        // A fork about to exec another program (sync, setpriv, sh) is still node, with its parent's command line.
        const cmd = readFileSync(`/proc/${k}/cmdline`, 'utf8');
        if (readlinkSync(`/proc/${k}/exe`) === process.execPath && cmd !== '' && cmd !== self) out.push(Number(k));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}
