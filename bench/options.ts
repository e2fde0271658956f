/*
 * bench/options.ts — the command line of `npm run bench` and the plan it
 * makes: which scenarios, which servers, with which parameters. Pure.
 *
 *   npm run bench -- [--quick] [--scenario NAME]… [--server NAME]…
 *                    [--runs N] [--duration-ms N] [--idle-sessions N]
 *                    [--profile] [--system-resolver] [--keep] [--no-setup]
 */
import { parseArgs } from 'node:util';
import { EXTRA_SCENARIOS, type ExtraScenario } from './extra-scenarios.js';
import { FULL, QUICK, QUICK_SERVERS, SCENARIOS, SERVER_NAMES, type Params, type Scenario } from './scenarios.js';

export const USAGE = `usage: npm run bench -- [options]
  --quick              one 3 s run per cell, Postern against Postfix (and the floor) in
                       the scenarios marked quick, smaller extras (about 3 minutes)
  --scenario NAME      run only this scenario (repeat or comma-separate):
                       ${[...SCENARIOS.map((s) => s.name), ...EXTRA_SCENARIOS.map((s) => s.name)].join(', ')}
  --server NAME        only this server (repeat or comma-separate): ${SERVER_NAMES.join(', ')}
  --runs N             measured runs per cell (default 3; --quick 1)
  --duration-ms N      load per run (default ${FULL.durationMs}; --quick ${QUICK.durationMs})
  --idle-sessions N    idle sessions held against Postern (default ${FULL.idleSessions}; --quick ${QUICK.idleSessions})
  --profile            run Postern alone under node --cpu-prof in the selected scenarios
                       (default maildir-1k-10) and list the functions that dominate its CPU time
  --system-resolver    let Postern use the system's DNS resolver for its per-MAIL sender-domain
                       lookup, instead of the stub on loopback that answers at once
  --keep               keep the servers' work folders (configuration, queue, logs)
  --no-setup           do not install missing peers
  --help`;

export interface Plan {
  readonly params: Params;
  readonly scenarios: readonly Scenario[];
  /** Servers for a scenario (intersection of the scenario's and the --server list). */
  readonly serversFor: (s: Scenario) => readonly string[];
  /** Scenarios of their own (bench/extra-scenarios.ts): the disk, idle sessions, a large queue, … */
  readonly extraScenarios: readonly ExtraScenario[];
  /** The --server list (empty: every server). */
  readonly serverFilter: readonly string[];
  readonly profile: boolean;
  readonly keep: boolean;
  readonly setup: boolean;
  /** Postern uses the system's resolver instead of the harness's DNS stub. */
  readonly systemResolver: boolean;
  /** Every server some step needs (for the setup). */
  readonly servers: ReadonlySet<string>;
}

function list(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/** Parses argv into a plan; throws with a one-line message on a bad option. */
export function makePlan(argv: readonly string[]): Plan | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean' },
      scenario: { type: 'string', multiple: true },
      server: { type: 'string', multiple: true },
      runs: { type: 'string' },
      'duration-ms': { type: 'string' },
      'idle-sessions': { type: 'string' },
      profile: { type: 'boolean' },
      keep: { type: 'boolean' },
      'system-resolver': { type: 'boolean' },
      'no-setup': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const scenarioNames = list(values.scenario);
  const serverNames = list(values.server);
  const known = new Set<string>([...SCENARIOS.map((s) => s.name), ...EXTRA_SCENARIOS.map((s) => s.name)]);
  for (const n of scenarioNames) if (!known.has(n)) throw new Error(`unknown scenario "${n}" (one of: ${[...known].join(', ')})`);
  for (const n of serverNames) if (!(SERVER_NAMES as readonly string[]).includes(n)) throw new Error(`unknown server "${n}" (one of: ${SERVER_NAMES.join(', ')})`);
  const int = (v: string | undefined, name: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected a whole number ≥ ${min}, got "${v}"`);
    return n;
  };
  const quick = values.quick === true;
  const profile = values.profile === true;
  const base = quick ? QUICK : FULL;
  const partial = scenarioNames.length > 0 || serverNames.length > 0;
  const params: Params = {
    ...base,
    label: profile ? 'profile' : partial ? 'partial' : base.label,
    runs: int(values.runs, 'runs', 1) ?? (profile ? 1 : base.runs),
    durationMs: int(values['duration-ms'], 'duration-ms', 100) ?? base.durationMs,
    idleSessions: int(values['idle-sessions'], 'idle-sessions', 1) ?? base.idleSessions,
  };

  let scenarios: Scenario[];
  let extraScenarios: ExtraScenario[];
  if (profile) {
    scenarios = SCENARIOS.filter((s) => (scenarioNames.length > 0 ? scenarioNames.includes(s.name) : s.name === 'maildir-1k-10'));
    extraScenarios = [];
  } else if (scenarioNames.length > 0) {
    scenarios = SCENARIOS.filter((s) => scenarioNames.includes(s.name));
    extraScenarios = EXTRA_SCENARIOS.filter((s) => scenarioNames.includes(s.name));
  } else {
    scenarios = SCENARIOS.filter((s) => !quick || s.quick);
    extraScenarios = EXTRA_SCENARIOS.filter((s) => !quick || s.quick);
  }
  const serversFor = (s: Scenario): string[] => {
    if (profile) return ['postern'];
    let names = [...s.servers];
    if (quick && scenarioNames.length === 0 && serverNames.length === 0) names = names.filter((n) => QUICK_SERVERS.includes(n));
    if (serverNames.length > 0) names = names.filter((n) => serverNames.includes(n));
    return names;
  };
  // An extra scenario whose servers --server names none of is left out (the disk's needs none).
  if (serverNames.length > 0) extraScenarios = extraScenarios.filter((x) => x.servers.length === 0 || x.servers.some((n) => serverNames.includes(n)));
  const servers = new Set<string>();
  for (const s of scenarios) for (const n of serversFor(s)) servers.add(n);
  for (const x of extraScenarios) for (const n of x.servers) if (serverNames.length === 0 || serverNames.includes(n)) servers.add(n);
  return { params, scenarios, serversFor, extraScenarios, serverFilter: serverNames, profile, keep: values.keep === true, setup: values['no-setup'] !== true, systemResolver: values['system-resolver'] === true, servers };
}
