/*
 * The rules file's ident patterns against a real identd: Debian's oidentd
 * on a loopback port, a real unprivileged user's process holding a TCP
 * connection to a listener, and the rules-file phase asking who owns it
 * (policy/obtuse/ident.ts → net/ident.ts). Root only (useradd, oidentd).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tempDir } from '../helpers/daemon.js';
import { createUsers, removeUsers, type RealUser } from '../helpers/users.js';
import { obtuseRulesPhase } from '../../src/policy/obtuse/phase.js';
import { sessionIdent } from '../../src/policy/obtuse/ident.js';
import { facts, mbox, rules, tx } from '../unit/obtuse-helpers.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : spawnSync('oidentd', ['--version']).status !== 0 ? 'oidentd is not installed (apt-get install oidentd)' : undefined;

let oidentd: ChildProcess;
let identPort: number;
let listener: Server;
let listenPort: number;
let user: RealUser;
let holder: ChildProcess;
let userPort: number;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

before(async () => {
  if (skip) return;
  user = createUsers(tempDir('postern-ident-'), 'idt', 1)[0] as RealUser;
  identPort = await freePort();
  oidentd = spawn('oidentd', ['-i', '-S', '-a', '127.0.0.1', '-p', String(identPort), '-u', 'nobody', '-g', 'nogroup', '-t', '5'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = connect(identPort, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  listener = createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  listenPort = (listener.address() as AddressInfo).port;
  // The user's process connects and says from which port; it holds the connection until killed.
  holder = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, '-e', `const c = require('net').connect(${listenPort}, '127.0.0.1', () => console.log(c.localPort)); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  userPort = await new Promise<number>((r) => holder.stdout?.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
});

after(() => {
  if (skip) return;
  holder.kill('SIGKILL');
  oidentd.kill('SIGTERM');
  listener.close();
  removeUsers([user]);
});

const RULES = (name: string): string => `allow:${name}@127.0.0.1:ALL:ALL
allow:ALL:ALL:USER@post.test
noto:ALL:ALL:ALL:550 5.7.1 %U@%I may not send to %T
`;

function at(clientPort: number) {
  return { ...facts('127.0.0.1'), clientPort, listener: `127.0.0.1:${listenPort}` };
}

test('user@host in a SourceList matches the user oidentd names', { skip }, async () => {
  const phase = obtuseRulesPhase({ rules: rules(RULES(user.name)), ident: sessionIdent({ port: identPort, timeoutMs: 2000 }) });
  const e = await phase.explain(at(userPort), tx('a@x.example'), mbox('anyone@elsewhere.example'));
  assert.equal(e.outcome, 'allow', e.why);
  assert.match(e.why, /:1: allow:idt/);
});

test('%U is the ident user; USER@ in a ToList is the ident user\'s own address', { skip }, async () => {
  // A connection of this (root) process: oidentd answers root.
  const own: Socket = await new Promise((r) => {
    const s = connect(listenPort, '127.0.0.1', () => r(s));
  });
  try {
    const phase = obtuseRulesPhase({ rules: rules(RULES(user.name)), ident: sessionIdent({ port: identPort, timeoutMs: 2000 }) });
    const refused = await phase.rcpt(at(own.localPort as number), tx('a@x.example'), mbox('someone@elsewhere.example'));
    assert.equal(refused.kind === 'reject' && refused.reply.lines.join(' '), 'root@127.0.0.1 may not send to <someone@elsewhere.example>');
    const mine = await phase.explain(at(own.localPort as number), tx('a@x.example'), mbox('root@post.test'));
    assert.equal(mine.outcome, 'allow', mine.why);
    assert.match(mine.why, /:2: /);
  } finally {
    own.destroy();
  }
});

test('no identd answering: %U is UNKNOWN, quickly', { skip }, async () => {
  const phase = obtuseRulesPhase({ rules: rules(RULES(user.name)), ident: sessionIdent({ port: await freePort(), timeoutMs: 2000 }) });
  const t0 = Date.now();
  const v = await phase.rcpt(at(userPort), tx('a@x.example'), mbox('someone@elsewhere.example'));
  assert.equal(v.kind === 'reject' && v.reply.lines.join(' '), 'UNKNOWN@127.0.0.1 may not send to <someone@elsewhere.example>');
  assert.ok(Date.now() - t0 < 1500);
});
