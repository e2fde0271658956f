/*
 * test/unit/wire-header-scan.test.ts — HeaderScanner (src/wire/header-scan.ts):
 * a table of contents -> (inHeaders, receivedCount), fed whole, at every
 * split point and byte by byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderScanner } from '../../src/wire/header-scan.js';
import { bytes, cuts } from './wire-harness.js';

function scan(chunks: Buffer[]): { inHeaders: boolean; received: number } {
  const h = new HeaderScanner();
  for (const c of chunks) h.push(c);
  return { inHeaders: h.inHeaders, received: h.receivedCount };
}

const CASES: { input: string; inHeaders: boolean; received: number }[] = [
  { input: '', inHeaders: true, received: 0 },
  { input: '\r\n', inHeaders: false, received: 0 },
  { input: '\r\nReceived: x\r\n', inHeaders: false, received: 0 },
  { input: 'Received: from a\r\n\tby b\r\n', inHeaders: true, received: 1 },
  {
    input:
      'Received: a\r\nreceived : b\r\nRECEIVED:c\r\nReceived\t \t: d\r\n' +
      'X-Received: e\r\n Received: f\r\nReceived-SPF: pass\r\nReceivedx: g\r\nReceive: h\r\n' +
      'Subject: Received: i\r\nReceived\r\n: j\r\n' +
      '\r\nReceived: body\r\n',
    inHeaders: false,
    received: 4,
  },
  { input: 'Subject: x\r\n\r', inHeaders: true, received: 0 },
  { input: 'Subject: x\r\n\rReceived: y\r\n', inHeaders: true, received: 0 },
  { input: 'Subject: x\r\n\n', inHeaders: false, received: 0 },
  { input: 'Received:', inHeaders: true, received: 1 },
  { input: ('Received: hop\r\n').repeat(40) + '\r\n' + ('Received: no\r\n').repeat(5), inHeaders: false, received: 40 },
];

for (const c of CASES) {
  test(`HeaderScanner ${JSON.stringify(c.input.slice(0, 60))}`, () => {
    for (const cut of cuts(bytes(c.input))) {
      assert.deepEqual(scan(cut.chunks), { inHeaders: c.inHeaders, received: c.received }, cut.name);
    }
  });
}
