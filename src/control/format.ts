/*
 * control/format.ts — how smtpctl prints what the daemon answers. Pure:
 * every function returns text; the clock is passed in.
 *
 *   show queue           OpenSMTPD's pipe-separated line per envelope (queue-view.ts
 *                        gives the fields); "|", "\" and control characters inside a
 *                        field are written \xNN so that splitting on "|" is always right
 *   show queue --human   a table, one envelope a line, widths fitted to the content
 *   show stats           key=value, sorted
 *   show status          "MDA running" / "MTA paused" / "SMTP running" (OpenSMTPD's)
 *   show envelope        "key: value" lines
 *   monitor              OpenSMTPD's layout: a two-line header every 25 lines, then
 *                        per-second differences of the daemon's counters
 */
import { formatFields } from '../log/maillog.js';
import type { EnvelopeDetails, QueueEntry } from './queue-view.js';
import { durationText, type Digest, type StatsView } from './stats-view.js';

/** A field of the pipe format: no "|", "\" or control character left raw. */
export function pipeField(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f|\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One envelope as OpenSMTPD's `smtpctl show queue` prints it. */
export function queueLine(e: QueueEntry): string {
  return [
    e.evpid,
    e.src,
    e.agent,
    e.flags.join(','),
    e.sender === '' ? '@' : e.sender,
    e.rcpt,
    e.dest,
    String(e.ctime),
    String(e.expire),
    String(e.lastTry),
    String(e.retry),
    e.runstate,
    e.runtime === null ? '' : String(e.runtime),
    e.error,
  ]
    .map(pipeField)
    .join('|');
}

/** "12s", "3m", "2h5m", "4d1h": the two largest units, for tables. */
export function shortDuration(seconds: number): string {
  const t = durationText(Math.max(0, Math.round(seconds)));
  const m = /^(\d+[a-z])(\d+[a-z])?/.exec(t);
  return m ? `${m[1] ?? ''}${m[2] ?? ''}` : t;
}

/** A readable table of the queue (`show queue --human`). `now` in ms since the epoch. */
export function queueTable(entries: readonly QueueEntry[], now: number): string {
  if (entries.length === 0) return 'The queue is empty.\n';
  const nowS = Math.floor(now / 1000);
  const head = ['ENVELOPE', 'STATE', 'AGE', 'TRIES', 'NEXT TRY', 'SENDER', 'RECIPIENT', 'LAST ERROR'];
  const rows = entries.map((e) => [
    e.evpid,
    e.state,
    shortDuration(nowS - e.ctime),
    String(e.retry),
    nextTry(e, nowS),
    e.sender === '' ? '<>' : e.sender,
    e.rcpt === e.dest || e.agent === 'mta' ? e.rcpt : `${e.rcpt} (${e.dest})`,
    e.error,
  ].map(tableCell));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const right = new Set([3]);
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : right.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const msgs = new Set(entries.map((e) => e.msgid)).size;
  const bytes = [...new Map(entries.map((e) => [e.msgid, e.size])).values()].reduce((a, b) => a + b, 0);
  const foot = `-- ${entries.length} envelope${entries.length === 1 ? '' : 's'} in ${msgs} message${msgs === 1 ? '' : 's'}, ${kib(bytes)}`;
  return `${[line(head), ...rows.map(line), foot].join('\n')}\n`;
}

function nextTry(e: QueueEntry, nowS: number): string {
  if (e.state === 'held') return 'held';
  if (e.state === 'inflight') return 'running';
  if (e.nextTry === null || e.nextTry <= nowS) return e.runstate === 'offline' ? 'at start' : 'now';
  return `in ${shortDuration(e.nextTry - nowS)}`;
}

function tableCell(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\x00-\x1f\x7f]/g, ' ');
  return t.length > 120 ? `${t.slice(0, 119)}…` : t;
}

function kib(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** `show stats`: key=value lines, sorted by key. */
export function statsLines(s: StatsView): string {
  return Object.keys(s)
    .sort()
    .map((k) => `${k}=${String(s[k])}\n`)
    .join('');
}

/** `show status`, as OpenSMTPD prints it. */
export function statusLines(p: { readonly smtp: string; readonly mta: string; readonly mda: string; readonly queue?: string; readonly messages?: number }): string {
  const queue = p.queue === undefined ? '' : `QUEUE ${p.queue} (${p.messages ?? 0} message(s) so far)\n`;
  return `MDA ${p.mda}\nMTA ${p.mta}\nSMTP ${p.smtp}\n${queue}`;
}

/** `show hosts` / `show routes`: one line per entry (objects as key=value pairs). */
export function listLines(items: readonly unknown[]): string {
  return items
    .map((it) => {
      if (typeof it === 'string') return it;
      if (typeof it === 'object' && it !== null && !Array.isArray(it)) {
        const fields: Record<string, string> = {};
        for (const [k, v] of Object.entries(it as Record<string, unknown>)) fields[k] = typeof v === 'string' ? v : JSON.stringify(v);
        return formatFields(fields).trimStart();
      }
      return JSON.stringify(it);
    })
    .map((l) => `${l}\n`)
    .join('');
}

/** `show envelope`: "key: value" lines, times as ISO 8601 with the age. */
export function envelopeLines(d: EnvelopeDetails, now: number): string {
  const nowS = Math.floor(now / 1000);
  const when = (s: number | null): string => (s === null ? '-' : `${new Date(s * 1000).toISOString()} (${s <= nowS ? `${shortDuration(nowS - s)} ago` : `in ${shortDuration(s - nowS)}`})`);
  const r = d.recipient;
  const m = d.message;
  const c = m.client;
  const notify = r.notify === undefined ? '' : r.notify === 'NEVER' ? 'NEVER' : r.notify.join(',');
  const rows: [string, string | undefined][] = [
    ['evpid', d.evpid],
    ['msgid', d.msgid],
    ['state', d.online ? d.state : `${d.state} (daemon stopped)`],
    ['agent', d.agent],
    ['sender', d.sender === '' ? '<>' : d.sender],
    ['rcpt', r.original ?? r.address],
    ['address', r.original !== undefined ? r.address : undefined],
    ['dest', d.dest],
    ['action', r.action],
    ['rule', r.rule],
    ['arrival', when(Math.floor(m.arrival / 1000))],
    ['expire', when(d.expire)],
    ['attempts', String(d.attempts)],
    ['last-try', when(d.lastTry)],
    ['next-try', d.nextTry === null ? undefined : when(d.nextTry)],
    ['error', d.error || undefined],
    ['size', String(m.size)],
    ['body', m.body],
    ['smtputf8', m.smtputf8 ? 'yes' : undefined],
    ['dsn-notify', notify || undefined],
    ['dsn-ret', m.ret],
    ['dsn-envid', m.envid],
    ['dsn-orcpt', r.orcpt],
    ['client', `${c.address}${c.port ? ` port ${c.port}` : ''}${c.hostname ? ` (${c.hostname})` : ''}`],
    ['helo', c.helo],
    ['proto', c.proto],
    ['auth', c.authUser],
    ['tls', c.tls ? `${c.tls.version} ${c.tls.cipher}${c.tls.peer ? ` peer ${c.tls.peer}` : ''}` : undefined],
    ['listener', c.listener],
    ['recipients', String(m.recipients)],
  ];
  let out = '';
  for (const [k, v] of rows) if (v !== undefined) out += `${k}: ${tableCell(v)}\n`;
  for (const h of d.history) {
    const detail = 'detail' in h && h.detail ? ` ${tableCell(h.detail)}` : '';
    const extra = h.kind === 'deferred' ? ` (attempt ${h.attempts}, next ${new Date(h.nextTry).toISOString()})` : '';
    out += `history: ${new Date(h.at).toISOString()} ${h.kind}${extra}${detail}\n`;
  }
  return out;
}

/** The two header lines of `monitor` (OpenSMTPD smtpctl.c do_monitor). */
export const MONITOR_HEADER =
  '--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------\n' + 'curr conn disc  curr  enq  deq   ok tmpfail prmfail loop expire remove bounce\n';

/** Header cadence of `monitor`. */
export const MONITOR_HEADER_EVERY = 25;

/**
 * `monitor`: turns successive digests into lines; the header before the
 * first and every 25th line (with a blank line before it, but the first).
 * The first line shows totals since the daemon started, as OpenSMTPD does.
 */
export class MonitorPrinter {
  private last: Digest | undefined;
  private count = 0;

  line(d: Digest): string {
    const l = this.last;
    const diff = (k: keyof Digest): number => Math.max(0, d[k] - (l?.[k] ?? 0));
    let out = '';
    if (this.count % MONITOR_HEADER_EVERY === 0) out += `${this.count === 0 ? '' : '\n'}${MONITOR_HEADER}`;
    const n = (v: number, w = 4): string => String(v).padStart(w);
    out +=
      `${n(d.clients)} ${n(diff('connected'))} ${n(diff('disconnected'))}  ` +
      `${n(d.envelopes)} ${n(diff('enqueued'))} ${n(diff('dequeued'))} ` +
      `${n(diff('ok'))}    ${n(diff('tempfail'))}    ${n(diff('permfail'))} ${n(diff('loop'))}   ` +
      `${n(diff('expired'))}   ${n(diff('removed'))}   ${n(diff('bounced'))}\n`;
    this.last = d;
    this.count++;
    return out;
  }

  /** The per-second values of the last line, for `monitor --json`. */
  static delta(prev: Digest | undefined, d: Digest): Record<string, number> {
    const out: Record<string, number> = { clients: d.clients, envelopes: d.envelopes };
    for (const k of ['connected', 'disconnected', 'enqueued', 'dequeued', 'ok', 'tempfail', 'permfail', 'loop', 'expired', 'removed', 'bounced'] as const) {
      out[k] = Math.max(0, d[k] - (prev?.[k] ?? 0));
    }
    return out;
  }
}
