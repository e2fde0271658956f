/*
 * What ships for monitoring (etc/monitoring/) against the real daemon:
 * the alerting rules and the example Prometheus configuration pass
 * promtool (and the rules their unit tests, postern-alerts.test.yml); every metric the rules and the Grafana dashboard name is one
 * the daemon exports; HTTPS with `tls pki NAME` serves the certificate's
 * expiry; a token file that cannot be read stops the daemon at start with
 * a message that says which.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';
import { makeCert } from '../helpers/certs.js';
import { REPO, basicConfig, startDaemon, tempDir } from '../helpers/daemon.js';
import { READER, call, startHttpDaemon } from './http-helpers.js';

const MON = join(REPO, 'etc/monitoring');

function promtool(args: string[]): string {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'promtool must be installed (Debian package prometheus)');
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('the alerting rules and the Prometheus example pass promtool', () => {
  assert.match(promtool(['check', 'rules', join(MON, 'postern-alerts.yml')]), /SUCCESS: \d+ rules found/);
  // The rules' own unit tests: a certificate 10 days from expiry, a growing queue, half the attempts deferred.
  assert.match(promtool(['test', 'rules', join(MON, 'postern-alerts.test.yml')]), /SUCCESS/);
  const dir = tempDir('postern-prom-');
  writeFileSync(join(dir, 'postern.token'), READER);
  writeFileSync(join(dir, 'postern-alerts.yml'), readFileSync(join(MON, 'postern-alerts.yml')));
  writeFileSync(join(dir, 'prometheus.yml'), readFileSync(join(MON, 'prometheus.yml'), 'utf8').replace('/etc/prometheus/postern.token', join(dir, 'postern.token')));
  promtool(['check', 'config', join(dir, 'prometheus.yml')]);
});

test('every metric the rules and the Grafana dashboard use is exported', async () => {
  const { d, base } = await startHttpDaemon();
  try {
    const text = (await call(base, '/metrics', READER)).body;
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1] as string])));
    const dash = JSON.parse(readFileSync(join(MON, 'grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = [...dash.panels.flatMap((p) => p.targets.map((t) => t.expr)), readFileSync(join(MON, 'postern-alerts.yml'), 'utf8')];
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:postern|nodejs|process)_[a-z0-9_]+)/g)].map((m) => m[1] as string)));
    assert.ok(used.size > 15);
    for (const name of used) assert.ok(exported.has(name), `${name} is used but not exported`);
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('HTTPS with tls pki, and the certificate expiry metric', async () => {
  const dir = tempDir('postern-https-');
  const c = makeCert(dir, 'mx.test.example');
  writeFileSync(join(dir, 'reader.token'), `${READER}\n`, { mode: 0o600 });
  const d = await startDaemon(
    basicConfig(`pki mx cert "${c.cert}"\npki mx key "${c.key}"\nhttp listen on 127.0.0.1 port 0 tls pki mx\nhttp token viewer file "$DIR/reader.token" role read-only`),
    { dir },
  );
  try {
    const port = Number(/port (\d+)/.exec(await d.waitForLog(/http listener on .* \(https;/))?.[1]);
    const body = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/metrics', servername: 'mx.test.example', ca: readFileSync(c.cert), checkServerIdentity: () => undefined, headers: { Authorization: `Bearer ${READER}` } }, (res) => {
        let b = '';
        res.on('data', (x: Buffer) => (b += x.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`HTTP ${res.statusCode}: ${b}`))));
      }).on('error', reject);
    });
    const m = /^postern_certificate_expiry_timestamp_seconds\{pki="mx"\} (\d+)$/m.exec(body);
    assert.ok(m, body);
    const days = (Number(m[1]) - Date.now() / 1000) / 86400;
    assert.ok(days > 1 && days <= 2, `the test certificate lives 2 days (${days})`);
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('a token file that cannot be read: the daemon refuses to start and says which', async () => {
  await assert.rejects(
    startDaemon(basicConfig('http listen on 127.0.0.1 port 0\nhttp token ops file "$DIR/missing.token" role admin')),
    /smtpd\.conf:\d+: http token "ops": cannot read \S+missing\.token: ENOENT/,
  );
});
