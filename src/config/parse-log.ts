/*
 * config/parse-log.ts — where the mail log goes and how its lines look:
 *
 *   log file "PATH"                                  a file, reopened on SIGUSR1
 *   log syslog [facility F] [tag T] [socket "PATH"]  the system log (default mail,
 *                                                    smtpd, /dev/log)
 *   log format postern|opensmtpd                     opensmtpd: message and delivery
 *                                                    lines as OpenSMTPD writes them
 *
 * Without `log file`, a daemon that detaches logs to syslog (cli/smtpd.ts).
 * docs/configuration.md and docs/administration.md §6 describe them.
 */
import type { Cursor } from './cursor.js';
import { parsePathStatement } from './parse-options.js';
import { SYSLOG_FACILITIES } from '../log/syslog.js';

export function parseLog(c: Cursor): void {
  if (c.isWord('file', 1)) return parsePathStatement(c);
  const kw = c.next();
  if (c.acceptWord('format')) {
    const v = c.value('"postern" or "opensmtpd" after "log format"');
    c.end('log');
    if (v.text !== 'postern' && v.text !== 'opensmtpd') return c.error(v.pos, `unknown log format "${v.text}" (expected postern or opensmtpd)`);
    return c.set('logFormat', v.text, kw.pos, '"log format"');
  }
  if (!c.acceptWord('syslog')) c.fail(c.peek().pos, 'expected "file", "syslog" or "format" after "log"');
  let facility = 'mail';
  let tag = 'smtpd';
  let socket: string | undefined;
  while (!c.atEnd()) {
    const w = c.next();
    if (w.text === 'facility') {
      const v = c.value('a facility after "facility" (mail, daemon, local0 … local7)');
      if (SYSLOG_FACILITIES[v.text] === undefined) c.error(v.pos, `unknown syslog facility "${v.text}" (expected one of ${Object.keys(SYSLOG_FACILITIES).join(', ')})`);
      facility = v.text;
    } else if (w.text === 'tag') {
      const v = c.value('a name after "tag"');
      if (!/^[A-Za-z0-9_.-]{1,32}$/.test(v.text)) c.error(v.pos, `syslog tag "${v.text}": letters, digits, "_", "." and "-", at most 32`);
      tag = v.text;
    } else if (w.text === 'socket') {
      socket = c.path(c.value('a path after "socket"').text);
    } else {
      c.unknown(w, ['facility', 'tag', 'socket'], 'a "log syslog" option');
    }
  }
  c.set('syslog', { facility, tag, ...(socket !== undefined ? { socket } : {}) }, kw.pos, '"log syslog"');
}
