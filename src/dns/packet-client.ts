/*
 * dns/packet-client.ts — one DNS question to one server, written and read
 * with dns-packet (docs/architecture.md says why: Node's dns module gives
 * neither the AD bit nor the TTL of TXT and MX records), over UDP with an
 * EDNS0 OPT (1232-byte payload), again over TCP when the answer comes back
 * truncated. Used for DANE's DNSSEC-validated answers
 * (transport-security/dnssec-client.ts: RD+AD and DO) and for the
 * TTL-honouring cache of the mail-authentication and sender checks
 * (ttl-cache.ts: RD only).
 *
 * Results are values: the whole answer ({ rcode, ad, answers,
 * authorities }) or an error with the reason (timeout, malformed answer,
 * unreachable server, an answer to another question). Answers from another
 * address or with another id are dropped (spoofing attempts).
 */
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';

export interface DnsServer {
  readonly address: string;
  readonly port: number;
}

export type PacketAnswer =
  | { readonly kind: 'answer'; readonly rcode: string; readonly ad: boolean; readonly answers: readonly packet.Answer[]; readonly authorities: readonly packet.Answer[] }
  | { readonly kind: 'error'; readonly reason: string };

type Raw = { kind: 'packet'; p: packet.DecodedPacket } | { kind: 'error'; reason: string };

/** "IP", "IP:PORT", "[IPv6]:PORT" → address and port (53 by default). */
export function parseServer(text: string): DnsServer {
  const m6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (m6 !== null) return { address: m6[1] as string, port: Number(m6[2] ?? 53) };
  if (isIP(text) === 6) return { address: text, port: 53 };
  const [address, port] = text.split(':');
  return { address: address as string, port: Number(port ?? 53) };
}

/** Ask `server` one question; `dnssec` sets AD in the query and DO in its OPT (RFC 6840 §5.7, RFC 3225). */
export async function queryServer(server: DnsServer, timeoutMs: number, name: string, type: packet.RecordType, dnssec: boolean): Promise<PacketAnswer> {
  const id = randomInt(0, 65536);
  if (!writableName(name)) return { kind: 'error', reason: `${type} ${name}: bad name (a label over 63 bytes or a name over 253)` };
  let query: Buffer;
  try {
    query = packet.encode({
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED | (dnssec ? packet.AUTHENTIC_DATA : 0),
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnssec ? packet.DNSSEC_OK : 0 } as packet.Answer],
    });
  } catch (e) {
    return { kind: 'error', reason: `${type} ${name}: bad name (${(e as Error).message})` };
  }
  let res = await udp(server, timeoutMs, query, id);
  if (res.kind === 'packet' && res.p.flag_tc) res = await tcp(server, timeoutMs, query, id);
  if (res.kind === 'error') return { kind: 'error', reason: `${type} ${name} at ${server.address}:${server.port}: ${res.reason}` };
  const p = res.p;
  const q = p.questions?.[0];
  if (q === undefined || q.name.toLowerCase() !== name.toLowerCase().replace(/\.$/, '') || q.type !== type) {
    return { kind: 'error', reason: `${type} ${name}: the answer is for another question` };
  }
  return { kind: 'answer', rcode: (p as { rcode?: string }).rcode ?? 'NOERROR', ad: p.flag_ad, answers: p.answers ?? [], authorities: p.authorities ?? [] };
}

function udp(server: DnsServer, timeoutMs: number, query: Buffer, id: number): Promise<Raw> {
  return new Promise((resolve) => {
    const sock = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const done = (r: Raw): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    const timer = setTimeout(() => done({ kind: 'error', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    sock.on('error', (e) => done({ kind: 'error', reason: e.message }));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== server.address || rinfo.port !== server.port) return;
      const p = decode(msg);
      if (p === undefined) return done({ kind: 'error', reason: 'malformed DNS answer' });
      if (p.id !== id) return; // not ours: keep waiting (spoofing attempts are dropped)
      done({ kind: 'packet', p });
    });
    // A connected socket, as c-ares uses: a server that is down answers with ICMP "port unreachable", which only a connected socket hears (ECONNREFUSED at once rather than a timeout).
    sock.connect(server.port, server.address, () => {
      if (settled) return;
      sock.send(query, (e) => {
        if (e) done({ kind: 'error', reason: e.message });
      });
    });
  });
}

function tcp(server: DnsServer, timeoutMs: number, query: Buffer, id: number): Promise<Raw> {
  return new Promise((resolve) => {
    const sock = connect({ host: server.address, port: server.port });
    let settled = false;
    let buf = Buffer.alloc(0);
    const done = (r: Raw): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ kind: 'error', reason: `no answer over TCP within ${timeoutMs} ms` }), timeoutMs);
    sock.on('error', (e) => done({ kind: 'error', reason: e.message }));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length < n + 2) return;
      const p = decode(buf.subarray(2, n + 2));
      if (p === undefined || p.id !== id) return done({ kind: 'error', reason: 'malformed DNS answer over TCP' });
      done({ kind: 'packet', p });
    });
    sock.on('end', () => done({ kind: 'error', reason: 'the resolver closed the TCP connection' }));
  });
}

/** Whether the name fits a DNS message (RFC 1035 §2.3.4); dns-packet would write a longer label as garbage. */
function writableName(name: string): boolean {
  const n = name.replace(/\.$/, '');
  return Buffer.byteLength(n) <= 253 && n.split('.').every((l) => Buffer.byteLength(l) <= 63);
}

function decode(msg: Buffer): packet.DecodedPacket | undefined {
  try {
    return packet.decode(msg);
  } catch {
    return undefined;
  }
}
