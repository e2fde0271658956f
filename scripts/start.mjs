#!/usr/bin/env node
// `npm start`: smtpd in the foreground on etc/smtpd.conf.default (port 2525, the spool in ./var).
// As root, smtpd runs its SMTP side as the unprivileged user _postern, which `postern install`
// creates; on a machine where Postern was never installed, it is created here the same way.
// A clone in a folder _postern cannot pass (root's 0700 home: /root/postern) can hold neither
// the spool, nor the mailboxes the users' own delivery processes write, nor the code the SMTP
// side loads after giving up root (its worker threads): then npm start runs from
// /var/spool/postern-start ($POSTERN_START_DIR) — spool/, mail/, a copy of the configuration
// naming them, and app/, a copy of what runs (bin, dist/src, etc, the production packages of
// node_modules), made again at every start — and says so (README.md, docs/administration.md).
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';
// The daemon's own checks (npm start builds dist/ first).
import { alive } from '../dist/src/daemon/pidfile.js';
import { firstBlocked } from '../dist/src/daemon/privsep/spool-owner.js';

const repo = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const say = (line) => process.stderr.write(`npm start: ${line}\n`);
let conf = join(repo, 'etc/smtpd.conf.default');

/** The folders of node_modules that the production dependencies need (package.json's, and theirs, by Node's lookup). */
function productionPackages() {
  const found = new Set();
  const visit = (from, name) => {
    for (let d = from; ; d = dirname(d)) {
      const dir = join(d, 'node_modules', name);
      if (existsSync(join(dir, 'package.json'))) {
        if (found.has(dir)) return;
        found.add(dir);
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dir, dep);
        return;
      }
      if (d === repo || d === dirname(d)) return; // an optional dependency not installed
    }
  };
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(repo, dep);
  return [...found];
}

/** A copy of what runs, in `app` (root's, readable by all). */
function stageApp(app) {
  rmSync(app, { recursive: true, force: true });
  for (const part of ['package.json', 'bin', 'dist/src', 'etc', ...productionPackages().map((d) => relative(repo, d))]) {
    cpSync(join(repo, part), join(app, part), { recursive: true, dereference: true, mode: 0 });
  }
  spawnSync('chmod', ['-R', 'u=rwX,go=rX', app]);
}

let app = repo;
if (process.getuid?.() === 0) {
  if (spawnSync('id', ['-u', '_postern']).status !== 0) {
    const r = spawnSync('useradd', ['--system', '--user-group', '--home-dir', '/nonexistent', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'Postern MTA', '_postern'], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(1);
    say('created the system user _postern (as "postern install" does)');
  }
  const id = (flag) => Number(spawnSync('id', [flag, '_postern'], { encoding: 'utf8' }).stdout.trim());
  const wall = firstBlocked(repo, { uid: id('-u'), gid: id('-g') });
  if (wall !== undefined) {
    const place = process.env.POSTERN_START_DIR ?? '/var/spool/postern-start';
    mkdirSync(place, { recursive: true, mode: 0o755 });
    // Root writes its configuration there: the folder must be root's own, not a link, not writable by others.
    const st = lstatSync(place);
    if (!st.isDirectory() || st.uid !== 0 || st.mode & 0o022) {
      say(`${place} must be a folder of root's that group and others cannot write`);
      process.exit(1);
    }
    // Another npm start running from there: its code is not replaced under it.
    const pid = Number((existsSync(join(place, 'spool', 'smtpd.pid')) ? readFileSync(join(place, 'spool', 'smtpd.pid'), 'utf8') : '').trim());
    if (pid > 0 && alive(pid)) {
      say(`smtpd is already running from ${place} (pid ${pid})`);
      process.exit(1);
    }
    app = join(place, 'app');
    stageApp(app);
    const text = readFileSync(conf, 'utf8').replace(/^queue path .*$/m, `queue path "${place}/spool"`).replace(/^mbox path .*$/m, `mbox path "${place}/mail"`);
    conf = join(place, 'smtpd.conf');
    writeFileSync(conf, `# Written by npm start (scripts/start.mjs) from ${repo}/etc/smtpd.conf.default:\n# ${wall} does not let _postern through, so the spool and the mailboxes are here.\n${text}`, { mode: 0o644 });
    say(`${wall} does not let _postern (the SMTP side's user) through, so Postern runs from ${place}: the spool is ${place}/spool, the mailboxes ${place}/mail/USER, the configuration ${conf}, a copy of the code ${app}`);
    say(`the tools: POSTERN_CONFIG=${conf} node bin/postern.js mailq`);
  }
}
const child = spawn(process.execPath, [join(app, 'dist/src/cli/smtpd.js'), '-d', '-f', conf, ...process.argv.slice(2)], { stdio: 'inherit', cwd: app });
for (const sig of ['SIGTERM', 'SIGHUP', 'SIGUSR1']) process.on(sig, () => child.kill(sig));
process.on('SIGINT', () => undefined); // a terminal's ^C reaches smtpd itself
child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));
