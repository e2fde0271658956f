/*
 * cli/config-for-tools.ts — how sendmail, mailq, smtpctl and newaliases
 * find the daemon's configuration: `-C FILE` (sendmail's historical config
 * flag) or `-f FILE`, else $POSTERN_CONFIG, else /etc/mail/smtpd.conf when
 * it exists, else the built-in configuration (as smtpd itself does).
 */
import { existsSync } from 'node:fs';
import { loadConfigFile, loadConfigText, formatDiagnostic } from '../config/load.js';
import { DEFAULT_CONFIG_TEXT } from '../config/defaults.js';
import type { Config } from '../config/model.js';
import { withPolicyFiles, type LoadedConfig } from '../config/policy-files.js';

export function toolConfig(explicit: string | undefined, prog: string): Config {
  const file = explicit ?? process.env['POSTERN_CONFIG'] ?? (existsSync('/etc/mail/smtpd.conf') ? '/etc/mail/smtpd.conf' : undefined);
  if (file !== undefined && !existsSync(file)) {
    process.stderr.write(`${prog}: ${file}: no such file\n`);
    process.exit(1);
  }
  const r = file !== undefined ? loadConfigFile(file) : loadConfigText(DEFAULT_CONFIG_TEXT, '<built-in>');
  if (!r.config) {
    const first = r.diagnostics.find((d) => d.severity === 'error');
    process.stderr.write(`${prog}: ${first ? formatDiagnostic(first) : 'bad configuration'}\n`);
    process.exit(1);
  }
  return r.config;
}

/** The configuration with its policy files read and merged (config/policy-files.ts); their errors, one a line, and exit 1. */
export function withPolicyFilesOrExit(config: Config): LoadedConfig {
  try {
    return withPolicyFiles(config);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}
