#!/usr/bin/env node
// `npm start`: smtpd in the foreground on etc/smtpd.conf.default (port 2525, the spool in ./var).
// As root, smtpd runs its SMTP side as the unprivileged user _postern, which `postern install`
// creates; on a machine where Postern was never installed, it is created here the same way.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const repo = fileURLToPath(new URL('..', import.meta.url));
if (process.getuid?.() === 0 && spawnSync('id', ['-u', '_postern']).status !== 0) {
  const r = spawnSync('useradd', ['--system', '--user-group', '--home-dir', '/nonexistent', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'Postern MTA', '_postern'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
  process.stderr.write('npm start: created the system user _postern (as "postern install" does)\n');
}
const child = spawn(process.execPath, [join(repo, 'dist/src/cli/smtpd.js'), '-d', '-f', join(repo, 'etc/smtpd.conf.default'), ...process.argv.slice(2)], { stdio: 'inherit', cwd: repo });
for (const sig of ['SIGTERM', 'SIGHUP', 'SIGUSR1']) process.on(sig, () => child.kill(sig));
process.on('SIGINT', () => undefined); // a terminal's ^C reaches smtpd itself
child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));
