/*
 * http/api.ts — the JSON API's routes: each is one control command
 * (control/handlers.ts, the same ones smtpctl runs), the role it needs,
 * and how its arguments come from the path and the query. Pure: no socket.
 *
 *   GET  /api/v1/status | stats | hosts | routes       show status|stats|hosts|routes
 *   GET  /api/v1/whoami, /api/v1/events               the token's name and role; the live stream (server.ts)
 *   GET  /api/v1/queue?msgid&state&q&offset&limit     show queue, filtered and paged here
 *   GET  /api/v1/envelopes/EVPID                      show envelope
 *   GET  /api/v1/messages/ID                          show message (the raw message)
 *   POST /api/v1/queue/TARGET/schedule|remove|hold|release   schedule, remove, pause|resume envelope
 *   POST /api/v1/services/smtp|mta|mda/pause|resume   pause|resume smtp|mta|mda
 *   POST /api/v1/tables/NAME/update                   update table
 *   POST /api/v1/reload                               reload
 *
 * TARGET is a message id (8 hex digits), an envelope id (16) or "all".
 * docs/openapi.yaml describes them for clients.
 */
import { argValid, type ArgKind, type CommandName } from '../control/protocol.js';
import type { QueueEntry } from '../control/queue-view.js';
import type { HttpRole } from '../config/model.js';

export interface Route {
  readonly command: CommandName;
  readonly args: Readonly<Record<string, string>>;
  readonly role: HttpRole;
  /** The answer is the raw message, not JSON. */
  readonly raw?: true;
}

export type Routed = { readonly ok: true; readonly route: Route } | { readonly ok: false; readonly status: 400 | 404 | 405; readonly error: string; readonly allow?: string };

const GETS: Readonly<Record<string, CommandName>> = { status: 'show status', stats: 'show stats', hosts: 'show hosts', routes: 'show routes', queue: 'show queue' };
const QUEUE_ACTIONS: Readonly<Record<string, CommandName>> = { schedule: 'schedule', remove: 'remove', hold: 'pause envelope', release: 'resume envelope' };
const SERVICES = new Set(['smtp', 'mta', 'mda']);

function arg(kind: ArgKind, name: string, value: string, what: string): Routed | Record<string, string> {
  const v = decodeURIComponent(value);
  if (!argValid(kind, v)) return { ok: false, status: 400, error: `${what} is not valid` };
  return { [name]: kind === 'name' ? v : v.toLowerCase() };
}

/** The route for `method path` (path without the query), or why not. */
export function route(method: string, path: string, query: URLSearchParams): Routed {
  const p = path.replace(/\/+$/, '').split('/').slice(3); // after /api/v1
  const get = method === 'GET' || method === 'HEAD';
  const wrong = (allow: string): Routed => ({ ok: false, status: 405, error: `use ${allow} here`, allow });
  const [a, b, c] = p;
  if (p.length === 1 && a !== undefined && Object.hasOwn(GETS, a)) {
    if (!get) return wrong('GET');
    const args: Record<string, string> = {};
    const msgid = query.get('msgid');
    if (a === 'queue' && msgid !== null) {
      if (!argValid('msgid', msgid)) return { ok: false, status: 400, error: 'msgid must be 8 hex digits' };
      args['msgid'] = msgid.toLowerCase();
    }
    return { ok: true, route: { command: GETS[a] as CommandName, args, role: 'read-only' } };
  }
  if (p.length === 2 && a === 'envelopes' && b !== undefined) {
    if (!get) return wrong('GET');
    const x = arg('evpid', 'evpid', b, 'the envelope id');
    return 'ok' in x ? (x as Routed) : { ok: true, route: { command: 'show envelope', args: x, role: 'read-only' } };
  }
  if (p.length === 2 && a === 'messages' && b !== undefined) {
    if (!get) return wrong('GET');
    const x = arg('id', 'id', b, 'the message id');
    return 'ok' in x ? (x as Routed) : { ok: true, route: { command: 'show message', args: x, role: 'read-only', raw: true } };
  }
  if (p.length === 3 && a === 'queue' && b !== undefined && c !== undefined && Object.hasOwn(QUEUE_ACTIONS, c)) {
    if (method !== 'POST') return wrong('POST');
    const x = arg('target', 'target', b, 'the target');
    return 'ok' in x ? (x as Routed) : { ok: true, route: { command: QUEUE_ACTIONS[c] as CommandName, args: x, role: 'admin' } };
  }
  if (p.length === 3 && a === 'services' && b !== undefined && SERVICES.has(b) && (c === 'pause' || c === 'resume')) {
    if (method !== 'POST') return wrong('POST');
    return { ok: true, route: { command: `${c} ${b}` as CommandName, args: {}, role: 'admin' } };
  }
  if (p.length === 3 && a === 'tables' && b !== undefined && c === 'update') {
    if (method !== 'POST') return wrong('POST');
    const x = arg('name', 'name', b, 'the table name');
    return 'ok' in x ? (x as Routed) : { ok: true, route: { command: 'update table', args: x, role: 'admin' } };
  }
  if (p.length === 1 && a === 'reload') {
    if (method !== 'POST') return wrong('POST');
    return { ok: true, route: { command: 'reload', args: {}, role: 'admin' } };
  }
  return { ok: false, status: 404, error: 'no such API endpoint' };
}

export interface QueuePage {
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly items: readonly QueueEntry[];
}

export const MAX_PAGE = 1000;

/** `show queue`'s entries filtered (state, q: a substring of ids, sender, recipient, destination) and paged; or why the query is bad. */
export function pageQueue(entries: readonly QueueEntry[], query: URLSearchParams): QueuePage | { readonly error: string } {
  const num = (k: string, d: number, max: number): number | undefined => {
    const v = query.get(k);
    if (v === null) return d;
    if (!/^\d{1,7}$/.test(v)) return undefined;
    return Math.min(Number(v), max);
  };
  const offset = num('offset', 0, 10_000_000);
  const limit = num('limit', 100, MAX_PAGE);
  if (offset === undefined || limit === undefined) return { error: 'offset and limit must be whole numbers' };
  const state = query.get('state');
  if (state !== null && !/^[a-z-]{1,20}$/.test(state)) return { error: 'state must be a word such as pending, held, inflight' };
  const q = (query.get('q') ?? '').toLowerCase();
  if (q.length > 256) return { error: 'q is longer than 256 characters' };
  const hits = entries.filter((e) => (state === null || e.state === state || e.runstate === state) && (q === '' || [e.evpid, e.msgid, e.sender, e.rcpt, e.dest].some((s) => s.toLowerCase().includes(q))));
  return { total: hits.length, offset, limit, items: hits.slice(offset, offset + limit) };
}
