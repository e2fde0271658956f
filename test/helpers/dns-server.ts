/*
 * test/helpers/dns-server.ts — a real DNS server on loopback, in the test
 * process (npm `dns2`, UDP and TCP on the same port), serving the zones a
 * test gives it. Point Postern at it with `resolver "127.0.0.1:PORT"` in
 * smtpd.conf, or `new Resolver({ servers: [dns.server], timeoutMs })`.
 *
 *   const dns = await startDnsServer({
 *     'example.test': [{ type: 'MX', priority: 10, exchange: 'mx1.example.test' }],
 *     'mx1.example.test': [{ type: 'A', address: '127.0.0.2' }],
 *     'nullmx.test': [{ type: 'MX', priority: 0, exchange: '.' }],   // RFC 7505
 *     'broken.test': 'SERVFAIL',
 *     'slow.test': 'TIMEOUT',                                           // never answered
 *   });
 *   …
 *   await dns.close();
 *
 * A name listed with records exists: a query for a type it has no record
 * of gets an empty NOERROR answer (NODATA, ENODATA in Node). A name not
 * listed gets NXDOMAIN (ENOTFOUND). Names are case-insensitive, without
 * the trailing dot. set() changes a name while the server runs; queries()
 * tells what was asked ("MX example.test"), for assertions.
 */
import { createServer, Packet, type DnsServer } from 'dns2';

export type DnsRecord =
  | { readonly type: 'A'; readonly address: string; readonly ttl?: number }
  | { readonly type: 'AAAA'; readonly address: string; readonly ttl?: number }
  | { readonly type: 'MX'; readonly priority: number; readonly exchange: string; readonly ttl?: number }
  | { readonly type: 'TXT'; readonly data: string; readonly ttl?: number }
  | { readonly type: 'PTR'; readonly domain: string; readonly ttl?: number }
  | { readonly type: 'CNAME'; readonly domain: string; readonly ttl?: number }
  | { readonly type: 'NS'; readonly ns: string; readonly ttl?: number };

export type ZoneEntry = readonly DnsRecord[] | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' | 'TIMEOUT';
export type Zones = Readonly<Record<string, ZoneEntry>>;

export interface DnsServerHandle {
  readonly port: number;
  /** "127.0.0.1:PORT", for a resolver's server list. */
  readonly server: string;
  set(name: string, entry: ZoneEntry | undefined): void;
  queries(): readonly string[];
  close(): Promise<void>;
}

const TYPES: Record<DnsRecord['type'], number> = {
  A: Packet.TYPE.A,
  AAAA: Packet.TYPE.AAAA,
  MX: Packet.TYPE.MX,
  TXT: Packet.TYPE.TXT,
  PTR: Packet.TYPE.PTR,
  CNAME: Packet.TYPE.CNAME,
  NS: Packet.TYPE.NS,
};
/** RFC 1035 §4.1.1 response codes (dns2 has them at run time, its types do not). */
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const NAMES = new Map<number, string>(Object.entries(TYPES).map(([k, v]) => [v, k]));

function norm(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

export async function startDnsServer(zones: Zones, address = '127.0.0.1'): Promise<DnsServerHandle> {
  const table = new Map<string, ZoneEntry>(Object.entries(zones).map(([k, v]) => [norm(k), v]));
  const asked: string[] = [];
  const handle = (request: Packet, send: (p: Packet) => void): void => {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const q = request.questions[0];
    if (q === undefined) {
      response.header.rcode = RCODE.FORMERR;
      return send(response);
    }
    const name = norm(q.name);
    asked.push(`${NAMES.get(q.type) ?? q.type} ${name}`);
    const entry = table.get(name);
    if (entry === 'TIMEOUT') return;
    if (entry === undefined || entry === 'NXDOMAIN') {
      response.header.rcode = RCODE.NXDOMAIN;
      return send(response);
    }
    if (entry === 'SERVFAIL' || entry === 'REFUSED') {
      response.header.rcode = entry === 'SERVFAIL' ? RCODE.SERVFAIL : RCODE.REFUSED;
      return send(response);
    }
    for (const r of entry) {
      const type = TYPES[r.type];
      // A CNAME answers every type; other records only their own.
      if (type !== q.type && r.type !== 'CNAME') continue;
      const { type: _t, ttl, ...fields } = r;
      void _t;
      response.answers.push({ name: q.name, type, class: Packet.CLASS.IN, ttl: ttl ?? 60, ...fields } as never);
    }
    send(response);
  };

  // UDP first on any free port, then TCP on the same port (resolvers retry truncated answers over TCP).
  for (let attempt = 0; ; attempt++) {
    const server: DnsServer = createServer({ udp: { type: address.includes(':') ? 'udp6' : 'udp4' } as never, tcp: true, handle });
    server.on('error', () => undefined);
    const udp = (server as unknown as { servers: { udp: import('node:dgram').Socket; tcp: import('node:net').Server } }).servers;
    const port = await new Promise<number>((resolve, reject) => {
      udp.udp.once('error', reject);
      udp.udp.bind(0, address, () => resolve(udp.udp.address().port));
    });
    const tcpOk = await new Promise<boolean>((resolve) => {
      udp.tcp.once('error', () => resolve(false));
      udp.tcp.listen(port, address, () => resolve(true));
    });
    if (!tcpOk) {
      udp.udp.close();
      if (attempt < 10) continue;
      throw new Error('dns-server: no port free for both UDP and TCP');
    }
    return {
      port,
      server: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`,
      set(name, entry) {
        if (entry === undefined) table.delete(norm(name));
        else table.set(norm(name), entry);
      },
      queries: () => [...asked],
      // The TCP side stops listening at once; connections a resolver left open end on their own.
      close: () =>
        new Promise<void>((resolve) => {
          udp.tcp.close();
          udp.udp.close(() => resolve());
        }),
    };
  }
}
