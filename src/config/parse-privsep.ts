/*
 * config/parse-privsep.ts — Postern's `privsep` statement: the unprivileged
 * user smtpd's SMTP side runs as when smtpd is started as root
 * (docs/architecture.md, "Privilege separation").
 *
 *   privsep user NAME        default _postern (OpenSMTPD's is _smtpd, built in)
 *
 * The user must exist (`postern install` creates _postern); its group is
 * its primary group.
 */
import type { Cursor } from './cursor.js';

export function parsePrivsep(c: Cursor): void {
  const kw = c.next();
  c.expectWord('user', '"privsep" (privsep user NAME)');
  const v = c.value('a user name after "privsep user"');
  c.end('privsep');
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(v.text)) return c.error(v.pos, `"${v.text}" is not a user name`);
  c.set('privsepUser', v.text, kw.pos, '"privsep user"');
}
