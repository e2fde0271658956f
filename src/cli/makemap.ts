/*
 * cli/makemap.ts — the `makemap` and `newaliases` commands, as OpenSMTPD's.
 * The name the command is invoked by decides which one runs (main()'s
 * `prog`, given by cli/main.ts: `postern makemap`, `postern newaliases`,
 * or a link of either name made by `postern install`).
 *
 *   makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file
 *     Compile the text table `file` into `dbfile` (default file.db): a
 *     temporary file beside it, fsync, rename, fsync of the folder, so the
 *     old table is in force until the new one is complete.
 *     -t aliases  every value must be a valid aliases(5) list
 *     -t set      keys only
 *     -U          print the compiled table `file` back as text
 *     -d          hash, btree or cdb — accepted for compatibility; one format
 *     file "-"    read standard input (then -o is required)
 *   makemap dbtype dbfile       (sendmail's form: the text on standard input)
 *
 *   newaliases [-h] [-f config]
 *     Compile the aliases table: the source of the table named "aliases" in
 *     the configuration (-f, else $POSTERN_CONFIG, else /etc/mail/smtpd.conf
 *     when it exists, as the other tools find it; for a "db" table, its path
 *     without ".db"), else /etc/mail/aliases; prints "/etc/mail/aliases: N
 *     aliases". Telling a running smtpd comes with the control work:
 *     notifyDaemonOfRebuiltAliases() below is the hook.
 *
 * Diagnostics: one line each, "makemap: FILE:LINE: message"; exit status 1,
 * and the old compiled table is left as it was.
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getopt } from './getopt.js';
import { updateTableOnDaemon } from '../control/client.js';
import type { Config } from '../config/model.js';
import { buildCompiledTable, dumpCompiledTable } from '../table/compile.js';
import type { CompiledType } from '../table/table-db.js';

type Prog = 'makemap' | 'newaliases';

const USAGE: Record<Prog, string> = {
  makemap: 'usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file',
  newaliases: 'usage: newaliases [-h] [-f config]',
};
const SYSTEM_CONFIG = '/etc/mail/smtpd.conf';
const SYSTEM_ALIASES = '/etc/mail/aliases';
const DB_TYPES = ['hash', 'btree', 'cdb'];

class Failure extends Error {}

function progName(argv1: string | undefined): Prog {
  return basename(argv1 ?? '').replace(/\.[cm]?js$/, '') === 'newaliases' ? 'newaliases' : 'makemap';
}

/**
 * Hook for the control work: tell a running smtpd (SIGHUP to the process in
 * config.paths.pidFile) that the aliases table was rebuilt, so it reloads its
 * tables. Until then the daemon sees the new table at its next SIGHUP or start.
 */
/** Tell a running daemon to re-read the table (`smtpctl update table`); a stopped daemon reads it at start. */
export async function notifyDaemonOfRebuiltAliases(config: Config | undefined, table: string): Promise<void> {
  if (!config) return;
  const r = await updateTableOnDaemon(config.paths.controlSocket, table);
  if (typeof r === 'object' && r !== null && 'error' in r) process.stderr.write(`newaliases: the daemon could not reload table ${table}: ${String((r as { error: unknown }).error)}\n`);
}

function makemap(argv: string[]): void {
  const opts = getopt(argv, 'hUd:o:t:');
  if ('error' in opts) throw new Failure(`${opts.error} (${USAGE.makemap})`);
  if (opts.flags.has('h')) {
    process.stdout.write(`${USAGE.makemap}\n`);
    return;
  }
  const dbtype = opts.values.get('d')?.at(-1);
  if (dbtype !== undefined && !DB_TYPES.includes(dbtype)) throw new Failure(`unsupported DB type '${dbtype}' (one of: ${DB_TYPES.join(', ')})`);
  const t = opts.values.get('t')?.at(-1);
  if (t !== undefined && t !== 'aliases' && t !== 'set') throw new Failure(`unsupported type '${t}' (aliases or set)`);
  const type: CompiledType = t === 'aliases' ? 'aliases' : t === 'set' ? 'set' : 'map';
  let out = opts.values.get('o')?.at(-1);
  let source: string;
  const ops = opts.operands;
  if (ops.length === 2 && !opts.flags.has('U')) {
    // sendmail's "makemap hash /etc/mail/access < /etc/mail/access"
    if (out !== undefined) throw new Failure(`-o cannot be used with the "makemap dbtype dbfile" form (${USAGE.makemap})`);
    if (!DB_TYPES.includes(ops[0] as string)) throw new Failure(`unsupported DB type '${ops[0]}' (one of: ${DB_TYPES.join(', ')})`);
    source = '-';
    out = (ops[1] as string).endsWith('.db') ? (ops[1] as string) : `${ops[1]}.db`;
  } else if (ops.length === 1) {
    source = ops[0] as string;
  } else {
    throw new Failure(`${ops.length === 0 ? 'missing file' : `unexpected argument "${ops[1]}"`} (${USAGE.makemap})`);
  }

  if (opts.flags.has('U')) {
    const lines = dumpCompiledTable(source);
    process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    return;
  }
  if (out === undefined) {
    if (source === '-') throw new Failure('-o is required when the table is read from standard input');
    out = `${source}.db`;
  }
  const n = buildCompiledTable(source, out, type);
  if (n === 0) process.stderr.write(`makemap: warning: empty map created: ${out}\n`);
}

async function newaliases(argv: string[]): Promise<void> {
  const opts = getopt(argv, 'hf:');
  if ('error' in opts) throw new Failure(`${opts.error} (${USAGE.newaliases})`);
  if (opts.flags.has('h')) {
    process.stdout.write(`${USAGE.newaliases}\n`);
    return;
  }
  if (opts.operands.length > 0) throw new Failure(`unexpected argument "${opts.operands[0]}" (${USAGE.newaliases})`);
  const file = opts.values.get('f')?.at(-1) ?? process.env['POSTERN_CONFIG'] ?? (existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined);
  let config: Config | undefined;
  if (file !== undefined) {
    if (!existsSync(file)) throw new Failure(`${file}: no such file`);
    // Loaded only here: makemap itself needs no configuration.
    const { loadConfigFile, formatDiagnostic } = await import('../config/load.js');
    const r = loadConfigFile(file);
    for (const d of r.diagnostics) if (d.severity === 'error') process.stderr.write(`${formatDiagnostic(d)}\n`);
    if (!r.config) throw new Failure(`${file}: configuration has errors`);
    config = r.config;
  }
  const { source, out } = aliasesPaths(config);
  const n = buildCompiledTable(source, out, 'aliases');
  process.stdout.write(`${source}: ${n} aliases\n`);
  await notifyDaemonOfRebuiltAliases(config, 'aliases');
}

/** Where the aliases text is and where its compiled table goes. */
function aliasesPaths(config: Config | undefined): { source: string; out: string } {
  const decl = config?.tables.get('aliases');
  if (decl === undefined) return { source: SYSTEM_ALIASES, out: `${SYSTEM_ALIASES}.db` };
  if (decl.kind === 'list' || decl.kind === 'map') throw new Failure(`the table "aliases" of ${config?.file} is written inline: there is nothing to compile`);
  const source = decl.path.endsWith('.db') ? decl.path.slice(0, -3) : decl.path;
  return { source, out: `${source}.db` };
}

/**
 * Run `makemap` or `newaliases` with these arguments (without the command
 * name). Errors are printed as one line and set the exit status to 1.
 * Used by cli/main.ts and cli/newaliases-entry.ts (sendmail -bi) too.
 */
export async function main(argv: string[], prog: string = progName(process.argv[1])): Promise<void> {
  const p: Prog = prog === 'newaliases' ? 'newaliases' : 'makemap';
  try {
    if (p === 'newaliases') await newaliases(argv);
    else makemap(argv);
  } catch (e) {
    process.stderr.write(`${p}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

/** Run by itself (node dist/src/cli/makemap.js, or a link to it named newaliases): the name decides. */
function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main(process.argv.slice(2));
