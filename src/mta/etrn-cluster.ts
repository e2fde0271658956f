/*
 * mta/etrn-cluster.ts — ZMailer's `PARAM etrn-cluster NODE USER PASSWD`:
 * an ETRN a client gives one node of a load-balanced cluster is passed on
 * to every listed node, so the node that holds the mail runs its queue.
 *
 * ZMailer told each node's scheduler through its MAILQv2 service (hence
 * the user and password); Postern tells each node's SMTP server, with
 * `EHLO` and the same `ETRN` (port 25, or NODE:PORT / [ADDR]:PORT), and
 * does not need them. An ETRN that comes from a listed node is not passed
 * on again (no loop between nodes that list each other). It runs in the
 * background with a 30 s limit per node; each outcome is logged.
 */
import { connect } from 'node:net';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import type { MailLog } from '../log/maillog.js';

export interface EtrnNode {
  readonly node: string;
}

/** "host", "host:port", "[addr]", "[addr]:port" → host and port. */
export function nodeAddress(node: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(node) ?? /^([^:]+)(?::(\d+))?$/.exec(node);
  return { host: m?.[1] ?? node, port: m?.[2] ? Number(m[2]) : 25 };
}

/** One node: EHLO, ETRN, QUIT; the ETRN reply's first line, or the failure. */
export function etrnOnNode(node: string, domain: string, hostname: string, timeoutMs = 30_000): Promise<string> {
  const { host, port } = nodeAddress(node);
  return new Promise((resolve) => {
    const script = [`EHLO ${hostname}`, `ETRN ${domain}`, 'QUIT'];
    const replies: string[] = [];
    let buf = '';
    let sent = 0;
    const sock = connect({ host, port });
    const done = (r: string): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('timed out'), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (!/^\d{3} /.test(line)) continue;
        replies.push(line);
        if (sent === 2) return done(replies[2] ?? line);
        if (sent < script.length) sock.write(`${script[sent++] as string}\r\n`);
      }
    });
    sock.on('error', (e) => done(e.message));
    sock.on('close', () => done(replies[2] ?? 'closed'));
  });
}

/** Pass an ETRN on to the cluster (not when it came from one of its nodes). */
export async function relayEtrn(nodes: readonly EtrnNode[], domain: string, from: string | undefined, hostname: string, log: MailLog): Promise<void> {
  const addrs = new Set<string>();
  for (const n of nodes) {
    const { host } = nodeAddress(n.node);
    if (isIP(host)) addrs.add(host);
    else for (const a of await lookup(host, { all: true }).catch(() => [])) addrs.add(a.address);
  }
  if (from !== undefined && addrs.has(from.replace(/^::ffff:/, ''))) return;
  await Promise.all(
    nodes.map(async (n) => {
      const r = await etrnOnNode(n.node, domain, hostname);
      log.event('smtp', 'etrn-cluster', { node: n.node, domain, result: r });
    }),
  );
}
