/*
 * daemon/filters.ts — the filters of one generation (filter/build.ts) and
 * what the front door needs for them: how a recipient a filter adds is
 * routed (the rules and expansion, as mail from this host — as Postfix's
 * cleanup hands a milter's added recipient to trivial-rewrite, bypassing the
 * client's restrictions).
 */
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import { parseRcptToArg } from '../mail/address.js';
import type { Policy } from '../policy/policy.js';
import type { RcptRequest } from '../queue/enqueue.js';
import type { RouteAdded } from '../queue/filtered.js';
import { filterOpener } from '../filter/build.js';
import type { FilterOpener } from '../filter/filter.js';
import type { TableRegistry } from '../table/table.js';
import { ProcRegistry } from '../filter/proc/session.js';
import { BuiltinSession } from '../filter/builtin/session.js';
import { FilterProcess } from '../filter/proc/process.js';

/** How long a filter process may take to answer one request (OpenSMTPD waits forever; Postern does not). */
const PROC_TIMEOUT_MS = 300_000;

/** The filter processes, per daemon (its mail log is one object for its whole life). */
const registries = new WeakMap<MailLog, ProcRegistry>();

export interface FilterWiring {
  readonly opener?: FilterOpener;
  readonly routeAdded: RouteAdded<RcptRequest>;
  /** Stop the filter processes (the daemon stops). */
  stop(): void;
}

export function filterWiring(config: Config, policy: Pick<Policy, 'rcpt'>, log: MailLog, tables: Pick<TableRegistry, 'get'>): FilterWiring {
  // One registry for the daemon's life: a reload keeps the processes whose declaration did not change.
  let procs = registries.get(log);
  if (!procs) {
    procs = new ProcRegistry(log, (decl) => new FilterProcess(decl, log, decl.timeoutMs ?? PROC_TIMEOUT_MS));
    registries.set(log, procs);
  }
  const registry = procs;
  const opener = filterOpener(config, log, { proc: (decl, hostname) => registry.session(decl, hostname), builtin: (decl) => new BuiltinSession(decl, tables, log) });
  const routeAdded: RouteAdded<RcptRequest> = async (address) => {
    const path = parseRcptToArg(`TO:<${address}>`, { smtputf8: true, strict: false });
    if (!path.ok || !path.mailbox) return undefined;
    const facts = { id: 'filter', clientAddress: '127.0.0.1', clientPort: 0, fromSocket: true, esmtp: true, tls: false, listener: 'filter' };
    const d = await policy.rcpt(facts, { sender: null, params: { smtputf8: true }, rcptCount: 0 }, path.mailbox);
    if (d.kind === 'reject') return undefined;
    return { address, params: {}, targets: d.targets };
  };
  return { ...(opener ? { opener } : {}), routeAdded, stop: () => registry.stop() };
}
