/*
 * test/unit/mta-transaction.test.ts — the relay client's transaction
 * (transaction.ts and its steps) as golden transcripts: a real session
 * over loopback to a scripted server, and for each scenario every write
 * the client made (what, and in how many writes: a pipelined group is
 * one), every trace line, and the outcomes. The transcripts were recorded
 * from sendMessage before it became a state machine, so they pin the
 * wire traffic, replies and details it must keep.
 *
 * Why this file is long (~490 lines): most of it is the transcripts
 * themselves, kept next to their scenarios so a reader sees both; the
 * server and the runner are about 150 lines.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { Envelope } from '../../src/mail/envelope.js';
import { DEFAULT_TIMEOUTS, tuning, type RelayTuningInput } from '../../src/mta/options.js';
import { ClientSession } from '../../src/mta/session.js';
import { sendMessage } from '../../src/mta/transaction.js';

interface Scenario {
  readonly caps: readonly string[];
  /** Replies by verb, used in turn (the last one again); DOT is the reply to the final dot, BDATLAST to BDAT LAST; "DROP" closes. */
  readonly replies?: Readonly<Record<string, readonly string[]>>;
  readonly rsetFirst?: boolean;
  readonly lmtp?: boolean;
  readonly rcpts?: readonly string[];
  readonly tuning?: RelayTuningInput;
  readonly bodyChunks?: readonly string[];
  readonly bodyError?: boolean;
}

/** A server that answers as the scenario says and reads DATA and BDAT content as a server would. */
function scripted(sc: Scenario): Promise<net.Server> {
  const queues = new Map(Object.entries(sc.replies ?? {}).map(([k, v]) => [k, [...v]]));
  const take = (verb: string, dflt: string): string => {
    const q = queues.get(verb);
    if (q === undefined || q.length === 0) return dflt;
    return (q.length > 1 ? q.shift() : q[0]) ?? dflt;
  };
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let mode: 'line' | 'data' | 'bdat' = 'line';
    let need = 0;
    let last = false;
    sock.on('error', () => undefined);
    const say = (r: string): boolean => {
      if (r === 'DROP') {
        sock.destroy();
        return false;
      }
      sock.write(r.split('\n').map((l) => `${l}\r\n`).join(''));
      return true;
    };
    say('220 mx.test ESMTP');
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (mode === 'data') {
          // The final dot: after the content, or alone (an empty message's end).
          const dot = buf.indexOf('\r\n.\r\n');
          const end = buf.subarray(0, 3).toString() === '.\r\n' ? 3 : dot < 0 ? -1 : dot + 5;
          if (end < 0) return;
          buf = buf.subarray(end);
          mode = 'line';
          if (!say(take('DOT', '250 2.0.0 queued'))) return;
          continue;
        }
        if (mode === 'bdat') {
          if (buf.length < need) return;
          buf = buf.subarray(need);
          mode = 'line';
          if (!say(last ? take('BDATLAST', '250 2.0.0 queued') : take('BDAT', '250 2.0.0 chunk'))) return;
          continue;
        }
        const i = buf.indexOf('\r\n');
        if (i < 0) return;
        const line = buf.subarray(0, i).toString();
        buf = buf.subarray(i + 2);
        const [verb = '', n = '', lastWord] = line.split(' ');
        if (verb === 'EHLO' || verb === 'LHLO') say(['250-mx.test', ...sc.caps.map((c) => `250-${c}`), '250 HELP'].join('\n'));
        else if (verb === 'DATA') {
          const r = take('DATA', '354 go');
          if (!say(r)) return;
          if (r.startsWith('354')) mode = 'data';
        } else if (verb === 'BDAT') {
          need = Number(n);
          last = lastWord === 'LAST';
          mode = 'bdat';
        } else if (!say(take(verb, '250 2.0.0 ok'))) return;
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Run sendMessage once; the transcript: writes (W), traces (T), outcomes (O), the rest of the result (R). */
async function transcript(sc: Scenario): Promise<string[]> {
  const server = await scripted(sc);
  const port = (server.address() as net.AddressInfo).port;
  const out: string[] = [];
  const timeouts = { ...DEFAULT_TIMEOUTS, command: 2000, dataInit: 2000, dataBlock: 2000, dataDone: 2000, rset: 2000 };
  const session = await ClientSession.open({
    target: { host: '127.0.0.1', address: '127.0.0.1', port },
    helo: 'client.test',
    tls: 'none',
    verify: false,
    servername: '127.0.0.1',
    allowPlaintextAuth: false,
    lmtp: sc.lmtp ?? false,
    timeouts,
    trace: (l) => out.push(`T ${l.replace(/^\S+ /, '')}`),
  });
  out.length = 0;
  const write = session.conn.write.bind(session.conn);
  session.conn.write = (data, timeoutMs, what) => {
    out.push(`W ${what}: ${(Array.isArray(data) ? data : [data]).map((d) => d.toString()).join('').replaceAll('\r\n', '⏎')}`);
    return write(data, timeoutMs, what);
  };
  const env: Envelope = {
    version: 1,
    msgid: 'abcd0001',
    sender: 'alice@example.net',
    recipients: (sc.rcpts ?? ['a@x.example', 'b@x.example']).map((address, i) => ({ evpid: `abcd0001${String(i).padStart(8, '0')}`, action: 'relay', address })),
    body: '8BITMIME',
    smtputf8: false,
    arrival: 0,
    client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'test' },
    size: 100,
  };
  const openBody = (): Readable =>
    sc.bodyError === true
      ? new Readable({
          read() {
            this.destroy(new Error('disk on fire'));
          },
        })
      : Readable.from((sc.bodyChunks ?? ['Subject: hi\r\n\r\nhello\r\n.dot\r\n']).map((c) => Buffer.from(c)));
  try {
    const r = await sendMessage(session, { envelope: env, recipients: env.recipients, sender: env.sender, openBody, tuning: tuning({ timeouts, ...sc.tuning }), rsetFirst: sc.rsetFirst });
    for (const o of r.outcomes) out.push(`O ${o.rcpt.address} ${o.status} ${o.enhanced} ${o.detail}${o.relayed === true ? ' (relayed)' : ''}`);
    out.push(`R undecided=${r.undecided.map((u) => u.address).join(',')} nextHost=${r.nextHost} failure=${r.failure?.enhanced ?? ''} ${r.failure?.detail ?? ''}`.trimEnd());
    out.push(`R messages=${session.messages}`);
  } finally {
    session.destroy();
    server.close();
  }
  return out.map((l) => l.replaceAll(`:${port}`, ':PORT'));
}

const P = ['PIPELINING', '8BITMIME', 'DSN', 'SIZE 100000'];
const PC = [...P, 'CHUNKING'];
const LINES = ['Subject: hi\r\n\r\n', ...Array<string>(3).fill('line number\r\n')];

const cases: Record<string, { sc: Scenario; want: string[] }> = {
  'pipelined: MAIL, RCPT and DATA in one write, one recipient refused': {
    sc: { caps: P, replies: { RCPT: ['250 ok', '550 5.1.1 no such user'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 ok',
      'T <<< 550 5.1.1 no such user',
      'T <<< 354 go',
      'T >>> (29 bytes of content) .',
      'W message content: Subject: hi⏎⏎hello⏎..dot⏎.⏎',
      'T <<< 250 2.0.0 queued',
      'O b@x.example permfail 5.1.1 host [127.0.0.1]:PORT said: 550 5.1.1 no such user (in reply to RCPT TO command)',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'cached session: RSET travels in the pipelined group': {
    sc: { caps: P, rsetFirst: true },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: RSET⏎MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 354 go',
      'T >>> (29 bytes of content) .',
      'W message content: Subject: hi⏎⏎hello⏎..dot⏎.⏎',
      'T <<< 250 2.0.0 queued',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'cached session: RSET refused in the group, every recipient undecided': {
    sc: { caps: P, rsetFirst: true, replies: { RSET: ['421 going away'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: RSET⏎MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 421 going away',
      'R undecided=a@x.example,b@x.example nextHost=true failure=4.4.2 [127.0.0.1]:PORT: RSET failed on a cached connection',
      'R messages=0',
    ],
  },
  'pipelined: MAIL refused but DATA accepted: an empty message ended, then RSET': {
    sc: { caps: P, replies: { MAIL: ['550 5.7.1 no'], RCPT: ['503 need mail'], DATA: ['354 go'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 550 5.7.1 no',
      'T <<< 503 need mail',
      'T <<< 503 need mail',
      'T <<< 354 go',
      'W end of data: .⏎',
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'O a@x.example permfail 5.7.1 host [127.0.0.1]:PORT said: 550 5.7.1 no (in reply to MAIL FROM command)',
      'O b@x.example permfail 5.7.1 host [127.0.0.1]:PORT said: 550 5.7.1 no (in reply to MAIL FROM command)',
      'R undecided= nextHost=false failure=',
      'R messages=0',
    ],
  },
  'pipelined: MAIL 451: the next host may take the recipients': {
    sc: { caps: P, replies: { MAIL: ['451 4.3.0 later'], RCPT: ['503 need mail'], DATA: ['503 need mail'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 451 4.3.0 later',
      'T <<< 503 need mail',
      'T <<< 503 need mail',
      'T <<< 503 need mail',
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'R undecided=a@x.example,b@x.example nextHost=true failure=4.3.0 host [127.0.0.1]:PORT said: 451 4.3.0 later (in reply to MAIL FROM command)',
      'R messages=0',
    ],
  },
  'pipelined: no recipient accepted, DATA accepted anyway': {
    sc: { caps: P, replies: { RCPT: ['550 no'], DATA: ['354 go'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 550 no',
      'T <<< 550 no',
      'T <<< 354 go',
      'W end of data: .⏎',
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'O a@x.example permfail 5.0.0 host [127.0.0.1]:PORT said: 550 no (in reply to RCPT TO command)',
      'O b@x.example permfail 5.0.0 host [127.0.0.1]:PORT said: 550 no (in reply to RCPT TO command)',
      'R undecided= nextHost=false failure=',
      'R messages=0',
    ],
  },
  'pipelined: content in batches, the last with the dot': {
    sc: { caps: P, tuning: { dataBatch: 8 }, bodyChunks: LINES },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 354 go',
      'W message content: Subject: hi⏎⏎',
      'W message content: line number⏎',
      'W message content: line number⏎',
      'T >>> (54 bytes of content) .',
      'W message content: line number⏎.⏎',
      'T <<< 250 2.0.0 queued',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'pipelined: connection lost after the dot: a possible duplicate': {
    sc: { caps: P, replies: { DOT: ['DROP'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 354 go',
      'T >>> (29 bytes of content) .',
      'W message content: Subject: hi⏎⏎hello⏎..dot⏎.⏎',
      'O a@x.example tempfail 4.4.2 lost connection with [127.0.0.1]:PORT after end of data: the message may have been delivered (a possible duplicate; retrying)',
      'O b@x.example tempfail 4.4.2 lost connection with [127.0.0.1]:PORT after end of data: the message may have been delivered (a possible duplicate; retrying)',
      'R undecided= nextHost=false failure=4.4.2 lost connection with [127.0.0.1]:PORT after end of data',
      'R messages=0',
    ],
  },
  'pipelined: connection lost at RCPT: nothing delivered, next host': {
    sc: { caps: P, replies: { RCPT: ['250 ok', 'DROP'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 ok',
      'R undecided=a@x.example,b@x.example nextHost=true failure=4.4.2 lost connection with [127.0.0.1]:PORT while sending RCPT TO',
      'R messages=0',
    ],
  },
  'the body cannot be read: dropped, temporary failure': {
    sc: { caps: P, bodyError: true },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, DATA (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎DATA⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 354 go',
      'O a@x.example tempfail 4.3.0 cannot read the queued message: disk on fire',
      'O b@x.example tempfail 4.3.0 cannot read the queued message: disk on fire',
      'R undecided= nextHost=false failure=',
      'R messages=0',
    ],
  },
  'pipelined BDAT LAST: a small message in one write and one round trip': {
    sc: { caps: PC },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, BDAT 28 LAST (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎BDAT 28 LAST⏎Subject: hi⏎⏎hello⏎.dot⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 queued',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'pipelined BDAT with a cached session: RSET on its own first': {
    sc: { caps: PC, rsetFirst: true },
    want: [
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, BDAT 28 LAST (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎BDAT 28 LAST⏎Subject: hi⏎⏎hello⏎.dot⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 queued',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'pipelined BDAT in chunks, one refused: RSET': {
    sc: { caps: PC, tuning: { bdatChunk: 10 }, bodyChunks: LINES, replies: { BDAT: ['250 ok', '452 4.3.1 full'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME … 2 RCPT, BDAT 15 (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎BDAT 15⏎Subject: hi⏎⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 ok',
      'T >>> BDAT 13',
      'W BDAT chunk: BDAT 13⏎line number⏎',
      'T <<< 452 4.3.1 full',
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'O a@x.example tempfail 4.3.1 host [127.0.0.1]:PORT said: 452 4.3.1 full (in reply to BDAT command)',
      'O b@x.example tempfail 4.3.1 host [127.0.0.1]:PORT said: 452 4.3.1 full (in reply to BDAT command)',
      'R undecided= nextHost=false failure=',
      'R messages=0',
    ],
  },
  'without PIPELINING: one command at a time': {
    sc: { caps: ['8BITMIME'], rsetFirst: true, replies: { RCPT: ['250 ok', '450 4.2.1 busy'] } },
    want: [
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> MAIL FROM:<alice@example.net> BODY=8BITMIME',
      'W MAIL FROM: MAIL FROM:<alice@example.net> BODY=8BITMIME⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> RCPT TO:<a@x.example>',
      'W RCPT TO: RCPT TO:<a@x.example>⏎',
      'T <<< 250 ok',
      'T >>> RCPT TO:<b@x.example>',
      'W RCPT TO: RCPT TO:<b@x.example>⏎',
      'T <<< 450 4.2.1 busy',
      'T >>> DATA',
      'W DATA: DATA⏎',
      'T <<< 354 go',
      'T >>> (29 bytes of content) .',
      'W message content: Subject: hi⏎⏎hello⏎..dot⏎.⏎',
      'T <<< 250 2.0.0 queued',
      'O b@x.example tempfail 4.2.1 host [127.0.0.1]:PORT said: 450 4.2.1 busy (in reply to RCPT TO command)',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'without PIPELINING: MAIL 421': {
    sc: { caps: [], replies: { MAIL: ['421 4.3.2 shutting down'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net>',
      'W MAIL FROM: MAIL FROM:<alice@example.net>⏎',
      'T <<< 421 4.3.2 shutting down',
      'T >>> RSET',
      'W RSET: RSET⏎',
      'T <<< 250 2.0.0 ok',
      'R undecided=a@x.example,b@x.example nextHost=true failure=4.3.2 host [127.0.0.1]:PORT said: 421 4.3.2 shutting down (in reply to MAIL FROM command)',
      'R messages=0',
    ],
  },
  'without PIPELINING, CHUNKING: BDAT chunks each with their reply': {
    sc: { caps: ['CHUNKING'], tuning: { bdatChunk: 10 }, bodyChunks: LINES },
    want: [
      'T >>> MAIL FROM:<alice@example.net>',
      'W MAIL FROM: MAIL FROM:<alice@example.net>⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> RCPT TO:<a@x.example>',
      'W RCPT TO: RCPT TO:<a@x.example>⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> RCPT TO:<b@x.example>',
      'W RCPT TO: RCPT TO:<b@x.example>⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> BDAT 15',
      'W BDAT chunk: BDAT 15⏎Subject: hi⏎⏎',
      'T <<< 250 2.0.0 chunk',
      'T >>> BDAT 13',
      'W BDAT chunk: BDAT 13⏎line number⏎',
      'T <<< 250 2.0.0 chunk',
      'T >>> BDAT 13',
      'W BDAT chunk: BDAT 13⏎line number⏎',
      'T <<< 250 2.0.0 chunk',
      'T >>> BDAT 13 LAST',
      'W BDAT chunk: BDAT 13 LAST⏎line number⏎',
      'T <<< 250 2.0.0 queued',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 2.0.0 queued',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'LMTP, pipelined BDAT LAST: one reply per accepted recipient': {
    sc: { caps: ['PIPELINING', 'CHUNKING'], lmtp: true, rcpts: ['a@x.example', 'b@x.example', 'c@x.example'], replies: { RCPT: ['250 a', '550 b', '250 c'], BDATLAST: ['250 a ok\n452 4.2.2 c full'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> … 3 RCPT, BDAT 28 LAST (pipelined)',
      'W MAIL, RCPT and DATA: MAIL FROM:<alice@example.net>⏎RCPT TO:<a@x.example>⏎RCPT TO:<b@x.example>⏎RCPT TO:<c@x.example>⏎BDAT 28 LAST⏎Subject: hi⏎⏎hello⏎.dot⏎',
      'T <<< 250 2.0.0 ok',
      'T <<< 250 a',
      'T <<< 550 b',
      'T <<< 250 c',
      'T <<< 250 a ok',
      'O b@x.example permfail 5.0.0 host [127.0.0.1]:PORT said: 550 b (in reply to RCPT TO command)',
      'O a@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 a ok',
      'O c@x.example tempfail 4.2.2 host [127.0.0.1]:PORT said: 452 4.2.2 c full (in reply to end of DATA command)',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
  'LMTP, DATA: one reply per accepted recipient': {
    sc: { caps: ['8BITMIME'], lmtp: true, replies: { DOT: ['451 a later\n250 b ok'] } },
    want: [
      'T >>> MAIL FROM:<alice@example.net> BODY=8BITMIME',
      'W MAIL FROM: MAIL FROM:<alice@example.net> BODY=8BITMIME⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> RCPT TO:<a@x.example>',
      'W RCPT TO: RCPT TO:<a@x.example>⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> RCPT TO:<b@x.example>',
      'W RCPT TO: RCPT TO:<b@x.example>⏎',
      'T <<< 250 2.0.0 ok',
      'T >>> DATA',
      'W DATA: DATA⏎',
      'T <<< 354 go',
      'T >>> (29 bytes of content) .',
      'W message content: Subject: hi⏎⏎hello⏎..dot⏎.⏎',
      'T <<< 451 a later',
      'T <<< 250 b ok',
      'O a@x.example tempfail 4.0.0 host [127.0.0.1]:PORT said: 451 a later (in reply to end of DATA command)',
      'O b@x.example ok 2.0.0 delivered to [127.0.0.1]:PORT: 250 b ok',
      'R undecided= nextHost=false failure=',
      'R messages=1',
    ],
  },
};

for (const [name, { sc, want }] of Object.entries(cases)) {
  test(`transaction transcript: ${name}`, async () => {
    assert.deepEqual(await transcript(sc), want);
  });
}
