/*
 * policy/limits/load.ts — refuse new sessions when the system is too busy
 * (ZMailer's -L maxloadaver, and the load average of a HELO pattern).
 *
 * Above the limit a new session is answered "421 4.3.2 System too busy,
 * try again later" and closed (RFC 3463 X.3.2: system not accepting
 * network messages). The load average is injected (os.loadavg()[0] in
 * the daemon) so the check is testable.
 */
import { closing, reply, type Reply } from '../mail/reply.js';

/** The closing 421 when `load` exceeds `max`; undefined when there is no limit or the load is fine. */
export function loadAverageRefusal(max: number | undefined, load: number, hostname?: string): Reply | undefined {
  if (max === undefined || !(load > max)) return undefined;
  const who = hostname ? `${hostname} ` : '';
  return closing(reply(421, '4.3.2', `${who}System too busy, try again later`));
}
