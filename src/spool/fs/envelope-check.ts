/*
 * spool/fs/envelope-check.ts — schema checks for what the spool stores.
 *
 * The same checks run before a message is written (commit) and after it is
 * read back (open/load), so the spool never writes a file it would later
 * call corrupt, and never hands out an envelope whose fields have the wrong
 * type. Each check returns null when the value is valid, or a short reason.
 * Fields this version does not know are accepted and kept as data, so an
 * optional member added to Envelope later does not turn old code against
 * new files (or new code against a stale check) into lost mail.
 */
import type { Envelope, RecipientOutcome } from '../../mail/envelope.js';
import { isEvpid, isMsgid } from './ids.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Obj, key: string, where: string): string | null {
  return typeof o[key] === 'string' ? null : `${where}${key}: not a string`;
}

function optStr(o: Obj, key: string, where: string): string | null {
  return o[key] === undefined || typeof o[key] === 'string' ? null : `${where}${key}: not a string`;
}

function time(o: Obj, key: string, where: string): string | null {
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : `${where}${key}: not a time`;
}

function oneOf(o: Obj, key: string, values: readonly unknown[], optional: boolean, where: string): string | null {
  if (optional && o[key] === undefined) return null;
  return values.includes(o[key]) ? null : `${where}${key}: not one of ${values.join('|')}`;
}

const NOTIFY = ['SUCCESS', 'FAILURE', 'DELAY'] as const;

function checkRecipient(r: unknown, i: number, msgid: string, seen: Set<string>): string | null {
  const where = `recipients[${i}].`;
  if (!isObj(r)) return `recipients[${i}]: not an object`;
  const evpid = r['evpid'];
  if (typeof evpid !== 'string' || !isEvpid(evpid) || !evpid.startsWith(msgid)) return `${where}evpid: not ${msgid}+8 hex digits`;
  if (seen.has(evpid)) return `${where}evpid: duplicate ${evpid}`;
  seen.add(evpid);
  const notify = r['notify'];
  if (notify !== undefined && notify !== 'NEVER') {
    if (!Array.isArray(notify) || notify.length === 0 || !notify.every((n) => (NOTIFY as readonly unknown[]).includes(n))) {
      return `${where}notify: not NEVER or a list of SUCCESS|FAILURE|DELAY`;
    }
  }
  return str(r, 'address', where) ?? optStr(r, 'orcpt', where) ?? str(r, 'action', where) ?? optStr(r, 'rule', where);
}

function checkClient(c: unknown): string | null {
  const where = 'client.';
  if (!isObj(c)) return 'client: not an object';
  const port = c['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return 'client.port: not a port';
  const tls = c['tls'];
  if (tls !== undefined) {
    if (!isObj(tls)) return 'client.tls: not an object';
    const bad = str(tls, 'version', 'client.tls.') ?? str(tls, 'cipher', 'client.tls.') ?? optStr(tls, 'peer', 'client.tls.');
    if (bad) return bad;
  }
  return (
    str(c, 'address', where) ??
    optStr(c, 'hostname', where) ??
    optStr(c, 'helo', where) ??
    str(c, 'proto', where) ??
    optStr(c, 'authUser', where) ??
    optStr(c, 'tag', where) ??
    str(c, 'listener', where)
  );
}

/** Null if `v` is a valid version-1 envelope for `msgid`, else why not. */
export function checkEnvelope(v: unknown, msgid: string): string | null {
  if (!isObj(v)) return 'envelope: not an object';
  if (v['version'] !== 1) return `envelope version ${JSON.stringify(v['version'])}, expected 1`;
  if (typeof v['msgid'] !== 'string' || !isMsgid(v['msgid'])) return 'msgid: not 8 hex digits';
  if (v['msgid'] !== msgid) return `msgid ${v['msgid']} does not match ${msgid}`;
  const size = v['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return 'size: not a byte count';
  const rcpts = v['recipients'];
  if (!Array.isArray(rcpts) || rcpts.length === 0) return 'recipients: not a non-empty list';
  const seen = new Set<string>();
  for (let i = 0; i < rcpts.length; i++) {
    const bad = checkRecipient(rcpts[i], i, msgid, seen);
    if (bad) return bad;
  }
  if (typeof v['smtputf8'] !== 'boolean') return 'smtputf8: not a boolean';
  return (
    str(v, 'sender', '') ??
    oneOf(v, 'ret', ['FULL', 'HDRS'], true, '') ??
    optStr(v, 'envid', '') ??
    oneOf(v, 'body', ['7BIT', '8BITMIME', 'BINARYMIME'], false, '') ??
    optStr(v, 'mailAuth', '') ??
    time(v, 'arrival', '') ??
    checkClient(v['client'])
  );
}

/** Type guard form of checkEnvelope. */
export function isEnvelope(v: unknown, msgid: string): v is Envelope {
  return checkEnvelope(v, msgid) === null;
}

/** Null if `v` is a valid RecipientOutcome, else why not. */
export function checkOutcome(v: unknown): string | null {
  if (!isObj(v)) return 'outcome: not an object';
  const bad = time(v, 'at', 'outcome.');
  if (bad) return bad;
  switch (v['kind']) {
    case 'delivered':
    case 'failed':
      return str(v, 'detail', 'outcome.');
    case 'deferred': {
      const attempts = v['attempts'];
      if (typeof attempts !== 'number' || !Number.isSafeInteger(attempts) || attempts < 0) return 'outcome.attempts: not a count';
      return str(v, 'detail', 'outcome.') ?? time(v, 'nextTry', 'outcome.');
    }
    case 'held':
    case 'released':
      return null;
    default:
      return `outcome.kind: unknown ${JSON.stringify(v['kind'])}`;
  }
}

export function isOutcome(v: unknown): v is RecipientOutcome {
  return checkOutcome(v) === null;
}
