/*
 * config/load.ts — the entry point: smtpd.conf file or text to Config.
 *
 *   loadConfigFile("/etc/mail/smtpd.conf", { macros, cwd })
 *   loadConfigText(DEFAULT_CONFIG_TEXT, "<built-in>")
 *
 * Both return every diagnostic (errors and warnings, in file order) and the
 * frozen Config only when there is no error. What to do about errors —
 * print them and exit, keep the old configuration — is the caller's call;
 * formatDiagnostic() renders one as "FILE:LINE:COL: message".
 *
 * Pipeline: config/lexer.ts → config/token-stream.ts (macros, includes) →
 * config/parser.ts (Draft) → config/build.ts (checks, defaults, freeze).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { build } from './build.js';
import { defaultHostname } from './defaults.js';
import { Diagnostics, formatDiagnostic } from './diagnostics.js';
import type { Config, Diagnostic } from './model.js';
import { parse } from './parser.js';

export { formatDiagnostic };

export interface LoadOptions {
  /** Macros from the command line (-D name=value); they override definitions in the file. */
  macros?: ReadonlyMap<string, string>;
  /** Base for relative paths in the configuration (default: process.cwd()). */
  cwd?: string;
  /** Host name when the file sets none (default: this machine's, fully qualified if possible). */
  hostname?: string;
}

export interface LoadResult {
  config?: Config;
  /** Errors and warnings, in file order. */
  diagnostics: Diagnostic[];
}

export function loadConfigFile(path: string, opts: LoadOptions = {}): LoadResult {
  const cwd = opts.cwd ?? process.cwd();
  let text: string;
  try {
    text = readFileSync(resolve(cwd, path), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    return { diagnostics: [{ pos: { file: path, line: 1, col: 1 }, severity: 'error', message: `cannot read configuration: ${why}` }] };
  }
  return loadConfigText(text, path, opts);
}

export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  const cwd = opts.cwd ?? process.cwd();
  const diags = new Diagnostics();
  const parsed = parse({ text, file, absPath: resolve(cwd, file), cwd, macros: opts.macros ?? new Map() }, diags);
  const config = build({ file, draft: parsed.draft, macros: parsed.macros, hostname: opts.hostname ?? defaultHostname() }, diags);
  const diagnostics = diags.sorted();
  return config === undefined ? { diagnostics } : { config, diagnostics };
}

/**
 * Parse one command-line macro, "name=value" (smtpd -D). The name follows
 * the rules of `name = value` in the file: letters, digits and "_".
 */
export function parseMacroOverride(arg: string): { name: string; value: string } | { error: string } {
  const eq = arg.indexOf('=');
  if (eq <= 0) return { error: `invalid macro definition "${arg}" (expected name=value)` };
  const name = arg.slice(0, eq);
  if (!/^[A-Za-z0-9_]+$/.test(name)) return { error: `invalid macro name "${name}" (letters, digits and "_" only)` };
  return { name, value: arg.slice(eq + 1) };
}
