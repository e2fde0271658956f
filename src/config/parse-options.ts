/*
 * config/parse-options.ts — server-wide settings.
 *
 * OpenSMTPD, legacy:  hostname NAME · size SIZE · expire DURATION ·
 *                     queue interval DURATION
 * OpenSMTPD, modern:  smtp max-message-size SIZE · smtp limit max-rcpt N
 *                     max-mails N · smtp ciphers "…" · queue ttl DURATION ·
 *                     bounce warn-interval D[, D…]
 * Postern's own:      queue path|min-free-space|group-commit · queue
 *                     postgresql|node|lease (parse-cluster.ts) · control socket ·
 *                     pidfile · mbox path · log file · resolver … ·
 *                     resolver timeout · smtp limit max-unknown-commands|max-junk-commands ·
 *                     smtp timeout command|data|tls-handshake|session|
 *                     transaction · smtp max-received ·
 *                     smtp bare-newline · smtp early-talker ·
 *                     smtp greeting-delay · smtp vrfy|expn · smtp help ·
 *                     smtp banner · smtp disable EXT… · smtp tls-min-version ·
 *                     rules "PATH" · smtpserver-conf "PATH"
 * docs/configuration.md describes each one. A setting given twice keeps the
 * later value, with a warning.
 */
import type { Cursor } from './cursor.js';
import type { Token } from './lexer.js';
import { SMTP_EXTENSIONS } from './defaults.js';
import { checkHostname, checkResolver, parseCount, parseDuration, parseSize, type Parsed } from './values.js';
import { didYouMean } from './suggest.js';
import { CLUSTER_QUEUE_OPTIONS, parseQueueCluster } from './parse-cluster.js';

/** Record a parsed value, or its error at the value's position. */
function take<T>(c: Cursor, v: Token, r: Parsed<T>, use: (value: T) => void): void {
  if (r.ok) use(r.value);
  else c.error(v.pos, r.error);
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

export function parseHostname(c: Cursor): void {
  const kw = c.next();
  const v = c.value('a host name after "hostname"');
  const bad = checkHostname(v.text);
  if (bad !== undefined) c.error(v.pos, bad);
  c.end('hostname');
  c.set('hostname', v.text, kw.pos, '"hostname"');
}

export function parseSizeStatement(c: Cursor): void {
  const kw = c.next();
  c.dialect('legacy', kw.pos);
  const v = c.value('a size after "size" (e.g. 35M)');
  c.end('size');
  take(c, v, positiveSize(parseSize(v.text), 'size'), (n) => c.set('maxMessageSize', n, kw.pos, '"size"'));
}

function positiveSize(r: Parsed<number>, what: string): Parsed<number> {
  return r.ok && r.value === 0 ? { ok: false, error: `${what} must be at least 1 byte` } : r;
}

export function parseExpire(c: Cursor): void {
  const kw = c.next();
  c.dialect('legacy', kw.pos);
  const v = c.value('a duration after "expire" (e.g. 4d)');
  c.end('expire');
  take(c, v, parseDuration(v.text), (ms) => c.set('queueTtl', seconds(ms), kw.pos, '"expire"'));
}

const QUEUE_OPTIONS = ['path', 'ttl', 'interval', 'min-free-space', 'group-commit', 'active-limit', ...CLUSTER_QUEUE_OPTIONS];

export function parseQueue(c: Cursor): void {
  const t = c.peek(1);
  if (t.kind === 'word' && CLUSTER_QUEUE_OPTIONS.includes(t.text)) return parseQueueCluster(c);
  const kw = c.next();
  if (t.kind === 'word' && (t.text === 'compression' || t.text === 'encryption')) c.fail(t.pos, `"queue ${t.text}" is not supported by Postern`);
  if (t.kind !== 'word' || !QUEUE_OPTIONS.includes(t.text)) c.unknown(t, QUEUE_OPTIONS, 'queue option');
  c.next();
  const label = `"queue ${t.text}"`;
  const v = c.value(`a value after ${label}`);
  c.end('queue');
  switch (t.text) {
    case 'path':
      c.set('queuePath', c.path(v.text), kw.pos, label);
      break;
    case 'ttl':
      c.dialect('modern', kw.pos);
      take(c, v, parseDuration(v.text), (ms) => c.set('queueTtl', seconds(ms), kw.pos, label));
      break;
    case 'interval':
      c.dialect('legacy', kw.pos);
      take(c, v, parseDuration(v.text), (ms) => c.set('queueInterval', Math.max(1, seconds(ms)), kw.pos, label));
      break;
    case 'min-free-space':
      take(c, v, parseSize(v.text), (n) => c.set('minFreeSpace', n, kw.pos, label));
      break;
    case 'active-limit':
      take(c, v, parseCount(v.text, t.text, 1), (n) => c.set('activeLimit', n, kw.pos, label));
      break;
    default:
      take(c, v, parseDuration(v.text, true), (ms) => c.set('groupCommitMs', ms, kw.pos, label));
      break;
  }
}

export function parseBounce(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  c.expectWord('warn-interval', '"bounce"');
  const delays: number[] = [];
  do {
    const v = c.value('a duration (e.g. 4h)');
    take(c, v, parseDuration(v.text), (ms) => delays.push(seconds(ms)));
  } while (c.acceptPunct(','));
  c.end('bounce');
  c.set('warnIntervals', delays, kw.pos, '"bounce warn-interval"');
}

/** `control socket "P"`, `pidfile "P"`, `mbox path "D"`, `log file "P"`, `rules "P"`, `smtpserver-conf "P"`. */
export function parsePathStatement(c: Cursor): void {
  const kw = c.next();
  const sub: Record<string, string> = { control: 'socket', mbox: 'path', log: 'file' };
  const word = sub[kw.text];
  if (word !== undefined) c.expectWord(word, `"${kw.text}"`);
  const label = word !== undefined ? `"${kw.text} ${word}"` : `"${kw.text}"`;
  const v = c.value(`a path after ${label}`);
  c.end(kw.text);
  const p = c.path(v.text);
  const key = ({ control: 'controlSocket', pidfile: 'pidFile', mbox: 'mboxDir', log: 'logFile', rules: 'rulesFile', 'smtpserver-conf': 'smtpserverConf' } as const)[
    kw.text as 'control' | 'pidfile' | 'mbox' | 'log' | 'rules' | 'smtpserver-conf'
  ];
  c.set(key, p, kw.pos, label);
}

export function parseResolver(c: Cursor): void {
  const kw = c.next();
  if (c.acceptWord('timeout')) {
    const v = c.value('a duration after "resolver timeout"');
    c.end('resolver');
    take(c, v, parseDuration(v.text, true), (ms) => c.set('resolverTimeoutMs', ms, kw.pos, '"resolver timeout"'));
    return;
  }
  if (c.atEnd()) c.fail(c.peek().pos, 'expected DNS server addresses or "timeout" after "resolver"');
  while (!c.atEnd()) {
    c.acceptPunct(',');
    const v = c.value('a DNS server address ("IP" or "IP:PORT")');
    const bad = checkResolver(v.text);
    if (bad !== undefined) c.error(v.pos, bad);
    else c.draft.resolverServers.push(v.text);
  }
  c.end('resolver');
}

const SMTP_OPTIONS = [
  'max-message-size', 'limit', 'ciphers', 'timeout', 'max-received', 'bare-newline', 'early-talker', 'greeting-delay',
  'vrfy', 'expn', 'help', 'banner', 'disable', 'tls-min-version',
  'auth-without-tls', 'auth-failrate', 'auth-fail-delay', 'auth-pipe', 'auth-username-prompt', 'auth-password-prompt',
  'min-data-rate', 'noto-delay', 'deny-delay', 'max-load-average',
];
/** `smtp timeout WHICH D`: the setting each fills (docs/architecture.md, "Deadlines of a connection"). */
const SMTP_TIMEOUTS: Readonly<Record<string, 'commandTimeoutMs' | 'dataTimeoutMs' | 'tlsHandshakeTimeoutMs' | 'sessionLifetimeMs' | 'transactionLifetimeMs'>> = {
  command: 'commandTimeoutMs',
  data: 'dataTimeoutMs',
  'tls-handshake': 'tlsHandshakeTimeoutMs',
  session: 'sessionLifetimeMs',
  transaction: 'transactionLifetimeMs',
};
const SMTP_LIMITS = ['max-rcpt', 'max-mails', 'max-unknown-commands', 'max-junk-commands', 'max-connections', 'max-connections-per-address', 'soft-errors', 'hard-errors'];
/** Postern's own `smtp limit` names (not OpenSMTPD's): the setting each fills. 0 turns the limit off. */
const POSTERN_LIMITS: Readonly<Record<string, 'maxJunkCommands' | 'maxConnections' | 'maxConnectionsPerAddress' | 'softErrorLimit' | 'hardErrorLimit'>> = {
  'max-junk-commands': 'maxJunkCommands',
  'max-connections': 'maxConnections',
  'max-connections-per-address': 'maxConnectionsPerAddress',
  'soft-errors': 'softErrorLimit',
  'hard-errors': 'hardErrorLimit',
};

export function parseSmtp(c: Cursor): void {
  const kw = c.next();
  const t = c.peek();
  if (t.kind === 'word' && t.text === 'sub-addr-delim') c.fail(t.pos, '"smtp sub-addr-delim" is not supported by Postern ("+" is the sub-address delimiter)');
  if (t.kind !== 'word' || !SMTP_OPTIONS.includes(t.text)) c.unknown(t, SMTP_OPTIONS, 'smtp option');
  c.next();
  const label = `"smtp ${t.text}"`;
  const pos = kw.pos;
  switch (t.text) {
    case 'max-message-size': {
      c.dialect('modern', pos);
      const v = c.value('a size after "max-message-size" (e.g. 35M)');
      take(c, v, positiveSize(parseSize(v.text), 'max-message-size'), (n) => c.set('maxMessageSize', n, pos, label));
      break;
    }
    case 'limit':
      smtpLimits(c, pos);
      break;
    case 'ciphers':
      c.dialect('modern', pos);
      c.set('ciphers', c.value('a cipher list after "ciphers"').text, pos, label);
      break;
    case 'timeout': {
      const which = c.peek();
      const key = which.kind === 'word' ? SMTP_TIMEOUTS[which.text] : undefined;
      if (key === undefined) c.unknown(which, Object.keys(SMTP_TIMEOUTS), 'smtp timeout');
      c.next();
      const v = c.value(`a duration after "timeout ${which.text}"`);
      take(c, v, nonZero(parseDuration(v.text, true)), (ms) => c.set(key, ms, pos, `"smtp timeout ${which.text}"`));
      break;
    }
    case 'max-received': {
      const v = c.value('a number after "max-received"');
      take(c, v, parseCount(v.text, 'max-received', 1), (n) => c.set('maxReceivedHeaders', n, pos, label));
      break;
    }
    case 'bare-newline':
      c.set('bareNewline', choice(c, ['normalize', 'reject'], label), pos, label);
      break;
    case 'early-talker':
      c.set('earlyTalker', choice(c, ['reject', 'allow'], label), pos, label);
      break;
    case 'greeting-delay': {
      const v = c.value('a duration after "greeting-delay"');
      take(c, v, parseDuration(v.text, true), (ms) => c.set('greetingDelayMs', ms, pos, label));
      break;
    }
    case 'vrfy':
    case 'expn':
      c.set(t.text === 'vrfy' ? 'vrfy' : 'expn', true, pos, label);
      break;
    case 'help':
      c.draft.help.push(c.value('a line of text after "help"').text);
      break;
    case 'min-data-rate': {
      const v = c.value('bytes per second after "min-data-rate" (0 = off)');
      take(c, v, parseCount(v.text, 'min-data-rate', 0), (n) => c.set('minDataRate', n, pos, label));
      break;
    }
    case 'max-load-average': {
      const v = c.value('a load average after "max-load-average" (e.g. 8 or 12.5)');
      const n = Number(v.text);
      if (!/^\d+(\.\d+)?$/.test(v.text) || !(n > 0)) c.error(v.pos, `invalid load average "${v.text}" (expected a positive number)`);
      else c.set('maxLoadAverage', n, pos, label);
      break;
    }
    case 'noto-delay':
    case 'deny-delay': {
      const v = c.value(`a duration after "${t.text}"`);
      take(c, v, parseDuration(v.text, true), (ms) => c.set(t.text === 'noto-delay' ? 'notoDelayMs' : 'denyDelayMs', ms, pos, label));
      break;
    }
    case 'auth-without-tls':
      c.set('authWithoutTls', true, pos, label);
      break;
    case 'auth-failrate': {
      const v = c.value('a number of failures per hour after "auth-failrate"');
      take(c, v, parseCount(v.text, 'auth-failrate', 1), (n) => c.set('authFailRate', n, pos, label));
      break;
    }
    case 'auth-fail-delay': {
      const v = c.value('a duration after "auth-fail-delay"');
      take(c, v, parseDuration(v.text, true), (ms) => c.set('authFailDelayMs', ms, pos, label));
      break;
    }
    case 'auth-pipe': {
      const v = c.value('the path of the authentication program after "auth-pipe"');
      if (!v.text.startsWith('/')) c.error(v.pos, 'the authentication program must be an absolute path');
      c.set('authPipe', v.text, pos, label);
      break;
    }
    case 'auth-username-prompt':
    case 'auth-password-prompt': {
      const v = c.value(`the prompt text after "${t.text}"`);
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(v.text)) c.error(v.pos, 'a prompt cannot contain control characters');
      c.set(t.text === 'auth-username-prompt' ? 'authUsernamePrompt' : 'authPasswordPrompt', v.text, pos, label);
      break;
    }
    case 'banner': {
      const v = c.value('the greeting text after "banner"');
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(v.text)) c.error(v.pos, 'the banner cannot contain control characters');
      c.set('banner', v.text, pos, label);
      break;
    }
    case 'disable':
      if (c.atEnd()) c.fail(c.peek().pos, `expected an extension name after "disable" (${SMTP_EXTENSIONS.join(', ')})`);
      while (!c.atEnd()) {
        c.acceptPunct(',');
        const v = c.value('an extension name');
        const ext = v.text.toUpperCase();
        if (!SMTP_EXTENSIONS.includes(ext)) c.error(v.pos, `unknown SMTP extension "${v.text}" (expected ${SMTP_EXTENSIONS.join(', ')})${didYouMean(ext, SMTP_EXTENSIONS)}`);
        else c.draft.disabledExtensions.add(ext);
      }
      break;
    default: {
      const v = choice(c, ['TLSv1.2', 'TLSv1.3'], label);
      c.set('tlsMinVersion', v, pos, label);
      break;
    }
  }
  c.end('smtp');
}

function smtpLimits(c: Cursor, pos: Token['pos']): void {
  if (c.atEnd()) c.fail(c.peek().pos, `expected ${SMTP_LIMITS.join(', ')} after "smtp limit"`);
  while (!c.atEnd()) {
    const t = c.peek();
    if (t.kind !== 'word' || !SMTP_LIMITS.includes(t.text)) c.unknown(t, SMTP_LIMITS, 'smtp limit');
    c.next();
    const v = c.value(`a number after "${t.text}"`);
    const label = `"smtp limit ${t.text}"`;
    const own = POSTERN_LIMITS[t.text];
    if (t.text === 'max-unknown-commands') {
      take(c, v, parseCount(v.text, t.text, 0), (n) => c.set('maxUnknownCommands', n, pos, label));
    } else if (own !== undefined) {
      take(c, v, parseCount(v.text, t.text, 0), (n) => c.set(own, n, pos, label));
    } else {
      c.dialect('modern', pos);
      const key = t.text === 'max-rcpt' ? 'maxRcpt' : 'maxMails';
      take(c, v, parseCount(v.text, t.text, 1), (n) => c.set(key, n, pos, label));
    }
  }
}

function nonZero(r: Parsed<number>): Parsed<number> {
  return r.ok && r.value === 0 ? { ok: false, error: 'a timeout cannot be zero' } : r;
}

function choice<T extends string>(c: Cursor, options: readonly T[], label: string): T {
  const v = c.value(`${options.join(' or ')} after ${label}`);
  const hit = options.find((o) => o === v.text);
  if (hit === undefined) c.fail(v.pos, `invalid value "${v.text}" for ${label} (expected ${options.join(' or ')})${didYouMean(v.text, options)}`);
  return hit;
}

/** OpenSMTPD statements Postern recognises but does not implement. */
export const UNSUPPORTED_STATEMENTS: Readonly<Record<string, string>> = {
  proc: 'filter processes are not supported by Postern',
  'proc-exec': 'declare a filter process with "filter NAME proc-exec \"COMMAND\""',
  admd: '"admd" (Authentication-Results) is not supported by Postern',
  mta: '"mta" limits are not supported by Postern',
  mda: '"mda" limits and wrappers are not supported by Postern',
  scheduler: '"scheduler" limits are not supported by Postern',
  srs: 'SRS keys are not supported by Postern',
};
