/*
 * test/unit/wire-proxy-v2.test.ts — the PROXY protocol v2 header parser
 * (wire/proxy-v2.ts): every prefix of a header is 'incomplete' (or, past
 * a wrong byte, 'invalid'), the whole one says who the client is, and
 * whatever follows is not its business.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROXY_V2_MAX, PROXY_V2_SIGNATURE, parseProxyV2 } from '../../src/wire/proxy-v2.js';
import { proxyV2Header } from '../helpers/proxy-v2.js';

const inet = [192, 0, 2, 55, 203, 0, 113, 7, 0x11, 0x5c, 0x00, 0x19]; // 192.0.2.55:4444 → 203.0.113.7:25
const inet6 = [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 0x01, 0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 0x02, 0x04, 0xd2, 0x02, 0x4b];

describe('PROXY protocol v2 header', () => {
  it('IPv4 over TCP: the client and the address it reached; incomplete at every split before the end', () => {
    const h = proxyV2Header(1, 0x11, inet, [0x04, 0x00, 0x01, 0x00]); // a NOOP TLV is skipped
    const withSmtp = Buffer.concat([h, Buffer.from('EHLO x\r\n')]);
    for (let n = 0; n < h.length; n++) assert.deepEqual(parseProxyV2(withSmtp.subarray(0, n)), { kind: 'incomplete' }, `at ${n}`);
    for (let n = h.length; n <= withSmtp.length; n++) {
      assert.deepEqual(parseProxyV2(withSmtp.subarray(0, n)), { kind: 'proxy', length: h.length, source: { address: '192.0.2.55', port: 4444 }, destination: { address: '203.0.113.7', port: 25 } }, `at ${n}`);
    }
  });

  it('IPv6, and an IPv4-mapped IPv6 source as the IPv4 address', () => {
    assert.deepEqual(parseProxyV2(proxyV2Header(1, 0x21, inet6)), { kind: 'proxy', length: 16 + 36, source: { address: '2001:db8::1', port: 1234 }, destination: { address: '2001:db8::2', port: 587 } });
    const mapped = [...Array<number>(10).fill(0), 0xff, 0xff, 198, 51, 100, 9, ...Array<number>(10).fill(0), 0xff, 0xff, 127, 0, 0, 1, 0, 80, 0, 25];
    const r = parseProxyV2(proxyV2Header(1, 0x21, mapped));
    assert.equal(r.kind === 'proxy' ? r.source.address : r.kind, '198.51.100.9');
  });

  it('LOCAL, UNSPEC and UNIX keep the connection\'s own endpoints', () => {
    assert.deepEqual(parseProxyV2(proxyV2Header(0, 0x00, [])), { kind: 'local', length: 16 });
    assert.deepEqual(parseProxyV2(proxyV2Header(0, 0x11, inet)), { kind: 'local', length: 28 });
    assert.deepEqual(parseProxyV2(proxyV2Header(1, 0x00, [])), { kind: 'local', length: 16 });
    assert.deepEqual(parseProxyV2(proxyV2Header(1, 0x31, Array<number>(216).fill(0))), { kind: 'local', length: 232 });
  });

  it('refuses SMTP, PROXY v1, other versions and commands, datagrams, short blocks and huge headers, as soon as it can tell', () => {
    const invalid = (b: Buffer | string): string => {
      const r = parseProxyV2(typeof b === 'string' ? Buffer.from(b) : b);
      return r.kind === 'invalid' ? r.reason : r.kind;
    };
    assert.equal(invalid('E'), 'no PROXY protocol v2 signature');
    assert.equal(invalid('PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n'), 'no PROXY protocol v2 signature');
    assert.equal(invalid(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])), 'no PROXY protocol v2 signature');
    assert.match(invalid(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x11])])), /version 1, not 2/);
    assert.match(invalid(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x22])])), /unknown PROXY command 2/);
    assert.match(invalid(proxyV2Header(1, 0x12, inet)), /datagram/);
    assert.match(invalid(proxyV2Header(1, 0x11, inet.slice(0, 8))), /too short/);
    assert.match(invalid(proxyV2Header(1, 0x41, inet)), /unknown address family 4/);
    const huge = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    assert.match(invalid(huge), new RegExp(`at most ${PROXY_V2_MAX}`));
  });
});
