/*
 * test/unit/privsep-log-pipe.test.ts — the SMTP side's mail log on its way
 * to the privileged parent (daemon/privsep/log-pipe.ts): lines in order,
 * whatever the chunks; what the parent writes is checked, not trusted; a
 * child that writes faster than its parent reads never blocks and loses
 * nothing (a real process and a real pipe at fd 4).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { encodeLine, LOG_FD, MAX_LINE, readLogPipe } from '../../src/daemon/privsep/log-pipe.js';
import type { Severity } from '../../src/log/maillog.js';

async function read(chunks: readonly (string | Buffer)[]): Promise<[string, Severity][]> {
  const p = new PassThrough();
  const got: [string, Severity][] = [];
  const done = readLogPipe(p, (line, sev) => got.push([line, sev]));
  for (const c of chunks) p.write(c);
  p.end();
  await done;
  return got;
}

describe('privsep: the log pipe', () => {
  it('gives the lines back in order, with their severities, across chunk boundaries', async () => {
    const text = encodeLine(6, 'smtp connected session=1 address=127.0.0.1') + encodeLine(4, 'warning: déjà vu') + encodeLine(3, 'error: x');
    const bytes = Buffer.from(text);
    // Cut everywhere, in the middle of the two-byte é too.
    for (let i = 1; i < bytes.length; i++) {
      assert.deepEqual(await read([bytes.subarray(0, i), bytes.subarray(i)]), [
        ['smtp connected session=1 address=127.0.0.1', 6],
        ['warning: déjà vu', 4],
        ['error: x', 3],
      ]);
    }
  });
  it('trusts nothing: an unknown severity is info, control characters never reach the log, a long line is cut', async () => {
    const got = await read(['0emergency\n', '9x\r\x1b[2J\n', '\n', `6${'a'.repeat(MAX_LINE + 10)}\n`, '6no newline at the end']);
    assert.deepEqual(got.slice(0, 2), [
      ['emergency', 6],
      ['x??[2J', 6],
    ]);
    assert.equal(got[2]?.[0], 'a'.repeat(MAX_LINE));
    assert.equal(got[3]?.[0], 'a'.repeat(10));
    assert.deepEqual(got[4], ['no newline at the end', 6]);
    assert.equal(got.length, 5);
  });
});

describe('privsep: the log pipe between two processes', () => {
  it('a parent that does not read: the child goes on, and every line arrives in order once it reads', async () => {
    const mod = new URL('../../src/daemon/privsep/log-pipe.js', import.meta.url).href;
    // 4,000 lines of 1 KB, far more than the pipe holds; "queued" once the loop is over (it would never come if a write blocked).
    const script = `import { LogPipeWriter, encodeLine } from ${JSON.stringify(mod)};
const w = LogPipeWriter.open();
let last;
for (let i = 0; i < 4000; i++) last = w.write(encodeLine(6, 'line ' + i + ' ' + 'x'.repeat(1000)));
process.stderr.write('queued');
await last;`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    // Taken now: the parent may hear of the exit before it has read the pipe to its end.
    const exited = new Promise((r) => child.once('exit', r));
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the child did not get through its writes: ${err}`)), 20_000);
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('queued')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const got: string[] = [];
    await readLogPipe(child.stdio[LOG_FD] as Readable, (line, sev) => {
      assert.equal(sev, 6);
      got.push(line.split(' ')[1] as string);
    });
    await exited;
    assert.deepEqual(got, Array.from({ length: 4000 }, (_, i) => String(i)));
  });
});
