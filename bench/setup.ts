/*
 * bench/setup.ts — installs the peers the benchmark compares Postern with,
 * idempotently (a second run finds everything in place and does nothing):
 *
 *  - Postfix (Debian package postfix: master, smtp-source, smtp-sink),
 *    installed with apt-get when missing, services kept from starting
 *    (policy-rc.d, as .ci/run does);
 *  - OpenSMTPD (Debian package opensmtpd conflicts with postfix): fetched
 *    with `apt-get download` and unpacked with `dpkg -x` into
 *    bench/.peers/opensmtpd/root; the shared libraries it depends on (which
 *    conflict with nothing) installed when missing; its two users created
 *    when missing (Debian builds it for opensmtpd/opensmtpq, upstream for
 *    _smtpd/_smtpq; the names are read from the binary);
 *  - Dovecot (Debian dovecot-core and dovecot-lmtpd) for the lmtp
 *    scenarios and procmail for the mda scenario, installed with apt-get
 *    when missing (services kept from starting; the harness runs its own
 *    Dovecot, bench/dovecot.ts);
 *  - the local users mail is delivered to (bench/users.ts), created when
 *    missing;
 *  - Haraka (npm package Haraka, a pinned version) installed into
 *    bench/.peers/haraka with npm. Two of its transitive dependencies pin
 *    versions this registry does not carry (encoding-japanese 2.5.0 and
 *    libqp 3.0.1, pulled in by libmime for MIME decoding, which the
 *    benchmark never exercises); npm overrides pin the previous releases.
 *
 * Needs root for apt-get, useradd and the peers' own privilege handling;
 * without root, what is missing is reported and those servers are skipped.
 * bench/.peers/ is ignored by git (bench/.gitignore): no binary is committed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPENSMTPD_BIN, OPENSMTPD_ROOT } from './servers/opensmtpd.js';
import { HARAKA_DIR } from './servers/haraka.js';
import { ensureBenchUsers } from './users.js';
import { PEERS_DIR, isRoot, run, which } from './util.js';

export const HARAKA_VERSION = '3.3.4';

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };

export interface SetupResult {
  /** Peers that could not be made ready, with the reason. */
  readonly missing: Readonly<Record<string, string>>;
  readonly log: readonly string[];
}

let aptUpdated = false;
function aptGet(args: string[], log: string[], cwd?: string): boolean {
  const attempt = (): boolean => {
    const r = run('apt-get', args, { env: APT_ENV, timeoutMs: 600_000, ...(cwd ? { cwd } : {}) });
    if (r.status !== 0) log.push(`apt-get ${args.join(' ')}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    return r.status === 0;
  };
  if (attempt()) return true;
  if (aptUpdated) return false;
  aptUpdated = true;
  run('apt-get', ['update', '-qq'], { env: APT_ENV, timeoutMs: 600_000 });
  return attempt();
}

function installed(pkg: string): boolean {
  return run('dpkg-query', ['-W', '-f=${Status}', pkg]).stdout.includes('install ok installed');
}

/** apt-get install, with services kept from starting (policy-rc.d) when we have to create it. */
function aptInstall(pkgs: string[], log: string[]): boolean {
  const policy = '/usr/sbin/policy-rc.d';
  const made = !existsSync(policy);
  if (made) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    log.push(`installing ${pkgs.join(' ')} (apt-get)`);
    return aptGet(['install', '-y', '-qq', '--no-install-recommends', ...pkgs], log);
  } finally {
    if (made) unlinkSync(policy);
  }
}

function ensurePostfix(log: string[]): string | undefined {
  if (which('smtp-sink') && which('smtp-source') && which('postconf')) return undefined;
  if (!isRoot()) return 'postfix is not installed and we are not root';
  if (!aptInstall(['postfix'], log)) return 'apt-get install postfix failed';
  return which('smtp-sink') ? undefined : 'postfix installed but smtp-sink missing';
}

function ensureOpensmtpd(log: string[]): string | undefined {
  const dir = join(PEERS_DIR, 'opensmtpd');
  if (!existsSync(OPENSMTPD_BIN)) {
    if (!isRoot()) return 'not unpacked and we are not root';
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith('.deb')) rmSync(join(dir, f));
    log.push('fetching opensmtpd (apt-get download) into bench/.peers/opensmtpd');
    if (!aptGet(['download', '-qq', 'opensmtpd'], log, dir)) return 'apt-get download opensmtpd failed';
    const deb = readdirSync(dir).find((f) => f.startsWith('opensmtpd_') && f.endsWith('.deb'));
    if (!deb) return 'apt-get download left no .deb';
    rmSync(OPENSMTPD_ROOT, { recursive: true, force: true });
    const x = run('dpkg', ['-x', join(dir, deb), OPENSMTPD_ROOT]);
    if (x.status !== 0) return `dpkg -x failed: ${x.stderr.trim()}`;
    writeFileSync(join(dir, 'VERSION'), run('dpkg-deb', ['-f', join(dir, deb), 'Version']).stdout.trim() + '\n');
    writeFileSync(join(dir, 'DEPENDS'), run('dpkg-deb', ['-f', join(dir, deb), 'Depends']).stdout.trim() + '\n');
  }
  if (!isRoot()) return 'needs root to run';
  // Shared libraries it links against (libevent, libdb…): they conflict with nothing.
  const missingLibs = run('ldd', [OPENSMTPD_BIN]).stdout.includes('not found');
  if (missingLibs) {
    let depends = '';
    try {
      depends = readFileSync(join(dir, 'DEPENDS'), 'utf8');
    } catch {
      /* none recorded */
    }
    const libs = depends
      .split(',')
      .map((d) => (d.split('|')[0] ?? '').trim().split(/[\s(]/)[0] ?? '')
      .filter((n) => /^(lib|zlib)/.test(n) && !installed(n));
    if (libs.length > 0 && !aptInstall(libs, log)) return `could not install ${libs.join(' ')}`;
    if (run('ldd', [OPENSMTPD_BIN]).stdout.includes('not found')) return 'shared libraries still missing (ldd)';
  }
  // Its users: Debian's build uses opensmtpd/opensmtpq, upstream's _smtpd/_smtpq.
  const binary = readFileSync(OPENSMTPD_BIN);
  const users = binary.includes('opensmtpq') ? ['opensmtpd', 'opensmtpq'] : ['_smtpd', '_smtpq'];
  for (const u of users) {
    if (run('id', ['-u', u]).status === 0) continue;
    log.push(`creating system user ${u} (OpenSMTPD's privilege separation)`);
    const r = run('useradd', ['--system', '--no-create-home', '--home-dir', '/var/lib/opensmtpd/empty', '--shell', '/usr/sbin/nologin', '--user-group', u]);
    if (r.status !== 0) return `useradd ${u} failed: ${r.stderr.trim()}`;
  }
  return undefined;
}

/** Haraka: npm install in a child process, so that it runs while apt-get installs the rest (a fresh machine's set-up); what is still missing, or undefined. */
function ensureHaraka(log: string[]): Promise<string | undefined> {
  const pkg = join(HARAKA_DIR, 'node_modules', 'Haraka', 'package.json');
  try {
    if ((JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version === HARAKA_VERSION) return Promise.resolve(undefined);
  } catch {
    /* not installed */
  }
  mkdirSync(HARAKA_DIR, { recursive: true });
  writeFileSync(
    join(HARAKA_DIR, 'package.json'),
    JSON.stringify(
      {
        name: 'postern-bench-haraka',
        private: true,
        description: 'Haraka for Postern\'s benchmark (bench/setup.ts); not part of Postern',
        dependencies: { Haraka: HARAKA_VERSION },
        overrides: { 'encoding-japanese': '2.4.0', libqp: '2.1.2' },
      },
      null,
      2,
    ) + '\n',
  );
  log.push(`installing Haraka ${HARAKA_VERSION} (npm) into bench/.peers/haraka`);
  return new Promise((resolve) => {
    const child = spawn('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: HARAKA_DIR, stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.once('error', (e) => resolve(`npm install failed: ${e.message}`));
    child.once('close', (status) => resolve(status !== 0 ? `npm install failed: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : existsSync(pkg) ? undefined : 'npm install left no Haraka'));
  });
}

/** Dovecot with LMTP and procmail: apt-get when missing; what is still missing, or undefined. */
function ensureDeliveryPeers(log: string[]): string | undefined {
  const pkgs = [
    ['dovecot-core', '/usr/sbin/dovecot'],
    ['dovecot-lmtpd', '/usr/lib/dovecot/lmtp'],
    ['procmail', '/usr/bin/procmail'],
  ].filter(([, file]) => !existsSync(file as string)).map(([pkg]) => pkg as string);
  if (pkgs.length === 0) return undefined;
  if (!isRoot()) return `${pkgs.join(', ')} not installed and we are not root`;
  if (!aptInstall(pkgs, log)) return `apt-get install ${pkgs.join(' ')} failed`;
  return undefined;
}

/** Makes every peer in `wanted` ready (postfix also stands for smtp-source/smtp-sink); Haraka's npm install runs beside the rest. */
export async function ensurePeers(wanted: ReadonlySet<string>): Promise<SetupResult> {
  const log: string[] = [];
  const missing: Record<string, string> = {};
  const haraka = wanted.has('haraka') || wanted.has('haraka2') ? ensureHaraka(log) : Promise.resolve(undefined);
  const pf = ensurePostfix(log);
  if (pf) {
    missing['postfix'] = pf;
    missing['sink'] = pf;
  }
  const delivery = ensureDeliveryPeers(log);
  if (delivery) log.push(`not ready: ${delivery} (the lmtp and mda cells will say so)`);
  const users = ensureBenchUsers(log);
  if (users) log.push(`not ready: ${users} (the local delivery cells will say so)`);
  if (wanted.has('opensmtpd')) {
    const r = ensureOpensmtpd(log);
    if (r) missing['opensmtpd'] = r;
  }
  const r = await haraka;
  if (r) {
    missing['haraka'] = r;
    missing['haraka2'] = r;
  }
  return { missing, log };
}
