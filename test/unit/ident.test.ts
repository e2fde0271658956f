/*
 * net/ident.ts — the RFC 1413 client: the query and reply grammar as a
 * table, and the socket adapter against a small identd on loopback
 * (answers, errors, silence until the deadline). Debian's oidentd is
 * exercised in test/e2e/ident-oidentd.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { identLookup as lookup, identUser, parseIdentReply, type IdentQuery } from '../../src/net/ident.js';

/** The user the answer names, as the rules file sees it. */
const parseReply = (line: string, c: number, l: number): string | undefined => identUser(parseIdentReply(line, c, l));
const identLookup = async (q: { address: string; clientPort: number; localPort: number; port: number; timeoutMs?: number }): Promise<string | undefined> =>
  identUser(await lookup({ remoteAddress: q.address, remotePort: q.clientPort, localPort: q.localPort, identPort: q.port, ...(q.timeoutMs !== undefined ? { timeoutMs: q.timeoutMs } : {}) } satisfies IdentQuery));

test('reply lines', () => {
  const table: [string, string | undefined][] = [
    ['6191 , 25 : USERID : UNIX : joe', 'joe'],
    ['6191,25:USERID:UNIX:joe', 'joe'],
    ['6191, 25 : USERID : OTHER : 4f2a', '4f2a'],
    ['6191, 25 : USERID : UNIX,US-ASCII : a:b', 'a:b'],
    ['6191, 25 : USERID : UNIX :   spaced  ', 'spaced'],
    ['6191, 25 : ERROR : NO-USER', undefined],
    ['6191, 25 : ERROR : HIDDEN-USER', undefined],
    ['6192, 25 : USERID : UNIX : joe', undefined],
    ['6191, 26 : USERID : UNIX : joe', undefined],
    ['6191, 25 : USERID : : joe', 'joe'],
    ['6191, 25 : USERID : UNIX : ', undefined],
    ['6191, 25 : USERID : UNIX : j\x00o\x1be', 'joe'],
    ['garbage', undefined],
    [`6191, 25 : USERID : UNIX : ${'x'.repeat(513)}`, 'x'.repeat(64)],
  ];
  for (const [line, want] of table) assert.equal(parseReply(line, 6191, 25), want, line);
});

function identd(answer: (query: string) => string | null): Promise<{ server: Server; port: number; queries: string[] }> {
  const queries: string[] = [];
  const server = createServer((s) => {
    s.setEncoding('latin1');
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n')) return;
      queries.push(buf);
      const a = answer(buf.trim());
      if (a !== null) s.end(a);
    });
    s.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, queries })));
}

test('identLookup asks the client\'s identd and reads its answer', async () => {
  const d = await identd((q) => `${q} : USERID : UNIX : alice\r\n`);
  try {
    assert.equal(await identLookup({ address: '127.0.0.1', clientPort: 40000, localPort: 25, port: d.port }), 'alice');
    assert.deepEqual(d.queries, ['40000 , 25\r\n'], 'the client\'s port first');
  } finally {
    d.server.close();
  }
});

test('an ERROR, a reply without a line end, a refused connection: no user', async () => {
  const e = await identd((q) => `${q} : ERROR : NO-USER\r\n`);
  const noNl = await identd((q) => `${q} : USERID : UNIX : bob`);
  try {
    assert.equal(await identLookup({ address: '127.0.0.1', clientPort: 1, localPort: 25, port: e.port }), undefined);
    assert.equal(await identLookup({ address: '127.0.0.1', clientPort: 1, localPort: 25, port: noNl.port }), 'bob');
  } finally {
    e.server.close();
    noNl.server.close();
  }
  const closed = await identd(() => null);
  const port = closed.port;
  closed.server.close();
  assert.equal(await identLookup({ address: '127.0.0.1', clientPort: 1, localPort: 25, port }), undefined);
});

test('a silent identd costs the deadline, no more', async () => {
  const d = await identd(() => null);
  try {
    const t0 = Date.now();
    assert.equal(await identLookup({ address: '127.0.0.1', clientPort: 1, localPort: 25, port: d.port, timeoutMs: 300 }), undefined);
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
  } finally {
    d.server.close();
  }
});
