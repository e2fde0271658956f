/*
 * config/parse-forward.ts — Postern's `forward` statement: whether a
 * local user's ~/.forward is read, and what it may name.
 *
 *   forward none                         ~/.forward is never read
 *   forward allow                        read (the default): addresses, users, :include:
 *   forward allow commands               … and "|command" destinations
 *   forward allow files                  … and "/file" destinations
 *   forward allow commands files         both
 *
 * Commands and files from ~/.forward run as the user; Postfix allows both
 * by default (allow_mail_to_commands/files = alias, forward), OpenSMTPD
 * too. Postern does not unless told: a .forward is written by the user,
 * not the administrator, so running its commands is the administrator's
 * choice. The safety rules on the file itself are in expand/forward.ts.
 */
import type { Cursor } from './cursor.js';
import type { ForwardOptions } from './model.js';

export const DEFAULT_FORWARD: ForwardOptions = { read: true, commands: false, files: false };

export function parseForward(c: Cursor): void {
  const kw = c.next();
  if (c.acceptWord('none')) {
    c.end('forward');
    c.set('forward', { read: false, commands: false, files: false }, kw.pos, '"forward"');
    return;
  }
  c.expectWord('allow', '"forward" (forward allow [commands] [files], or forward none)');
  let commands = false;
  let files = false;
  for (;;) {
    if (c.acceptWord('commands')) commands = true;
    else if (c.acceptWord('files')) files = true;
    else break;
  }
  c.end('forward');
  c.set('forward', { read: true, commands, files }, kw.pos, '"forward"');
}
