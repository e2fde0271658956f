/*
 * wire/proxy-v2.ts — the PROXY protocol version 2 header (HAProxy's
 * proxy-protocol.txt, §2.2) that a load balancer or proxy in front of a
 * listener with `proxy-v2` sends before anything else, to tell the real
 * client's address.
 *
 * A pure function over the bytes received so far, fed again as more arrive:
 * 'incomplete' until the whole header is there (and no sooner 'invalid'
 * than the first byte that proves it), then how long it was and what it
 * said. The signature is checked byte by byte as it arrives, so a client
 * speaking SMTP or PROXY version 1 to such a listener is refused at once.
 *
 *   12 bytes  signature \r\n\r\n\0\r\nQUIT\n
 *    1 byte   version (high nibble, 2) and command (LOCAL 0, PROXY 1)
 *    1 byte   family (UNSPEC 0, INET 1, INET6 2, UNIX 3) and transport (UNSPEC 0, STREAM 1, DGRAM 2)
 *    2 bytes  length of what follows (network order)
 *   INET: source, destination (4 bytes each), source port, destination port;
 *   INET6: the same with 16-byte addresses; then TLVs, which are skipped.
 *
 * LOCAL (the proxy's own health checks), and PROXY with an unspecified or
 * UNIX family, mean "use the connection's own endpoints".
 */
import ipaddr from 'ipaddr.js';

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED = 16;
/** Longest header accepted, TLVs included (the spec's own advice for a receiver's buffer is 536). */
export const PROXY_V2_MAX = 4096;

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

export type ProxyV2 =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** The connection's own endpoints stand. */
  | { readonly kind: 'local'; readonly length: number }
  | { readonly kind: 'proxy'; readonly length: number; readonly source: Endpoint; readonly destination: Endpoint };

export function parseProxyV2(buf: Uint8Array): ProxyV2 {
  const have = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < have; i++) if (buf[i] !== PROXY_V2_SIGNATURE[i]) return { kind: 'invalid', reason: 'no PROXY protocol v2 signature' };
  if (buf.length < 13) return { kind: 'incomplete' };
  const verCmd = buf[12] as number;
  if (verCmd >> 4 !== 2) return { kind: 'invalid', reason: `PROXY protocol version ${verCmd >> 4}, not 2` };
  const command = verCmd & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: `unknown PROXY command ${command}` };
  if (buf.length < FIXED) return { kind: 'incomplete' };
  const famTrans = buf[13] as number;
  const family = famTrans >> 4;
  const transport = famTrans & 0x0f;
  const rest = ((buf[14] as number) << 8) | (buf[15] as number);
  const length = FIXED + rest;
  if (length > PROXY_V2_MAX) return { kind: 'invalid', reason: `PROXY header of ${length} bytes (at most ${PROXY_V2_MAX})` };
  if (family > 3 || transport > 2) return { kind: 'invalid', reason: `unknown address family ${family} or transport ${transport}` };
  if (buf.length < length) return { kind: 'incomplete' };
  if (command === 0 || family === 0 || family === 3) return { kind: 'local', length };
  if (transport !== 1) return { kind: 'invalid', reason: 'a PROXY header for a datagram connection' };
  const size = family === 1 ? 4 : 16;
  if (rest < 2 * size + 4) return { kind: 'invalid', reason: `an address block of ${rest} bytes is too short for its family` };
  const at = FIXED;
  const source = { address: addressText(buf.subarray(at, at + size)), port: port(buf, at + 2 * size) };
  const destination = { address: addressText(buf.subarray(at + size, at + 2 * size)), port: port(buf, at + 2 * size + 2) };
  return { kind: 'proxy', length, source, destination };
}

function port(buf: Uint8Array, at: number): number {
  return ((buf[at] as number) << 8) | (buf[at + 1] as number);
}

/** Dotted quad, or RFC 5952 text; an IPv4-mapped IPv6 address as the IPv4 address it maps. */
function addressText(bytes: Uint8Array): string {
  const a = ipaddr.fromByteArray([...bytes]);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address().toString();
  return a.toString();
}
