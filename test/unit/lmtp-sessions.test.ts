/*
 * test/unit/lmtp-sessions.test.ts — the cache of idle LMTP sessions
 * (lmtp-connection.ts LmtpSessions), over real loopback sockets: a kept
 * session is handed out again for its key only; it says QUIT when its idle
 * time is up, when there are too many, or when the daemon stops; one that
 * spoke while idle (a 421 before a hang-up) or was closed is never reused.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { LmtpSessions, openSession, type LmtpSession } from '../../src/delivery/local/lmtp-connection.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A minimal LMTP server: greets, answers LHLO, counts QUITs; `sockets` lets a test speak out of turn. */
async function server(t: { after(fn: () => void): void }): Promise<{ destination: string; quits: () => number; sockets: Socket[] }> {
  let quits = 0;
  const sockets: Socket[] = [];
  const srv: Server = createServer((s) => {
    sockets.push(s);
    s.write('220 hi\r\n');
    s.on('data', (d: Buffer) => {
      for (const line of d.toString('latin1').split('\r\n').filter((l) => l !== '')) {
        if (line.startsWith('LHLO')) s.write('250-hi\r\n250 PIPELINING\r\n');
        else if (line === 'QUIT') {
          quits++;
          s.end('221 bye\r\n');
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { destination: `127.0.0.1:${(srv.address() as { port: number }).port}`, quits: () => quits, sockets };
}

async function open(destination: string, key = 'k'): Promise<LmtpSession> {
  const s = await openSession(key, destination, 'me', { connectTimeoutMs: 2000, replyTimeoutMs: 2000 });
  assert.ok(!('refused' in s));
  return s;
}

describe('idle LMTP sessions', () => {
  it('hands a kept session out again, for its key only', async (t) => {
    const { destination } = await server(t);
    const cache = new LmtpSessions(5000, 4);
    const s = await open(destination);
    assert.ok(s.ext.has('PIPELINING'));
    cache.put(s);
    assert.equal(cache.size, 1);
    assert.equal(cache.take('other'), undefined);
    assert.equal(cache.take('k'), s);
    assert.equal(cache.size, 0);
    cache.put(s);
    cache.close();
  });

  it('says QUIT when the idle time is up, past the limit of idle sessions, and when the daemon stops', async (t) => {
    const { destination, quits } = await server(t);
    const cache = new LmtpSessions(150, 2);
    const [a, b, c] = [await open(destination), await open(destination), await open(destination)];
    cache.put(a);
    cache.put(b);
    cache.put(c); // one too many
    assert.equal(cache.size, 2);
    await sleep(400);
    assert.equal(cache.size, 0);
    assert.equal(quits(), 3);
    const long = new LmtpSessions(60_000, 2);
    long.put(await open(destination));
    long.close();
    await sleep(100);
    assert.equal(quits(), 4);
  });

  it('never reuses a session that spoke while idle or was closed', async (t) => {
    const { destination, sockets } = await server(t);
    const cache = new LmtpSessions(5000, 4);
    const spoke = await open(destination, 'spoke');
    cache.put(spoke);
    sockets[0]?.write('421 4.4.2 idle too long\r\n');
    const closed = await open(destination, 'closed');
    cache.put(closed);
    sockets[1]?.destroy();
    await sleep(100);
    assert.equal(cache.take('spoke'), undefined);
    assert.equal(cache.take('closed'), undefined);
    assert.equal(cache.size, 0);
  });
});
