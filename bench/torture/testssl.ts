/*
 * bench/torture/testssl.ts — testssl.sh (Debian's `testssl.sh` package
 * installs it as `testssl`) against a default TLS listener with
 * `--starttls smtp`, its JSON findings read by severity. A finding of
 * severity LOW or worse fails the check, except those about the test's own
 * self-signed certificate (trust, OCSP, CAA, certificate transparency),
 * which say nothing about the server.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { row, type Row } from './report.js';

export function testsslPath(): string | undefined {
  for (const name of ['testssl.sh', 'testssl']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() !== '') return r.stdout.trim();
  }
  return undefined;
}

interface Finding {
  readonly id: string;
  readonly severity: string;
  readonly finding: string;
}

const BAD = new Set(['LOW', 'MEDIUM', 'HIGH', 'CRITICAL']);
/** About the test certificate, not the server's TLS. */
const CERTIFICATE_ONLY = /^(cert|OCSP|DNS_CAA|intermediate_cert|pre_128cipher|chain_of_trust)/i;

export function runTestssl(dir: string, port: number): Row {
  const bin = testsslPath();
  if (bin === undefined) return { check: 'testssl.sh --starttls smtp', result: 'skipped', figures: 'testssl.sh is not installed' };
  const json = join(dir, 'testssl.json');
  const t0 = Date.now();
  spawnSync(bin, ['--quiet', '--color', '0', '--warnings', 'batch', '--starttls', 'smtp', '--jsonfile', json, `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 900_000 });
  let findings: Finding[];
  try {
    findings = JSON.parse(readFileSync(json, 'utf8')) as Finding[];
  } catch (e) {
    return row('testssl.sh --starttls smtp', false, `no JSON output: ${(e as Error).message}`);
  }
  const bad = findings.filter((f) => BAD.has(f.severity) && !CERTIFICATE_ONLY.test(f.id));
  const secs = Math.round((Date.now() - t0) / 1000);
  return row('testssl.sh --starttls smtp', bad.length === 0, `${findings.length} findings in ${secs} s; ${bad.length === 0 ? 'no vulnerability or weak suite' : bad.map((f) => `${f.id}=${f.severity}: ${f.finding}`).join('; ')}`);
}
