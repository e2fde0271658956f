/*
 * transport-security/dnssec-client.ts — DNS queries that tell whether the
 * answer was DNSSEC-validated: the AD ("authentic data") bit of the
 * response of a validating resolver (RFC 4035 §3.2.3, RFC 6840 §5.7).
 *
 * Node's dns module does not expose the AD bit, so the query is written
 * and read with dns-packet (docs/architecture.md says why) and sent over
 * UDP to the configured resolver, again over TCP when the answer comes
 * back truncated. The query sets RD and AD and an EDNS0 OPT with DO.
 * The AD bit is believed only because the administrator marked this
 * resolver trusted (`mta dane resolver … trusted`: a validating resolver
 * on this host or reached over a path no one else can write to); the
 * caller does not ask otherwise.
 *
 * Results are values: { rcode, secure, answers } or an error with the
 * reason (timeout, malformed answer, unreachable resolver).
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';

export interface DnssecServer {
  readonly address: string;
  readonly port: number;
}

export type DnssecAnswer =
  | { readonly kind: 'answer'; readonly rcode: string; readonly secure: boolean; readonly answers: readonly packet.Answer[] }
  | { readonly kind: 'error'; readonly reason: string };

/** "IP", "IP:PORT", "[IPv6]:PORT" → address and port (53 by default). */
export function parseServer(text: string): DnssecServer {
  const m6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (m6 !== null) return { address: m6[1] as string, port: Number(m6[2] ?? 53) };
  if (isIP(text) === 6) return { address: text, port: 53 };
  const [address, port] = text.split(':');
  return { address: address as string, port: Number(port ?? 53) };
}

export class DnssecClient {
  constructor(
    private readonly server: DnssecServer,
    private readonly timeoutMs: number,
  ) {}

  async query(name: string, type: packet.RecordType): Promise<DnssecAnswer> {
    const id = randomInt(0, 65536);
    const query = packet.encode({
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: packet.DNSSEC_OK } as packet.Answer],
    });
    let res = await this.udp(query, id);
    if (res.kind === 'packet' && res.p.flag_tc) res = await this.tcp(query, id);
    if (res.kind === 'error') return { kind: 'error', reason: `${type} ${name} at ${this.server.address}:${this.server.port}: ${res.reason}` };
    const p = res.p;
    const q = p.questions?.[0];
    if (q === undefined || q.name.toLowerCase() !== name.toLowerCase().replace(/\.$/, '') || q.type !== type) {
      return { kind: 'error', reason: `${type} ${name}: the answer is for another question` };
    }
    return { kind: 'answer', rcode: (p as { rcode?: string }).rcode ?? 'NOERROR', secure: p.flag_ad, answers: p.answers ?? [] };
  }

  private udp(query: Buffer, id: number): Promise<{ kind: 'packet'; p: packet.DecodedPacket } | { kind: 'error'; reason: string }> {
    return new Promise((resolve) => {
      const sock = createSocket(isIP(this.server.address) === 6 ? 'udp6' : 'udp4');
      let settled = false;
      const done = (r: { kind: 'packet'; p: packet.DecodedPacket } | { kind: 'error'; reason: string }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.close();
        resolve(r);
      };
      const timer = setTimeout(() => done({ kind: 'error', reason: `no answer within ${this.timeoutMs} ms` }), this.timeoutMs);
      sock.on('error', (e) => done({ kind: 'error', reason: e.message }));
      sock.on('message', (msg, rinfo) => {
        if (rinfo.address !== this.server.address || rinfo.port !== this.server.port) return;
        const p = decode(msg);
        if (p === undefined) return done({ kind: 'error', reason: 'malformed DNS answer' });
        if (p.id !== id) return; // not ours: keep waiting (spoofing attempts are dropped)
        done({ kind: 'packet', p });
      });
      sock.send(query, this.server.port, this.server.address, (e) => {
        if (e) done({ kind: 'error', reason: e.message });
      });
    });
  }

  private tcp(query: Buffer, id: number): Promise<{ kind: 'packet'; p: packet.DecodedPacket } | { kind: 'error'; reason: string }> {
    return new Promise((resolve) => {
      const sock = connect({ host: this.server.address, port: this.server.port });
      let settled = false;
      let buf = Buffer.alloc(0);
      const done = (r: { kind: 'packet'; p: packet.DecodedPacket } | { kind: 'error'; reason: string }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => done({ kind: 'error', reason: `no answer over TCP within ${this.timeoutMs} ms` }), this.timeoutMs);
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
}

function decode(msg: Buffer): packet.DecodedPacket | undefined {
  try {
    return packet.decode(msg);
  } catch {
    return undefined;
  }
}
