/*
 * bench/dns.ts — a DNS server on loopback that answers every query at once
 * with NXDOMAIN: the stand-in for the local caching resolver an MTA runs
 * next to it in production.
 *
 * Postern looks up the MX records of every sender's domain at MAIL (the
 * null-MX check, RFC 7505; policy/null-mx.ts); the other three servers
 * look nothing up per message by default. With the machine's resolver, the
 * figures would measure that resolver (on a shared or sandboxed machine,
 * an occasional query takes a second). Postern is given this one instead
 * (`resolver "127.0.0.1:PORT"`), unless --system-resolver is given.
 * NXDOMAIN makes the check pass, as a real domain without a null MX would.
 *
 * The answer is the query's header and question with QR, AA, RA set and
 * RCODE 3, and no other section (RFC 1035 §4.1). UDP only.
 */
import dgram from 'node:dgram';

export interface DnsStub {
  readonly host: string;
  readonly port: number;
  queries(): number;
  stop(): Promise<void>;
}

/** The NXDOMAIN answer to `query`, or undefined when it is not a well-formed query. */
export function nxdomainAnswer(query: Buffer): Buffer | undefined {
  if (query.length < 12 || (query[2] as number) & 0x80) return undefined; // too short, or already a response
  if (query.readUInt16BE(4) !== 1) return undefined; // one question, as every resolver sends
  let i = 12;
  for (let labels = 0; labels < 128 && i < query.length && query[i] !== 0; labels++) {
    const len = query[i] as number;
    if (len > 63) return undefined; // no compression in a question
    i += len + 1;
  }
  i += 5; // the root label, QTYPE, QCLASS
  if (i > query.length) return undefined;
  const out = Buffer.from(query.subarray(0, i));
  out[2] = 0x80 | ((query[2] as number) & 0x78) | 0x04 | ((query[2] as number) & 0x01); // QR, opcode, AA, RD
  out[3] = 0x80 | 3; // RA, NXDOMAIN
  out.writeUInt16BE(0, 6); // ANCOUNT
  out.writeUInt16BE(0, 8); // NSCOUNT
  out.writeUInt16BE(0, 10); // ARCOUNT
  return out;
}

export function startDnsStub(host = '127.0.0.1', port = 0): Promise<DnsStub> {
  const sock = dgram.createSocket('udp4');
  let n = 0;
  sock.on('message', (msg, peer) => {
    const answer = nxdomainAnswer(msg);
    if (!answer) return;
    n++;
    sock.send(answer, peer.port, peer.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => {
      resolve({
        host,
        port: sock.address().port,
        queries: () => n,
        stop: () => new Promise<void>((r) => sock.close(() => r())),
      });
    });
  });
}
