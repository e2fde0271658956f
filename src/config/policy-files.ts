/*
 * config/policy-files.ts — the last step of loading the configuration:
 * the policy files smtpd.conf names (`rules "PATH"`, the Obtuse
 * smtpd_check_rules file; `smtpserver-conf "PATH"`, ZMailer's
 * smtpserver.conf) are read and parsed, and smtpserver.conf's PARAMs are
 * merged into the configuration (config/zmailer/merge.ts).
 *
 *   withPolicyFiles(config)  →  { config, files }
 *
 * The result is the one configuration Postern runs on, deeply frozen:
 * every part of the daemon (sessions, listeners, AUTH, local submission,
 * the scheduler) sees the same values, and policy/build.ts builds the
 * phases from `files` without reading anything. The daemon calls it at
 * start-up and at every reload, so the files are read again with smtpd.conf.
 *
 * Diagnostics: every error of both files, one a line, as
 * "FILE:LINE: message" (PolicyFileError); a file that cannot be read is
 * reported at the smtpd.conf line naming it. Warnings, as
 * "FILE:LINE: warning: message", are returned for the caller to show.
 */
import { rulesOpenness } from './obtuse/open.js';
import { OPEN_RELAY_MESSAGE } from './open-relay.js';
import { readFileSync } from 'node:fs';
import { deepFreeze } from './freeze.js';
import type { Config } from './model.js';
import { formatObtuseDiagnostic, parseObtuseRules, type ObtuseRules } from './obtuse/parse.js';
import { mergeZmailer } from './zmailer/merge.js';
import type { ZmailerConf } from './zmailer/params.js';
import { formatZmailerDiagnostic, parseZmailerConf } from './zmailer/parse.js';
import { loadPolicyDb, type PolicyDb } from './zmailer/policydb.js';

/** The policy files of a configuration, read and checked. */
export interface PolicyFiles {
  readonly rules?: ObtuseRules;
  readonly zmailer?: ZmailerConf;
  /** smtpserver.conf's `PARAM policydb`: ZMailer's smtp-policy database, from its source files. */
  readonly policyDb?: PolicyDb;
  /** Warnings, as "FILE:LINE: warning: …" lines. */
  readonly warnings: readonly string[];
}

/** smtpd.conf with what the policy files change, and the files themselves. */
export interface LoadedConfig {
  readonly config: Config;
  readonly files: PolicyFiles;
}

export class PolicyFileError extends Error {}

/**
 * Read the files named by `rules "PATH"` and `smtpserver-conf "PATH"` and
 * merge smtpserver.conf's PARAMs into `config`. Without policy files the
 * configuration is returned as it is (the same object).
 * Throws PolicyFileError listing every error ("FILE:LINE: message"), one a line.
 * `env`: the ZENV variables for $NAME in smtpserver.conf (default: the process environment).
 */
export function withPolicyFiles(config: Config, opts: { readonly env?: Readonly<Record<string, string>> } = {}): LoadedConfig {
  const warnings: string[] = [];
  const errors: string[] = [];
  let rules: ObtuseRules | undefined;
  let zmailer: ZmailerConf | undefined;
  const read = (f: { readonly path: string; readonly pos: { file: string; line: number } }, what: string): string | undefined => {
    try {
      return readFileSync(f.path, 'utf8');
    } catch (e) {
      errors.push(`${f.pos.file}:${f.pos.line}: ${what} "${f.path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return undefined;
    }
  };
  if (config.rulesFile) {
    const text = read(config.rulesFile, 'rules');
    if (text !== undefined) {
      const r = parseObtuseRules(text, config.rulesFile.path);
      for (const d of r.diagnostics) (d.severity === 'error' ? errors : warnings).push(formatObtuseDiagnostic(d));
      if (r.ok) rules = r.rules;
      // An allow grants relaying: an allow of anyone to anywhere makes an open relay (config/obtuse/open.ts).
      const open = r.ok ? rulesOpenness(r.rules) : undefined;
      if (open?.kind === 'open') warnings.push(`${open.rule.pos.file}:${open.rule.pos.line}: this allow rule ${OPEN_RELAY_MESSAGE}`);
    }
  }
  if (config.smtpserverConf) {
    const text = read(config.smtpserverConf, 'smtpserver-conf');
    if (text !== undefined) {
      const env = opts.env ?? processEnv();
      const r = parseZmailerConf(text, config.smtpserverConf.path, { env });
      for (const d of r.diagnostics) (d.severity === 'error' ? errors : warnings).push(formatZmailerDiagnostic(d));
      if (r.ok) zmailer = r.conf;
    }
  }
  let policyDb: PolicyDb | undefined;
  if (zmailer?.policyDb) {
    const r = loadPolicyDb(zmailer.policyDb.path);
    const at = zmailer.given.find((g) => g.name === 'policydb' || g.name === 'policydb-submit')?.pos;
    for (const d of r.diagnostics) (d.severity === 'error' ? errors : warnings).push(formatZmailerDiagnostic(d.pos.line === 0 && at ? { ...d, pos: at } : d));
    policyDb = r.db;
  }
  if (errors.length > 0) throw new PolicyFileError(errors.join('\n'));
  const files: PolicyFiles = { ...(rules ? { rules } : {}), ...(zmailer ? { zmailer } : {}), ...(policyDb ? { policyDb } : {}), warnings };
  return deepFreeze({ config: zmailer ? mergeZmailer(config, zmailer) : config, files });
}

function processEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  return out;
}
