/*
 * submit/local-enqueue.ts — the daemon's side of `sendmail`: take a file
 * from the spool's offline/ folder, check it like an SMTP session from the
 * local machine would be checked (same policy, `from local`/`from socket`),
 * fix up its headers, commit it to the queue, and remove the file.
 *
 * The file's owner is the submitter (the daemon never trusts what the file
 * says about who wrote it). A file that can never be accepted (malformed,
 * no valid recipient, too big) is refused and moved to corrupt/ with a log
 * line when nobody is waiting for the answer.
 */
import { lstat, open, unlink, rename, readdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join, basename } from 'node:path';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import type { Policy, SessionFacts, RcptTarget } from '../policy/policy.js';
import type { FrontDoor } from '../queue/enqueue.js';
import type { SystemUsers } from '../users/system-users.js';
import { parseMailFromArg, parseRcptToArg, formatMailbox, type Mailbox } from '../mail/address.js';
import { parseRcptParams, type RcptParams } from '../mail/params.js';
import { localReceivedHeader } from '../smtp/received.js';
import { LineEndingNormalizer } from '../wire/line-endings.js';
import { decodeOffline } from './offline-format.js';
import { splitHeaders, fixHeaders } from './headers.js';

export type EnqueueResult =
  | { readonly kind: 'ok'; readonly msgid: string; readonly rejected: readonly { readonly rcpt: string; readonly reason: string }[] }
  | { readonly kind: 'refused'; readonly code: number; readonly text: string }
  | { readonly kind: 'tempfail'; readonly text: string };

export interface LocalEnqueueEnv {
  readonly config: Config;
  readonly log: MailLog;
  readonly policy: Policy;
  /** The one way into the queue: the data and commit phases (content filter, loop check), commit, log, scheduler. */
  readonly door: FrontDoor;
  readonly users: SystemUsers;
  /**
   * Read offline/NAME for the daemon (its owner's uid and its bytes): the privileged parent of a
   * root-started smtpd (files are 0600 to the user who ran sendmail), with the same checks as below.
   */
  readonly readOffline?: (name: string) => Promise<{ uid: number; data: Buffer } | { error: string; code?: number }>;
}

export class LocalEnqueuer {
  readonly dir: string;

  private keepRefused = false;

  constructor(private readonly env: LocalEnqueueEnv) {
    this.dir = join(env.config.queue.path, 'offline');
  }

  /** Enqueue every file waiting in offline/ (at start-up). */
  async scan(): Promise<number> {
    let n = 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      // Nobody waits for these answers: a refused file goes to corrupt/ with a log line, not away.
      const r = await this.enqueue(name, true);
      if (r.kind === 'ok') n++;
    }
    return n;
  }

  /** Take offline/NAME. On 'ok' and 'refused' the file is gone from offline/; on 'tempfail' it stays. */
  async enqueue(name: string, keepRefused = false): Promise<EnqueueResult> {
    this.keepRefused = keepRefused;
    if (name !== basename(name) || name.startsWith('.') || name === '') return { kind: 'refused', code: 554, text: 'bad file name' };
    const path = join(this.dir, name);
    let uid: number;
    let data: Buffer;
    if (this.env.readOffline) {
      const r = await this.env.readOffline(name);
      if ('error' in r) return r.code !== undefined ? this.refuse(path, r.code, r.error) : { kind: 'tempfail', text: `cannot read ${name}: ${r.error}` };
      ({ uid, data } = r);
    } else try {
      const st = await lstat(path);
      if (!st.isFile() || st.nlink !== 1) return { kind: 'refused', code: 554, text: 'not a regular file' };
      const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const fst = await fh.stat();
        uid = fst.uid;
        if (fst.size > this.env.config.smtp.maxMessageSize + 1_000_000) return this.refuse(path, 552, 'Message size exceeds fixed maximum message size');
        data = await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (e) {
      return { kind: 'tempfail', text: `cannot read ${name}: ${(e as Error).message}` };
    }
    const decoded = decodeOffline(data);
    if (typeof decoded === 'string') return this.refuse(path, 554, decoded);
    const { header, body } = decoded;
    const user = this.env.users.byUid(uid)?.name ?? `uid${uid}`;
    const hostname = this.env.config.hostname;

    const senderText = header.sender ?? `${user}@${hostname}`;
    const sender = parseMailFromArg(`FROM:<${senderText}>`, { smtputf8: true, strict: false });
    if (!sender.ok) return this.refuse(path, 553, `bad sender address <${senderText}>`);
    const facts: SessionFacts = { id: `local-${name}`, clientAddress: '127.0.0.1', clientPort: 0, fromSocket: true, helo: 'localhost', esmtp: true, tls: false, listener: 'local' };
    const params = { smtputf8: /[^\x00-\x7f]/.test(data.toString('latin1')) };
    const mail = await this.env.policy.mail(facts, { sender: sender.mailbox, params, rcptCount: 0 });
    if (mail.kind === 'reject') return mail.reply.code < 500 ? { kind: 'tempfail', text: mail.reply.lines.join(' ') } : this.refuse(path, mail.reply.code, mail.reply.lines.join(' '));

    const accepted: { mailbox: Mailbox; address: string; params: RcptParams; targets: readonly RcptTarget[] }[] = [];
    const rejected: { rcpt: string; reason: string }[] = [];
    const rcptParams = parseRcptParams(header.notify ? `NOTIFY=${header.notify}` : '', { size: true, maxSize: 0, eightBitMime: true, smtputf8: true, dsn: true, chunking: true, auth: false });
    if (!rcptParams.ok) return this.refuse(path, 501, `bad DSN notify "${header.notify}"`);
    let tempfail: string | undefined;
    for (const raw of header.recipients) {
      const qualified = raw.includes('@') ? raw : `${raw}@${hostname}`;
      const r = parseRcptToArg(`TO:<${qualified}>`, { smtputf8: true, strict: false });
      if (!r.ok || !r.mailbox) {
        rejected.push({ rcpt: raw, reason: 'bad address syntax' });
        continue;
      }
      const d = await this.env.policy.rcpt(facts, { sender: sender.mailbox, params, rcptCount: accepted.length }, r.mailbox);
      if (d.kind === 'reject') {
        if (d.verdict.reply.code < 500) tempfail = d.verdict.reply.lines.join(' ');
        rejected.push({ rcpt: raw, reason: `${d.verdict.reply.code} ${d.verdict.reply.enhanced ?? ''} ${d.verdict.reply.lines.join(' ')}`.replace(/\s+/g, ' ') });
        continue;
      }
      const address = formatMailbox(r.mailbox);
      if (!accepted.some((a) => a.address.toLowerCase() === address.toLowerCase())) accepted.push({ mailbox: r.mailbox, address, params: rcptParams.value, targets: d.targets });
    }
    if (accepted.length === 0) {
      if (tempfail) return { kind: 'tempfail', text: tempfail };
      return this.refuse(path, 550, `no valid recipients: ${rejected.map((r) => `${r.rcpt} (${r.reason})`).join(', ')}`);
    }

    // The message: LF → CRLF, bare CR normalized, NUL refused; headers completed.
    const norm = new LineEndingNormalizer('normalize');
    const parts: Buffer[] = [];
    norm.push(body, parts);
    norm.end(parts);
    if (norm.nul) return this.refuse(path, 550, 'Message contains NUL characters');
    const text = Buffer.concat(parts).toString('utf8');
    const { fields, body: rest } = splitHeaders(text);
    const now = new Date();
    const senderAddr = sender.mailbox ? formatMailbox(sender.mailbox) : `${user}@${hostname}`;

    const opened = await this.env.door.open({ kind: 'local', uid, user }, facts, { sender: sender.mailbox, params, rcptCount: accepted.length });
    if (opened.kind === 'reject') {
      const text = opened.reply.lines.join(' ');
      return opened.reply.code < 500 ? { kind: 'tempfail', text } : this.refuse(path, opened.reply.code, text);
    }
    const maskSource = this.env.config.listeners.some((l) => l.on === 'socket' && l.maskSrc);
    opened.writeOwnHeader(localReceivedHeader({ hostname, uid, msgid: opened.msgid, date: now, maskSource }));
    opened.write(Buffer.from(fixHeaders(fields, { hostname, from: senderAddr, fullName: header.fullName, dropBcc: true, now }) + '\r\n', 'utf8'));
    if (rest !== '') opened.write(Buffer.from(rest.endsWith('\r\n') ? rest : `${rest}\r\n`, 'utf8'));
    const outcome = await opened.commit({
      sender: sender.mailbox ? formatMailbox(sender.mailbox) : '',
      recipients: accepted,
      ...(header.ret ? { ret: header.ret } : {}),
      ...(header.envid ? { envid: header.envid } : {}),
      body: '8BITMIME',
      smtputf8: params.smtputf8,
      arrival: now.getTime(),
      client: { address: 'local', port: 0, proto: 'LOCAL', helo: user, listener: 'local', authUser: user },
      ...(header.held !== undefined ? { hold: `held by the session that accepted it: ${header.held}` } : {}),
    });
    if (outcome.kind === 'refused') {
      const text = outcome.reply.lines.join(' ');
      return outcome.reply.code < 500 ? { kind: 'tempfail', text } : this.refuse(path, outcome.reply.code, text);
    }
    await unlink(path).catch(() => undefined);
    const msgid = outcome.kind === 'queued' ? outcome.envelope.msgid : opened.msgid;
    for (const r of rejected) this.env.log.event('local', 'rejected', { msgid, to: `<${r.rcpt}>`, reason: r.reason });
    return { kind: 'ok', msgid, rejected };
  }

  private async refuse(path: string, code: number, text: string): Promise<EnqueueResult> {
    this.env.log.event('local', 'refused', { file: basename(path), result: `${code} ${text}` });
    if (this.keepRefused) await rename(path, join(this.env.config.queue.path, 'corrupt', `offline-${basename(path)}`)).catch(() => undefined);
    else await unlink(path).catch(() => undefined);
    return { kind: 'refused', code, text };
  }
}
