/*
 * test/helpers/proxy-v2.ts — PROXY protocol v2 headers made by hand, for
 * the parser's tests and for clients that pose as a proxy.
 */
import { PROXY_V2_SIGNATURE } from '../../src/wire/proxy-v2.js';

/** A header: command (0 LOCAL, 1 PROXY), family/transport byte, address block, TLV bytes. */
export function proxyV2Header(command: number, famTrans: number, block: readonly number[], tlvs: readonly number[] = []): Buffer {
  const rest = block.length + tlvs.length;
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20 | command, famTrans, rest >> 8, rest & 0xff, ...block, ...tlvs])]);
}
