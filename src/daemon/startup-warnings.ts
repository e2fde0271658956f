/*
 * daemon/startup-warnings.ts — every warning the daemon logs when it starts
 * on a configuration: the policy files' own (FILE:LINE: warning: …) and
 * what building the policy notes (PARAMs that do something else here).
 * `smtpd -n` and `smtpserver -c` print them without starting anything.
 */
import { loadavg } from 'node:os';
import type { LoadedConfig } from '../config/policy-files.js';
import { buildPolicy, type PolicyDeps } from '../policy/build.js';
import { TableRegistry } from '../table/table.js';
import { SystemUsers } from '../users/system-users.js';
import { LocalNames } from '../rules/localnames.js';

export function startupWarnings(loaded: LoadedConfig, extras: Pick<PolicyDeps, 'style' | 'maxLoadAverage' | 'extraPhases' | 'ident' | 'frontEnd'> = {}): string[] {
  const built = buildPolicy(loaded, { tables: new TableRegistry(), users: new SystemUsers(), local: new LocalNames(loaded.config.hostname), loadAverage: () => loadavg()[0] ?? 0, ...extras });
  return [...loaded.files.warnings, ...built.notes];
}
