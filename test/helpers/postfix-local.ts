/*
 * test/helpers/postfix-local.ts — a throwaway Postfix (Debian package
 * postfix) that delivers mail for one domain to local users' ~/Maildir,
 * for the Obtuse gateway's end-to-end test (root only).
 *
 * Its configuration, queue and log live in a temporary folder; the master
 * runs in the foreground (`master -c DIR -d`) as the test's child, with no
 * network listener: mail comes in through sendmail → postdrop → pickup.
 *
 * Postfix's sendmail, run by an unprivileged user, accepts no other
 * configuration folder than /etc/postfix unless the system's main.cf
 * authorizes it (alternate_config_directories). The test leaves the
 * system's Postfix alone: it makes a persistent private mount namespace
 * (a file under the folder) in which the throwaway folder is bound over
 * /etc/postfix, and runs smtpfwdd there with `nsenter` — so that
 * smtpfwdd's plain `/usr/sbin/sendmail` finds this instance.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

export function postfixUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('postconf', ['-h', 'mail_version']).status !== 0) return 'postfix is not installed';
  if (spawnSync('id', ['-u', 'postfix']).status !== 0) return 'no postfix user';
  return undefined;
}

export interface LocalPostfix {
  readonly dir: string;
  readonly conf: string;
  /** The mount namespace file for `nsenter --mount=…`. */
  readonly ns: string;
  readonly master: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

const SERVICES = [
  ['pickup', 'unix', 'n', '-', 'n', '1', '1', 'pickup'],
  ['cleanup', 'unix', 'n', '-', 'n', '-', '0', 'cleanup'],
  ['qmgr', 'unix', 'n', '-', 'n', '300', '1', 'qmgr'],
  ['rewrite', 'unix', '-', '-', 'n', '-', '-', 'trivial-rewrite'],
  ['bounce', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
  ['defer', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
  ['trace', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
  ['verify', 'unix', '-', '-', 'n', '-', '1', 'verify'],
  ['flush', 'unix', 'n', '-', 'n', '1000?', '0', 'flush'],
  ['proxymap', 'unix', '-', '-', 'n', '-', '-', 'proxymap'],
  ['showq', 'unix', 'n', '-', 'n', '-', '-', 'showq'],
  ['error', 'unix', '-', '-', 'n', '-', '-', 'error'],
  ['retry', 'unix', '-', '-', 'n', '-', '-', 'error'],
  ['discard', 'unix', '-', '-', 'n', '-', '-', 'discard'],
  ['local', 'unix', '-', 'n', 'n', '-', '-', 'local'],
  ['smtp', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
  ['anvil', 'unix', '-', '-', 'n', '-', '1', 'anvil'],
  ['scache', 'unix', '-', '-', 'n', '-', '1', 'scache'],
  ['postlog', 'unix-dgram', 'n', '-', 'n', '-', '1', 'postlogd'],
];

/** Start a Postfix delivering mail for `domain` to ~user/Maildir/ of local users. */
export async function startLocalPostfix(dir: string, domain: string): Promise<LocalPostfix> {
  chmodSync(dir, 0o755);
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  writeFileSync(
    join(conf, 'main.cf'),
    [
      '# throwaway Postfix of test/helpers/postfix-local.ts',
      'compatibility_level = 3.6',
      `queue_directory = ${dir}/queue`,
      `data_directory = ${dir}/data`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      `myhostname = mx.${domain}`,
      `mydomain = ${domain}`,
      `mydestination = ${domain}`,
      'inet_interfaces = loopback-only',
      'inet_protocols = ipv4',
      'home_mailbox = Maildir/',
      'alias_maps =',
      'alias_database =',
      'local_recipient_maps =',
      'relayhost =',
      'default_transport = error:no relaying in this test',
      'biff = no',
      `maillog_file = ${dir}/maillog`,
      `maillog_file_prefixes = ${dir}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(conf, 'master.cf'), `${SERVICES.map((r) => r.join('  ')).join('\n')}\n`);
  for (const f of ['dynamicmaps.cf', 'postfix-files']) if (existsSync(`/etc/postfix/${f}`)) copyFileSync(`/etc/postfix/${f}`, join(conf, f));
  const past = new Date(Date.now() - 60_000);
  for (const f of ['main.cf', 'master.cf']) utimesSync(join(conf, f), past, past);
  makeQueue(dir);
  const master = spawn(join(sh('postconf', ['-h', 'daemon_directory']), 'master'), ['-c', conf, '-d'], { cwd: dir, stdio: 'ignore', detached: true });
  // The namespace where /etc/postfix is this instance's configuration.
  const nsDir = join(dir, 'ns');
  mkdirSync(nsDir);
  sh('mount', ['--bind', nsDir, nsDir]);
  sh('mount', ['--make-private', nsDir]);
  const ns = join(nsDir, 'mnt');
  writeFileSync(ns, '');
  sh('unshare', [`--mount=${ns}`, '--propagation', 'private', 'true']);
  sh('nsenter', [`--mount=${ns}`, 'mount', '--bind', conf, '/etc/postfix']);
  const log = (): string => (existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '');
  // The master is up once qmgr has logged (or after a short while).
  for (let i = 0; i < 50 && !/daemon started/.test(log()); i++) await new Promise((r) => setTimeout(r, 100));
  return {
    dir,
    conf,
    ns,
    master,
    log,
    async stop() {
      if (master.exitCode === null && master.signalCode === null) {
        const gone = new Promise((r) => master.once('exit', r));
        master.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      }
      spawnSync('umount', [ns]);
      spawnSync('umount', [nsDir]);
    },
  };
}

function makeQueue(dir: string): void {
  const uid = Number(sh('id', ['-u', 'postfix']));
  const gid = Number(sh('getent', ['group', 'postdrop']).split(':')[2]);
  const q = join(dir, 'queue');
  const make = (p: string, mode: number, owner: number, group: number): void => {
    mkdirSync(p, { recursive: true });
    chownSync(p, owner, group);
    chmodSync(p, mode);
  };
  make(q, 0o755, 0, 0);
  for (const d of ['active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold', 'incoming', 'private', 'saved', 'trace']) make(join(q, d), 0o700, uid, 0);
  make(join(q, 'pid'), 0o755, 0, 0);
  make(join(q, 'public'), 0o710, uid, gid);
  make(join(q, 'maildrop'), 0o1730, uid, gid);
  make(join(dir, 'data'), 0o700, uid, 0);
}
