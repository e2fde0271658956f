/*
 * test/unit/delivery-mda.test.ts — mda commands and aliases(5) "|command"
 * destinations: environment, standard input, exit codes, output capture,
 * time limits, and envelopes full of shell metacharacters.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MODES, FakeUsers, actionOf, agent, config, message, statuses, task, tmpDir } from './delivery-helpers.js';

const RECORD = `#!/bin/sh
out="$(dirname "$0")/out"
mkdir -p "$out"
env | LC_ALL=C sort > "$out/env"
pwd > "$out/pwd"
cat > "$out/stdin"
n=0
for a in "$@"; do n=$((n+1)); printf '%s\\n' "$a" > "$out/arg$n"; done
exit 0
`;

function script(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o755);
  return p;
}

/** Running (a zombie waiting for its reaper counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/s.test(stat);
  } catch {
    return false;
  }
}

function envOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(dir, 'out', 'env'), 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

for (const privsep of MODES) {
  describe(`mda delivery (${privsep ? 'through the deliver-as helper' : 'in the daemon'})`, () => {
    function setup(t: { after(fn: () => void): void }, command: (dir: string) => string, extra: { mdaTimeoutMs?: number } = {}) {
      const dir = tmpDir(t);
      const home = join(dir, 'home');
      const c = config(`action "mda" mda "${command(dir).replace(/"/g, '\\"')}"\nmatch from any for local action "mda"\n`);
      const users = new FakeUsers({ bob: { home } });
      return { dir, home, action: actionOf(c, 'mda'), a: agent({ config: c, users, privsep, ...extra }) };
    }

    it('gives the command the message on stdin and the envelope in its environment', async (t) => {
      const { dir, home, action, a } = setup(t, (d) => script(d, 'record.sh', RECORD));
      const rs = await a.deliver(task({ action, recipients: [{ address: 'bob+ext@example.org', original: 'Robert@Example.org', dest: { kind: 'user', user: 'bob' } }], message: message({ Subject: 'to mda' }, 'From x\r\nbody\r\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      assert.equal(readFileSync(join(dir, 'out', 'stdin'), 'utf8'), 'Return-Path: <alice@example.net>\nDelivered-To: bob+ext@example.org\nSubject: to mda\n\nFrom x\nbody\n');
      const env = envOf(dir);
      const expected: Record<string, string> = {
        SENDER: 'alice@example.net',
        RECIPIENT: 'bob+ext@example.org',
        ORIGINAL_RECIPIENT: 'Robert@Example.org',
        USER: 'bob',
        LOGNAME: 'bob',
        HOME: home,
        DOMAIN: 'example.org',
        LOCAL: 'bob+ext',
        EXTENSION: 'ext',
        SHELL: '/bin/sh',
        PATH: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
      };
      for (const [k, v] of Object.entries(expected)) assert.equal(env[k], v, k);
      // Nothing of the daemon's own environment leaks through.
      const allowed = new Set([...Object.keys(expected), 'PWD', 'OLDPWD', 'SHLVL', '_']);
      assert.deepEqual(Object.keys(env).filter((k) => !allowed.has(k)), []);
      // The working directory is the user's home when it exists, else "/".
      assert.equal(readFileSync(join(dir, 'out', 'pwd'), 'utf8').trim(), '/');
    });

    it('runs in the home folder and passes format specifiers as data', async (t) => {
      const { dir, home, action, a } = setup(t, (d) => `${script(d, 'record.sh', RECORD)} %{rcpt.user:raw} '%{sender}' "%{user.directory}"`);
      const { mkdirSync } = await import('node:fs');
      mkdirSync(home);
      const rs = await a.deliver(task({ action, recipients: [{ address: 'it is; $(x)@example.org', dest: { kind: 'user', user: 'bob' } }], sender: "o'hara@example.net", message: message({ Subject: 'x' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      assert.equal(readFileSync(join(dir, 'out', 'pwd'), 'utf8').trim(), home);
      assert.equal(readFileSync(join(dir, 'out', 'arg1'), 'utf8'), 'it is; $(x)\n');
      assert.equal(readFileSync(join(dir, 'out', 'arg2'), 'utf8'), 'o:hara@example.net\n');
      assert.equal(readFileSync(join(dir, 'out', 'arg3'), 'utf8'), `${home}\n`);
    });

    it('runs a plain command without the shell, with what the shell would have given it', async (t) => {
      // The same script, once as a plain command (executed directly) and once with a quote that sends it through /bin/sh -c.
      const dir = tmpDir(t);
      const real = join(dir, 'real-home');
      const { mkdirSync, symlinkSync } = await import('node:fs');
      mkdirSync(real);
      const home = join(dir, 'home');
      symlinkSync(real, home);
      const rec = script(dir, 'record.sh', RECORD);
      const c = config(`action "plain" mda "${rec} -f - a=b x,y@z%"\naction "shell" mda "${rec} '-f' - a=b x,y@z%"\nmatch from any for local action "plain"\n`);
      const a = agent({ config: c, users: new FakeUsers({ bob: { home } }), privsep });
      const seen: string[] = [];
      for (const name of ['plain', 'shell']) {
        const rs = await a.deliver(task({ action: actionOf(c, name), recipients: ['bob+ext@example.org'], message: message({ Subject: name }, 'x\n') }));
        assert.deepEqual(statuses(rs), ['ok 2.0.0'], name);
        const out = join(dir, 'out');
        seen.push([readFileSync(join(out, 'env'), 'utf8'), readFileSync(join(out, 'pwd'), 'utf8'), ...[1, 2, 3, 4].map((i) => readFileSync(join(out, `arg${i}`), 'utf8'))].join('|'));
        rmSync(out, { recursive: true });
      }
      assert.equal(seen[0], seen[1]);
      assert.match(seen[0] ?? '', new RegExp(`\nPWD=${real}\n`));
      assert.match(seen[0] ?? '', /\|-f\n\|-\n\|a=b\n\|x,y@z%\n$/);
    });

    it('a plain command that cannot be started fails as it did through the shell', async (t) => {
      const dir = tmpDir(t);
      const c = config(`action "gone" mda "${dir}/no-such-mda -f -"\naction "gone-sh" mda "${dir}/no-such-mda '-f' -"\nmatch from any for local action "gone"\n`);
      const a = agent({ config: c, users: new FakeUsers({ bob: { home: dir } }), privsep });
      for (const name of ['gone', 'gone-sh']) {
        const rs = await a.deliver(task({ action: actionOf(c, name), recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
        assert.deepEqual(statuses(rs), ['permfail 5.3.0'], name);
        assert.match(rs[0]?.detail ?? '', /exited 127.*no-such-mda/, name);
      }
    });

    it('delivers hostile local parts as data and runs nothing', async (t) => {
      const marker = `/tmp/postern-pwned-${process.pid}`;
      rmSync(marker, { force: true });
      const { dir, action, a } = setup(t, (d) => `${script(d, 'record.sh', RECORD)} %{rcpt.user:raw} %{rcpt} %{dest.user}`);
      const evil = [`$(touch ${marker})`, `\`touch ${marker}\``, `x;touch ${marker}`, `x|touch ${marker}`, `x&&touch ${marker}`, `"$(touch ${marker})"`, `'$(touch ${marker})'`];
      for (const local of evil) {
        const rs = await a.deliver(task({ action, recipients: [{ address: `${local}@example.org`, dest: { kind: 'user', user: 'bob' } }], sender: `${local}@evil.example`, message: message({ Subject: local }, 'x\n') }));
        assert.deepEqual(statuses(rs), ['ok 2.0.0'], local);
        assert.equal(readFileSync(join(dir, 'out', 'arg1'), 'utf8'), `${local}\n`);
        assert.equal(envOf(dir).RECIPIENT, `${local}@example.org`);
        assert.equal(envOf(dir).SENDER, `${local}@evil.example`);
      }
      assert.equal(existsSync(marker), false, 'an envelope value was run as a command');
    });

    it('maps EX_TEMPFAIL and EX_OSERR to a retry, other codes to a bounce with the output', async (t) => {
      const { dir, action, a } = setup(t, (d) => script(d, 'exit.sh', '#!/bin/sh\ncat >/dev/null\necho "about to fail: $(cat "$(dirname "$0")/code")"\necho "to stderr" >&2\nexit $(cat "$(dirname "$0")/code")\n'));
      const results: string[] = [];
      for (const code of [75, 71, 1, 67, 0]) {
        writeFileSync(join(dir, 'code'), String(code));
        const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
        results.push(`${code}: ${statuses(rs)[0]}`);
        if (code !== 0) {
          assert.match(rs[0]?.detail ?? '', new RegExp(`exited ${code}.*about to fail: ${code} to stderr`));
          assert.doesNotMatch(rs[0]?.detail ?? '', /[\r\n]/);
        }
      }
      assert.deepEqual(results, ['75: tempfail 4.3.0', '71: tempfail 4.3.0', '1: permfail 5.3.0', '67: permfail 5.1.1', '0: ok 2.0.0']);
    });

    it('bounds the captured output', async (t) => {
      const { action, a } = setup(t, () => `yes 'lots of output' | head -c 200000; exit 1`);
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['permfail 5.3.0']);
      assert.ok((rs[0]?.detail.length ?? 0) <= 512);
    });

    it('copes with a command that does not read its input', async (t) => {
      const { action, a } = setup(t, () => 'exit 0');
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'big' }, `${'z'.repeat(999)}\n`.repeat(2000)) }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
    });

    it('kills the whole process group past the time limit and retries later', async (t) => {
      const { dir, action, a } = setup(t, (d) => `sleep 30 & echo $! > ${d}/bg.pid; echo started; sleep 30`, { mdaTimeoutMs: 700 });
      const t0 = Date.now();
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['tempfail 4.3.0']);
      assert.match(rs[0]?.detail ?? '', /timed out.*started/);
      assert.ok(Date.now() - t0 < 10_000);
      const pid = Number(readFileSync(join(dir, 'bg.pid'), 'utf8'));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(pid), false, 'the background child survived');
    });

    it('stops when the task is aborted', async (t) => {
      const { action, a } = setup(t, () => 'sleep 30');
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 150);
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n'), signal: ac.signal }));
      assert.deepEqual(statuses(rs), ['tempfail 4.3.0']);
      assert.match(rs[0]?.detail ?? '', /interrupted/);
    });

    it('pipes to an aliases(5) |command destination as its user', async (t) => {
      const { dir, action, a } = setup(t, () => 'false');
      const out = join(dir, 'piped');
      const rs = await a.deliver(task({ action, recipients: [{ address: 'list@example.org', dest: { kind: 'command', command: `cat > ${out}; echo "$RECIPIENT" >> ${out}`, user: 'bob' } }], message: message({ Subject: 'piped' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      assert.equal(readFileSync(out, 'utf8'), 'Return-Path: <alice@example.net>\nDelivered-To: list@example.org\nSubject: piped\n\nx\nlist@example.org\n');
    });

    it('refuses configuration it cannot honour', async (t) => {
      const dir = tmpDir(t);
      const c = config(`action "w" mda "cat" wrapper "x"\naction "bad" mda "cat %{nope}"\nmatch from any for local action "w"\nmatch from any for local action "bad"\n`);
      const a = agent({ config: c, users: new FakeUsers({ bob: { home: dir } }), privsep });
      for (const name of ['w', 'bad']) {
        const rs = await a.deliver(task({ action: actionOf(c, name), recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
        assert.deepEqual(statuses(rs), ['tempfail 4.3.5'], name);
      }
    });
  });
}
