/*
 * daemon/privsep/verify.ts — the privileged parent's check of a delivery
 * the SMTP side asks for (protocol.ts 'deliver'). The child is not trusted:
 * what it names is looked up again here, in the parent's own reading of
 * the configuration, tables, users and ~/.forward files.
 *
 *   - the action must be one of the configuration's local actions (mbox,
 *     maildir, mda; lmtp only for an alias's file or command), and the
 *     recipient's own action;
 *   - a user destination names a user; the delivery agent looks it up
 *     (system user or the action's userbase) and refuses unknown ones. Mail
 *     for a user's mailbox is what any SMTP client may cause;
 *   - a file or command destination must be one that the expansion of the
 *     recipient's address (aliases, virtual tables, :include: files,
 *     ~/.forward), done here, produces under that action with the same user.
 *     The expansion is tried from every rule that names a local action, with
 *     addresses it produces routed as mail from this host — the session's
 *     context (client address, AUTH) is not known here, so this admits any
 *     file or command the administrator's (or a user's, in ~/.forward)
 *     tables give the address under some local rule: never one the child
 *     made up.
 */
import type { Action, Config, MatchRule } from '../../config/model.js';
import type { RemoteRequest } from '../../delivery/local/agent.js';
import { expandRecipient, type ExpandEnv } from '../../expand/expand.js';
import type { Destination } from '../../mail/envelope.js';
import type { LocalNames } from '../../rules/localnames.js';
import { RuleEngine } from '../../rules/rules.js';
import type { TableRegistry } from '../../table/table.js';
import type { UserBase } from '../../users/system-users.js';

export interface VerifyEnv {
  readonly config: Config;
  readonly tables: TableRegistry;
  readonly users: UserBase;
  readonly local: LocalNames;
}

const LOCAL_KINDS = new Set(['mbox', 'maildir', 'mda', 'lmtp']);

/** The parent's action for a request, or why the request is refused. */
export function verifyDelivery(req: RemoteRequest, env: VerifyEnv): { action: Action } | { error: string } {
  const action = env.config.actions.get(req.action);
  if (!action || !LOCAL_KINDS.has(action.kind)) return { error: `action "${req.action}" is not a local action of the configuration` };
  if (req.rcpt.action !== req.action) return { error: `recipient's action "${req.rcpt.action}" is not "${req.action}"` };
  const dest = req.rcpt.dest;
  if (dest === undefined) return { error: 'no destination' };
  if (dest.kind === 'remote') return { error: 'not a local destination' };
  if (dest.kind === 'user') return action.kind === 'lmtp' ? { error: 'LMTP deliveries are made by the SMTP side' } : { action };
  return expandsTo(req, dest, env) ? { action } : { error: `${dest.kind} destination is not what ${req.rcpt.original ?? req.rcpt.address} expands to` };
}

function same(a: Destination, b: Destination): boolean {
  if (a.kind === 'file' && b.kind === 'file') return a.path === b.path && a.user === b.user;
  if (a.kind === 'command' && b.kind === 'command') return a.command === b.command && a.user === b.user;
  return false;
}

function expandsTo(req: RemoteRequest, dest: Destination, env: VerifyEnv): boolean {
  const from = req.rcpt.original ?? req.rcpt.address;
  const at = from.lastIndexOf('@');
  const mailbox = { local: at < 0 ? from : from.slice(0, at), domain: at < 0 ? env.local.hostname : from.slice(at + 1).toLowerCase(), utf8: /[^\x00-\x7f]/.test(from) };
  const rules = new RuleEngine(env.config, env.tables, env.local);
  const x: ExpandEnv = {
    config: env.config,
    tables: env.tables,
    users: env.users,
    local: env.local,
    route: (address: string) => {
      const i = address.lastIndexOf('@');
      return rules.decide({ clientAddress: '127.0.0.1', fromSocket: true, tls: false, sender: req.sender, rcpt: address, rcptDomain: i < 0 ? '' : address.slice(i + 1).toLowerCase() });
    },
  };
  const tried = new Set<string>();
  for (const rule of env.config.rules as readonly MatchRule[]) {
    if (rule.decision === 'reject' || rule.action === undefined || tried.has(rule.action)) continue;
    const action = env.config.actions.get(rule.action);
    if (!action || action.kind === 'relay') continue;
    tried.add(rule.action);
    const r = expandRecipient(mailbox, { rule, action }, x);
    if (r.kind === 'ok' && r.targets.some((t) => t.action.name === req.rcpt.action && same(t.dest, dest))) return true;
  }
  return false;
}
