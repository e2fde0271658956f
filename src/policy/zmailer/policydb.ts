/*
 * policy/zmailer/policydb.ts — ZMailer's smtp-policy database as a policy
 * phase: the decision chain of ZMailer's policytest (as its
 * proto/db/smtp-policy.src describes it), restated:
 *
 *   connect  client address: rejectnet + refuses the session; freezenet +
 *            holds all its mail; relaycustnet + / fulltrustnet + /
 *            trustrecipients + accept every recipient (relaying too), and
 *            so does trust-whoson + for a client whoson knows (smtpserver -w);
 *            test-dns-rbl: listed in the zones ⇒ refused; rcpt-dns-rbl: the
 *            listing is kept for recipients that ask (test-rcpt-dns-rbl +).
 *            Then the client's (forward-confirmed) name: rejectnet,
 *            freezenet, rcpt-dns-rbl.
 *   HELO     the HELO name: rejectnet +, freezenet +.
 *   MAIL     the sender "user@domain"/"user@": rejectsource +, freezesource +;
 *            else its domain: rejectsource +, freezesource +, relaycustomer +
 *            (every recipient accepted), senderokwithdns (no MX/A/AAAA: 450
 *            with "+", 550 with "-").
 *   RCPT     the recipient address, then its domain: relaytarget - refuses,
 *            freeze + holds, test-rcpt-dns-rbl + refuses a client the RBL
 *            listed, relaytarget + accepts (relaying); then
 *            acceptifmx (we are an MX of the domain) and acceptifdns (the
 *            domain exists): accept, else 450 ("+") or 550 ("-");
 *            sendernorelay + on the sender's domain: only our domains;
 *            maxoutsize: a larger SIZE= is refused.
 *   commit   freeze ⇒ the message goes to the hold queue; maxinsize of the
 *            client's network ⇒ 552.
 *
 * Postern's own domains count as listed with "localdomain + relaytarget +"
 * (ZMailer's policy-builder added its localnames file so). An accepting
 * answer is a "trusted" pass: smtpd.conf's rules then route the recipient
 * as mail from this host. A DNS failure is 451, never an answer.
 */
import type { Resolver as DnsResolver } from 'node:dns/promises';
import type { Mailbox } from '../../mail/address.js';
import { reply, sanitizeReplyText, type Reply } from '../../mail/reply.js';
import type { PolicyDb, PolicyEntry, PolicyAttributeName } from '../../config/zmailer/policydb.js';
import type { PolicyObserver, PolicyPhase, SessionFacts, TxFacts } from '../policy.js';
import { PASS, type Verdict } from '../verdict.js';
import { ipListed } from '../../dns/dnsl.js';
import { sessionMemos } from '../session-memo.js';
import { flag, lookupDomain, lookupIp, lookupUser, rblZones, type PolicyHit } from './policydb-lookup.js';

export type PolicyDns = Pick<DnsResolver, 'resolveMx' | 'resolve4' | 'resolve6'>;

export interface PolicyDbOptions {
  readonly db: PolicyDb;
  readonly dns?: PolicyDns;
  readonly isLocalDomain: (d: string) => boolean;
  readonly isLocalAddress: (ip: string) => boolean;
  readonly hostname: string;
  readonly observer?: PolicyObserver;
}

type Outcome = { kind: 'reject'; reply: Reply; why: string; close?: boolean } | { kind: 'freeze'; why: string } | { kind: 'accept'; why: string } | { kind: 'none' };
interface ConnState { readonly outcome: Outcome; readonly rbl?: string; readonly maxIn?: number; readonly filtering?: boolean }
interface Memo { conn?: Promise<ConnState>; connHelo?: string; sender?: { key: string; result: Promise<Outcome> }; freeze?: string }

const IMPLICIT_LOCAL: PolicyEntry = { key: '(local domain)', where: 'Postern local domain', items: [{ kind: 'attr', name: 'localdomain', value: '+' }, { kind: 'attr', name: 'relaytarget', value: '+' }] };

const text = (h: PolicyHit, a: PolicyAttributeName, fallback: string): string => sanitizeReplyText(h.attrs.get(a)?.message ?? fallback);
const nxdomain = (e: unknown): boolean => ['ENOTFOUND', 'ENODATA', 'NXDOMAIN'].includes((e as NodeJS.ErrnoException).code ?? '');

export class DnsTempFail extends Error {}

export function policyDbPhase(o: PolicyDbOptions): PolicyPhase & { filtering(s: SessionFacts): Promise<boolean | undefined> } {
  const memo = sessionMemos<Memo>(() => ({}));
  const implicit = (d: string): PolicyEntry | undefined => (o.isLocalDomain(d) ? IMPLICIT_LOCAL : undefined);
  const note = (phase: 'connect' | 'helo' | 'mail' | 'rcpt' | 'commit', why: string): void => o.observer?.({ phase, source: 'policydb', why });

  async function listed(ip: string, zones: readonly string[]): Promise<string | undefined> {
    // ZMailer asks IPv4 lists only.
    if (zones.length === 0 || !o.dns || ip.includes(':')) return undefined;
    for (const z of zones) {
      try {
        if (await ipListed(o.dns, ip, z)) return z;
      } catch (e) {
        throw new DnsTempFail(`RBL ${z}: ${(e as Error).message}`);
      }
    }
    return undefined;
  }

  async function exists(domain: string, wantMxOnly = false): Promise<boolean> {
    if (!o.dns) return true;
    const q = async (f: () => Promise<unknown[]>): Promise<boolean> => f().then((r) => r.length > 0, (e) => (nxdomain(e) ? false : Promise.reject(new DnsTempFail(`${domain}: ${(e as Error).message}`))));
    const dns = o.dns;
    if (await q(() => dns.resolveMx(domain))) return true;
    if (wantMxOnly) return false;
    return (await q(() => dns.resolve4(domain))) || (await q(() => dns.resolve6(domain)));
  }

  async function weAreMx(domain: string): Promise<boolean> {
    if (!o.dns) return false;
    const dns = o.dns;
    const mx = await dns.resolveMx(domain).catch((e) => (nxdomain(e) ? [] : Promise.reject(new DnsTempFail(`${domain} MX: ${(e as Error).message}`))));
    for (const m of mx) {
      if (m.exchange.toLowerCase() === o.hostname.toLowerCase()) return true;
      const addrs = [...(await dns.resolve4(m.exchange).catch(() => [])), ...(await dns.resolve6(m.exchange).catch(() => []))];
      if (addrs.some((a) => o.isLocalAddress(a))) return true;
    }
    return false;
  }

  async function connState(s: SessionFacts): Promise<ConnState> {
    const ip = lookupIp(o.db, s.clientAddress);
    const maxIn = ip?.attrs.get('maxinsize') ? Number(ip.attrs.get('maxinsize')?.value) : undefined;
    const filtering = ip ? flag(ip, 'filtering') : undefined;
    const base = { ...(maxIn !== undefined ? { maxIn } : {}), ...(filtering !== undefined ? { filtering } : {}) };
    const refuse = (h: PolicyHit, a: PolicyAttributeName, what: string): ConnState => ({ ...base, outcome: { kind: 'reject', reply: reply(550, '5.7.1', text(h, a, 'Your network is not accepted here')), why: `${h.where}: ${what} has ${a} +`, close: true } });
    if (ip) {
      if (flag(ip, 'rejectnet')) return refuse(ip, 'rejectnet', `[${s.clientAddress}] (${ip.key})`);
      if (flag(ip, 'freezenet')) return { ...base, outcome: { kind: 'freeze', why: `${ip.where}: ${ip.key} has freezenet +` } };
      if (flag(ip, 'relaycustnet') || flag(ip, 'fulltrustnet') || flag(ip, 'trustrecipients')) return { ...base, outcome: { kind: 'accept', why: `${ip.where}: ${ip.key} is trusted (relaycustnet/fulltrustnet/trustrecipients +)` } };
      // trust-whoson +: a client the whoson server knows as logged in is a customer (smtpserver -w asked at accept).
      if (flag(ip, 'trust-whoson') && s.whoson !== undefined) {
        const user = await s.whoson;
        if (user !== undefined) return { ...base, outcome: { kind: 'accept', why: `${ip.where}: ${ip.key} has trust-whoson + and whoson knows [${s.clientAddress}] as ${user}` } };
      }
      const z = await listed(s.clientAddress, rblZones(ip.attrs.get('test-dns-rbl')?.value));
      if (z) return { ...base, outcome: { kind: 'reject', reply: reply(550, '5.7.1', `Your address [${s.clientAddress}] is listed in ${z}`), why: `${ip.where}: test-dns-rbl: listed in ${z}`, close: true } };
    }
    let rbl = await listed(s.clientAddress, rblZones(ip?.attrs.get('rcpt-dns-rbl')?.value));
    const name = s.rdns !== undefined ? lookupDomain(o.db, s.rdns) : undefined;
    if (name) {
      if (flag(name, 'rejectnet')) return refuse(name, 'rejectnet', `client name ${s.rdns ?? ''}`);
      if (flag(name, 'freezenet')) return { ...base, outcome: { kind: 'freeze', why: `${name.where}: ${s.rdns ?? ''} has freezenet +` } };
      rbl ??= await listed(s.clientAddress, rblZones(name.attrs.get('rcpt-dns-rbl')?.value));
    }
    if (s.helo !== undefined) {
      const h = lookupDomain(o.db, s.helo.replace(/^\[|\]$/g, ''));
      if (h && flag(h, 'rejectnet')) return { ...base, outcome: { kind: 'reject', reply: reply(550, '5.7.1', text(h, 'rejectnet', 'Your HELO name is not accepted here')), why: `${h.where}: HELO ${s.helo} has rejectnet +` } };
      if (h && flag(h, 'freezenet')) return { ...base, outcome: { kind: 'freeze', why: `${h.where}: HELO ${s.helo} has freezenet +` } };
    }
    return { ...base, outcome: { kind: 'none' }, ...(rbl ? { rbl } : {}) };
  }

  const conn = (s: SessionFacts): Promise<ConnState> => {
    const m = memo(s.id);
    // HELO changes what is known: the state is computed again when the name changes.
    if (!m.conn || m.connHelo !== s.helo) {
      m.conn = connState(s);
      m.connHelo = s.helo;
    }
    return m.conn;
  };

  async function senderOutcome(sender: Mailbox | null): Promise<Outcome> {
    if (sender === null) return { kind: 'none' };
    const u = lookupUser(o.db, sender.local, sender.domain);
    if (u) {
      if (flag(u, 'rejectsource')) return { kind: 'reject', reply: reply(550, '5.7.1', text(u, 'rejectsource', 'Your address is not accepted as a source of mail')), why: `${u.where}: sender ${u.key} has rejectsource +` };
      if (flag(u, 'freezesource')) return { kind: 'freeze', why: `${u.where}: sender ${u.key} has freezesource +` };
      return { kind: 'none' };
    }
    const d = lookupDomain(o.db, sender.domain, implicit);
    if (!d) return { kind: 'none' };
    if (flag(d, 'rejectsource')) return { kind: 'reject', reply: reply(550, '5.7.1', text(d, 'rejectsource', 'Your domain is not accepted as a source of mail')), why: `${d.where}: sender domain ${sender.domain} has rejectsource +` };
    if (flag(d, 'freezesource')) return { kind: 'freeze', why: `${d.where}: sender domain ${sender.domain} has freezesource +` };
    if (flag(d, 'relaycustomer')) return { kind: 'accept', why: `${d.where}: sender domain ${sender.domain} has relaycustomer +` };
    const okDns = flag(d, 'senderokwithdns');
    if (okDns !== undefined && !(await exists(sender.domain))) {
      const [code, enh] = okDns ? [450, '4.1.8'] : [550, '5.1.8'];
      return { kind: 'reject', reply: reply(code, enh, text(d, 'senderokwithdns', `Sender domain ${sender.domain} has no DNS data`)), why: `${d.where}: senderokwithdns ${okDns ? '+' : '-'}: ${sender.domain} not in the DNS` };
    }
    return { kind: 'none' };
  }

  const sender = (s: SessionFacts, tx: TxFacts): Promise<Outcome> => {
    const m = memo(s.id);
    const key = tx.sender === null ? '<>' : `${tx.sender.local}@${tx.sender.domain}`;
    if (!m.sender || m.sender.key !== key) m.sender = { key, result: senderOutcome(tx.sender) };
    return m.sender.result;
  };

  const verdict = (x: Outcome & { kind: 'reject' }): Verdict => ({ kind: 'reject', reply: x.reply, reason: `policydb: ${x.why}`, ...(x.close ? { disconnect: true } : {}) });
  const tempfail = (e: unknown): Verdict => {
    if (!(e instanceof DnsTempFail)) throw e;
    return { kind: 'reject', reply: reply(451, '4.4.3', 'Temporary failure in DNS lookup, try again later'), reason: `policydb: ${e.message}` };
  };

  async function rcptVerdict(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<Verdict> {
    const c = await conn(s);
    const m = memo(s.id);
    if (c.outcome.kind === 'reject') return verdict(c.outcome);
    const snd = await sender(s, tx);
    if (snd.kind === 'reject') return verdict(snd);
    if (c.outcome.kind === 'freeze' || snd.kind === 'freeze') {
      m.freeze = c.outcome.kind === 'freeze' ? c.outcome.why : (snd as { why: string }).why;
      return { kind: 'pass', trusted: `frozen: ${m.freeze}` };
    }
    if (c.outcome.kind === 'accept') return { kind: 'pass', trusted: c.outcome.why };
    const sd = tx.sender ? lookupDomain(o.db, tx.sender.domain, implicit) : undefined;
    for (const h of [lookupUser(o.db, rcpt.local, rcpt.domain), lookupDomain(o.db, rcpt.domain, implicit)]) {
      if (!h) continue;
      const max = h.attrs.get('maxoutsize');
      if (max && tx.params.size !== undefined && tx.params.size > Number(max.value)) return { kind: 'reject', reply: reply(552, '5.3.4', `Message too large for <${rcpt.local}@${rcpt.domain}>`), reason: `policydb: ${h.where}: SIZE ${tx.params.size} over maxoutsize ${max.value}` };
      // ZMailer's order: target-specific refusals first, then the freezer, the RBL, and acceptance.
      const target = flag(h, 'relaytarget');
      if (target === false) return { kind: 'reject', reply: reply(550, '5.7.1', text(h, 'relaytarget', 'This is not an accepted relay target')), reason: `policydb: ${h.where}: ${h.key} has relaytarget -` };
      if (flag(h, 'freeze')) {
        m.freeze = `${h.where}: ${h.key} has freeze +`;
        return { kind: 'pass', trusted: m.freeze };
      }
      if (flag(h, 'test-rcpt-dns-rbl') && c.rbl) return { kind: 'reject', reply: reply(550, '5.7.1', `Your address [${s.clientAddress}] is listed in ${c.rbl}`), reason: `policydb: ${h.where}: test-rcpt-dns-rbl + and the client is listed in ${c.rbl}` };
      if (target === true) return { kind: 'pass', trusted: `${h.where}: ${h.key} has relaytarget +` };
    }
    if (sd && flag(sd, 'sendernorelay') && !o.isLocalDomain(rcpt.domain)) return { kind: 'reject', reply: reply(550, '5.7.1', text(sd, 'sendernorelay', 'Relaying denied for this sender')), reason: `policydb: ${sd.where}: sender domain has sendernorelay +` };
    if (snd.kind === 'accept') return { kind: 'pass', trusted: snd.why };
    const d = lookupDomain(o.db, rcpt.domain, implicit);
    if (!d) return PASS;
    if (flag(d, 'localdomain')) return PASS;
    for (const [attr, check] of [['acceptifmx', weAreMx], ['acceptifdns', exists]] as const) {
      const f = flag(d, attr);
      if (f === undefined) continue;
      if (await check(rcpt.domain)) return { kind: 'pass', trusted: `${d.where}: ${attr}: ${rcpt.domain} checks out` };
      const [code, enh] = f ? [450, '4.7.1'] : [550, '5.7.1'];
      return { kind: 'reject', reply: reply(code, enh, text(d, attr, `Relaying to <${rcpt.local}@${rcpt.domain}> denied`)), reason: `policydb: ${d.where}: ${attr} ${f ? '+' : '-'} and ${attr === 'acceptifmx' ? 'we are no MX of' : 'the DNS does not know'} ${rcpt.domain}` };
    }
    return PASS;
  }

  return {
    name: 'policydb',
    explains: true,
    async connect(s) {
      const c = await conn(s).catch((e: unknown) => ({ outcome: { kind: 'none' } as Outcome, error: tempfail(e) }));
      if ('error' in c) return c.error;
      if (c.outcome.kind !== 'none') note('connect', c.outcome.why);
      return c.outcome.kind === 'reject' ? verdict(c.outcome) : PASS;
    },
    async helo(s) {
      try {
        const c = await conn(s);
        if (c.outcome.kind === 'reject') note('helo', c.outcome.why);
        return c.outcome.kind === 'reject' ? verdict(c.outcome) : PASS;
      } catch (e) {
        return tempfail(e);
      }
    },
    async mail(s, tx) {
      try {
        const c = await conn(s);
        if (c.outcome.kind === 'reject') return verdict(c.outcome);
        if (c.outcome.kind !== 'none') return PASS;
        const x = await sender(s, tx);
        if (x.kind !== 'none') note('mail', x.why);
        return x.kind === 'reject' ? verdict(x) : PASS;
      } catch (e) {
        return tempfail(e);
      }
    },
    async rcpt(s, tx, rcpt) {
      try {
        const v = await rcptVerdict(s, tx, rcpt);
        note('rcpt', v.kind === 'reject' ? v.reason : v.trusted ?? 'no decision: smtpd.conf decides');
        return v;
      } catch (e) {
        return tempfail(e);
      }
    },
    async commit(s, _tx, c) {
      const m = memo(s.id);
      const st = await conn(s).catch(() => undefined);
      const frozen = m.freeze;
      m.freeze = undefined;
      if (st?.maxIn !== undefined && c.size > st.maxIn) return { kind: 'reject', reply: reply(552, '5.3.4', 'Message too large from your network'), reason: `policydb: maxinsize ${st.maxIn}` };
      if (frozen !== undefined) return { kind: 'hold', reason: `policydb: ${frozen}` };
      return PASS;
    },
    async filtering(s) {
      const st = await conn(s).catch(() => undefined);
      if (st?.filtering !== undefined) return st.filtering;
      return st?.outcome.kind === 'accept' ? false : undefined;
    },
  };
}
