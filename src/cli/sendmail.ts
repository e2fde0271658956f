/*
 * cli/sendmail.ts — the sendmail(8) interface, as OpenSMTPD's and Postfix's:
 *
 *   sendmail [-tiv] [-f sender] [-F fullname] [-N dsn] [-R ret] [-V envid] [-bm|-bp|-bi] [-q] [recipient …]
 *
 * The message is read from standard input (up to a line "." alone unless
 * -i/-oi), written to the spool's offline/ folder and fsynced, then handed
 * to the daemon through its enqueue socket. If the daemon is not running,
 * the message waits there and is enqueued at the next start: nothing is
 * lost, and sendmail exits 75 (EX_TEMPFAIL) to say so.
 * Historical flags (-oXXX, -B, -U, -v, -m, -n, -s, -L, -O, -X, -h, -A) are
 * accepted and ignored, as OpenSMTPD does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getopt } from './getopt.js';
import { toolConfig } from './config-for-tools.js';
import { writeOfflineFile, askDaemon } from '../submit/enqueue-client.js';
import { splitHeaders, headerRecipients } from '../submit/headers.js';

const USAGE = 'usage: sendmail [-tiv] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] [-bm|-bp|-bi] [-q] [recipient ...]';
const EX_USAGE = 64;
const EX_DATAERR = 65;
const EX_NOUSER = 67;
const EX_CANTCREAT = 73;
const EX_TEMPFAIL = 75;

function die(code: number, msg: string): never {
  process.stderr.write(`sendmail: ${msg}\n`);
  process.exit(code);
}

export async function sendmailMain(argv: string[], prog = 'sendmail'): Promise<void> {
  // -q[time] takes an optional argument that getopt cannot express: take it out first.
  const queueRun = argv.some((a) => /^-q/.test(a));
  const rest = argv.filter((a) => !/^-q/.test(a));
  const opts = getopt(rest, 'tf:r:F:N:R:V:io:b:vUB:C:h:L:O:X:mnsA:');
  if ('error' in opts) die(EX_USAGE, `${opts.error} (${USAGE})`);
  const mode = opts.values.get('b')?.at(-1) ?? 'm';
  if (queueRun || mode === 'p' || mode === 'i') {
    const { otherModes } = await import('./sendmail-modes.js');
    return otherModes(queueRun ? 'q' : mode, opts.values.get('C')?.at(-1), prog);
  }
  if (mode !== 'm') die(EX_USAGE, `-b${mode} is not supported (${USAGE})`);
  const config = toolConfig(opts.values.get('C')?.at(-1), prog);

  const ignoreDots = opts.flags.has('i') || (opts.values.get('o') ?? []).includes('i');
  let data: Buffer = readFileSync(0);
  if (!ignoreDots) data = cutAtDot(data);
  if (data.length > config.smtp.maxMessageSize) die(EX_DATAERR, 'message too large');

  const recipients = [...opts.operands];
  if (opts.flags.has('t')) recipients.push(...headerRecipients(splitHeaders(data.toString('utf8')).fields));
  if (recipients.length === 0) die(EX_USAGE, `no recipients (${USAGE})`);
  const sender = opts.values.get('f')?.at(-1) ?? opts.values.get('r')?.at(-1);
  const ret = opts.values.get('R')?.at(-1)?.toUpperCase();
  if (ret !== undefined && ret !== 'FULL' && ret !== 'HDRS') die(EX_USAGE, `-R ${ret}: expected full or hdrs`);
  const notify = opts.values.get('N')?.at(-1)?.toUpperCase();
  if (notify !== undefined && !/^(NEVER|((SUCCESS|FAILURE|DELAY),?)+)$/.test(notify)) die(EX_USAGE, `-N ${notify}: expected never or a list of success, failure, delay`);

  const header = {
    ...(sender !== undefined ? { sender: sender === '<>' ? '' : sender.replace(/^<|>$/g, '') } : {}),
    recipients: recipients.map((r) => r.replace(/^<|>$/g, '')),
    ...(notify !== undefined ? { notify } : {}),
    ...(ret !== undefined ? { ret: ret as 'FULL' | 'HDRS' } : {}),
    ...(opts.values.get('V') ? { envid: opts.values.get('V')?.at(-1) } : {}),
    ...(opts.values.get('F') ? { fullName: opts.values.get('F')?.at(-1) } : {}),
  };
  const dir = join(config.queue.path, 'offline');
  let name: string;
  try {
    name = await writeOfflineFile(config.queue.path, header, data);
  } catch (e) {
    die(EX_CANTCREAT, `cannot queue the message in ${dir}: ${(e as Error).message}`);
  }

  const answer = await askDaemon(config.queue.path, `ENQUEUE ${name}\n`);
  if (answer === undefined) die(EX_TEMPFAIL, `smtpd is not running: the message is queued in ${dir} and will be delivered when smtpd starts`);
  if (answer.startsWith('OK ')) {
    const m = /^OK (\S+)(?: (.*))?$/.exec(answer);
    if (m?.[2]) process.stderr.write(`sendmail: ${m[2]}\n`);
    if (opts.flags.has('v')) process.stdout.write(`queued as ${m?.[1] ?? ''}\n`);
    return;
  }
  if (answer.startsWith('REFUSED ')) {
    const text = answer.slice('REFUSED '.length);
    die(/^55[03] /.test(text) && /recipient/i.test(text) ? EX_NOUSER : EX_DATAERR, text);
  }
  die(EX_TEMPFAIL, `${answer.replace(/^TEMPFAIL /, '')}; the message stays queued in ${dir}`);
}

/** Traditional sendmail: without -i, a line with a single "." ends the message. */
function cutAtDot(data: Buffer): Buffer {
  const m = /(^|\n)\.\r?\n/.exec(data.toString('latin1'));
  return m ? data.subarray(0, m.index + m[1]!.length) : data;
}
