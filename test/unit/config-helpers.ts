/*
 * test/unit/config-helpers.ts — shared helpers for the config-*.test.ts files.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { formatDiagnostic, loadConfigText, type LoadOptions, type LoadResult } from '../../src/config/load.js';
import type { Action, Config } from '../../src/config/model.js';

/** The repository root (tests run from dist/test/unit). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const TEST_OPTS: LoadOptions = { hostname: 'mx.example.org', cwd: '/srv/postern' };

export function load(text: string, opts: LoadOptions = {}): LoadResult {
  return loadConfigText(text, 'smtpd.conf', { ...TEST_OPTS, ...opts });
}

/** Every diagnostic as the user sees it. */
export function lines(text: string, opts: LoadOptions = {}): string[] {
  return load(text, opts).diagnostics.map(formatDiagnostic);
}

/** Only the errors, formatted. */
export function errors(text: string, opts: LoadOptions = {}): string[] {
  return load(text, opts)
    .diagnostics.filter((d) => d.severity === 'error')
    .map(formatDiagnostic);
}

/** Load text that must have no errors; returns the config. */
export function ok(text: string, opts: LoadOptions = {}): Config {
  const r = load(text, opts);
  const errs = r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  assert.deepEqual(errs, []);
  assert.ok(r.config);
  return r.config;
}

export function action(config: Config, name: string | undefined): Action {
  assert.ok(name !== undefined, 'rule has no action');
  const a = config.actions.get(name);
  assert.ok(a, `no action ${name}`);
  return a;
}

/** A rule's conditions as compact strings: "from-local", "!from-src <t>", "for-domain <x>". */
export function conds(config: Config, i: number): string[] {
  const r = config.rules[i];
  assert.ok(r, `no rule ${i}`);
  return r.conditions.map((c) => {
    const arg = 'table' in c && c.table !== undefined ? ` ${c.table}` : 'tag' in c ? ` ${c.tag}` : '';
    return `${c.negate ? '!' : ''}${c.kind}${arg}`;
  });
}
