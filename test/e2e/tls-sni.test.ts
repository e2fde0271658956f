/*
 * Several certificates chosen by SNI, and certificates re-read on reload
 * (SIGHUP) without a restart — checked with openssl s_client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, tempDir } from '../helpers/daemon.js';
import { makeCert } from '../helpers/certs.js';
import { requireTool, run } from '../helpers/tools.js';

async function subjectFor(port: number, servername: string): Promise<string> {
  const r = await run(requireTool('openssl'), ['s_client', '-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', '-servername', servername], { input: 'QUIT\r\n', timeoutMs: 15_000 });
  return /subject=\s*CN\s*=\s*(\S+)/.exec(r.stdout)?.[1] ?? `(none in: ${r.stdout.slice(0, 300)})`;
}

test('SNI picks the certificate of that name; others get the default; reload re-reads the files', async () => {
  const dir = tempDir();
  makeCert(dir, 'mx.one.example');
  makeCert(dir, 'mx.two.example');
  const d = await startDaemon(
    `queue path "$DIR/spool"
hostname "mx.one.example"
pki mx.one.example cert "$DIR/mx.one.example.crt"
pki mx.one.example key "$DIR/mx.one.example.key"
pki mx.two.example cert "$DIR/mx.two.example.crt"
pki mx.two.example key "$DIR/mx.two.example.key"
listen on 127.0.0.1 port 0 tls
action "local" mbox
match from local for local action "local"
`,
    { dir },
  );
  try {
    assert.equal(await subjectFor(d.port, 'mx.two.example'), 'mx.two.example');
    assert.equal(await subjectFor(d.port, 'mx.one.example'), 'mx.one.example');
    assert.equal(await subjectFor(d.port, 'unknown.example'), 'mx.one.example');

    // Replace mx.two.example's files with a certificate for another name: after SIGHUP it is served.
    const other = tempDir();
    const fresh = makeCert(other, 'renewed.two.example');
    await run('cp', [fresh.cert, `${dir}/mx.two.example.crt`]);
    await run('cp', [fresh.key, `${dir}/mx.two.example.key`]);
    d.proc.kill('SIGHUP');
    await d.waitForLog(/configuration reloaded/);
    const port = Number(d.logs.map((l) => /listening on 127\.0\.0\.1 port (\d+)/.exec(l)?.[1]).filter((x) => x).at(-1));
    assert.equal(await subjectFor(port, 'mx.two.example'), 'renewed.two.example');
  } finally {
    await d.stop();
    d.cleanup();
  }
});
