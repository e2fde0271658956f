/*
 * submit/offline-format.ts — a message handed over by `sendmail`.
 *
 * sendmail never talks SMTP to the daemon and never needs privileges: it
 * writes the message into the spool's offline/ folder (mode 1733: anyone
 * may create a file, nobody else may list or read it), fsyncs it, and asks
 * the daemon through the enqueue socket to take it. When the daemon is not
 * running the file simply waits there and is enqueued at the next start
 * (Postfix's maildrop works the same way). The file's owner uid is the
 * submitter's identity: it cannot be forged by the file's contents.
 *
 *   POSTERN-OFFLINE 1\n
 *   {"sender":"…","recipients":["…"],"notify":…,"ret":…,"envid":…,"fullName":…,"held":…}\n
 *   <the message as the user wrote it: LF or CRLF line ends>
 *
 * The JSON line is parsed and every field validated by the daemon like an
 * SMTP command would be; nothing in it can reach a shell or a header as is.
 */
export const OFFLINE_MAGIC = 'POSTERN-OFFLINE 1';

export interface OfflineHeader {
  /** Envelope sender ("" for <>); undefined ⇒ the submitting user@hostname. */
  readonly sender?: string;
  readonly recipients: readonly string[];
  readonly notify?: string;
  readonly ret?: 'FULL' | 'HDRS';
  readonly envid?: string;
  /** -F: the full name for a From: header the daemon adds. */
  readonly fullName?: string;
  /** Why the session that accepted it froze it (smtpserver -n/-i): the daemon holds it. Holding is never less safe. */
  readonly held?: string;
}

export function encodeOffline(h: OfflineHeader): string {
  return `${OFFLINE_MAGIC}\n${JSON.stringify(h)}\n`;
}

/** Split a file's bytes into header and body; a string error when malformed. */
export function decodeOffline(data: Buffer): { header: OfflineHeader; body: Buffer } | string {
  const nl1 = data.indexOf(0x0a);
  if (nl1 < 0 || data.subarray(0, nl1).toString('latin1') !== OFFLINE_MAGIC) return 'not a Postern offline file';
  const nl2 = data.indexOf(0x0a, nl1 + 1);
  if (nl2 < 0) return 'truncated offline file';
  let h: unknown;
  try {
    h = JSON.parse(data.subarray(nl1 + 1, nl2).toString('utf8'));
  } catch {
    return 'malformed offline header';
  }
  if (typeof h !== 'object' || h === null) return 'malformed offline header';
  const o = h as Record<string, unknown>;
  const str = (k: string): boolean => o[k] === undefined || (typeof o[k] === 'string' && !/[\x00-\x1f\x7f]/.test(o[k] as string));
  if (!Array.isArray(o['recipients']) || o['recipients'].length === 0 || o['recipients'].length > 10_000) return 'no recipients';
  if (!o['recipients'].every((r) => typeof r === 'string' && r.length <= 512 && !/[\x00-\x1f\x7f]/.test(r))) return 'bad recipient';
  if (!['sender', 'notify', 'envid', 'fullName', 'held'].every(str)) return 'bad header field';
  if (o['ret'] !== undefined && o['ret'] !== 'FULL' && o['ret'] !== 'HDRS') return 'bad RET';
  return { header: o as unknown as OfflineHeader, body: data.subarray(nl2 + 1) };
}
