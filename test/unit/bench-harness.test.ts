/*
 * test/unit/bench-harness.test.ts — the benchmark harness (bench/) works:
 * the load generator against a tiny SMTP server in this process (with and
 * without PIPELINING, refusals, reconnection after N messages), the
 * message it sends, the result table, the /proc sampling of this very
 * process, the plan made from the command line, and the parsers of the
 * peers' counters and of CPU profiles. Fast, no peers, no timing
 * assertions: the benchmark itself is `npm run bench`, not a test.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Resolver } from 'node:dns/promises';
import { nxdomainAnswer, startDnsStub } from '../../bench/dns.js';
import { buildMessage, runLoad } from '../../bench/load.js';
import { makePlan } from '../../bench/options.js';
import { PeakSampler, cpuDelta, parseRollup, parseStat, processTree, running, sampleTree, treeCpuByName, treeCpuSeconds } from '../../bench/proc.js';
import { summarizeProfile, type CpuProfile } from '../../bench/profile.js';
import { authCostLines, cpuBreakdownLines, formatMarkdownTable, formatRate, formatReportMarkdown, formatReportText, formatText, summarizeCell, tableRows, TABLE_HEADER, type BenchResults, type RunFigures } from '../../bench/report.js';
import { lastMessageCount } from '../../bench/servers/sink.js';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dovecotConfig, dovecotUnavailable, startDovecot } from '../../bench/dovecot.js';
import { destinationUnavailable } from '../../bench/destinations.js';
import { EXTRA_SCENARIOS } from '../../bench/extra-scenarios.js';
import { SCENARIOS } from '../../bench/scenarios.js';
import { haraka } from '../../bench/servers/haraka.js';
import { opensmtpdConfig } from '../../bench/servers/opensmtpd.js';
import { posternConfig } from '../../bench/servers/postern.js';
import { postfixMainCf, postfixMasterCf, withLines } from '../../bench/servers/postfix.js';
import { MDA_COMMAND, MODES, smtpdAction } from '../../bench/servers/server.js';
import { countNew, ensureMailOwner, MAIL_OWNER, newestCtimeMs, PROCMAILRC } from '../../bench/users.js';
import { lastCounter } from '../../bench/smtp-source.js';
import { percentile, spread, summarizeLatencies } from '../../bench/stats.js';

/* ------------------------------------------- a tiny SMTP server */

interface TinyOptions {
  readonly pipelining: boolean;
  /** Refuse every MAIL whose ordinal (1-based, over all sessions) is a multiple of this (0: never). */
  readonly refuseEveryMail: number;
}

interface Tiny {
  readonly port: number;
  readonly messages: Buffer[];
  connections: number;
  mails: number;
  close(): Promise<void>;
}

/** Just enough SMTP: line commands (pipelined or not), DATA to CRLF.CRLF, QUIT. */
async function tinyServer(o: TinyOptions): Promise<Tiny> {
  const state: Tiny = {
    port: 0,
    messages: [],
    connections: 0,
    mails: 0,
    close: () => new Promise((r) => server.close(() => r())),
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    state.connections++;
    let buf = Buffer.alloc(0);
    let inData = false;
    let mailOk = false;
    s.write('220 tiny ESMTP\r\n');
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const out: string[] = [];
      for (let guard = 0; guard < 10_000; guard++) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) break;
          state.messages.push(buf.subarray(0, end + 5));
          buf = buf.subarray(end + 5);
          inData = false;
          mailOk = false;
          out.push('250 2.0.0 queued');
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol < 0) break;
        const line = buf.subarray(0, eol).toString('latin1');
        buf = buf.subarray(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') out.push(`250-tiny${o.pipelining ? '\r\n250-PIPELINING' : ''}\r\n250 SIZE 1000000`);
        else if (verb === 'MAIL') {
          state.mails++;
          mailOk = !(o.refuseEveryMail > 0 && state.mails % o.refuseEveryMail === 0);
          out.push(mailOk ? '250 2.1.0 ok' : '451 4.3.0 try later');
        } else if (verb === 'RCPT') out.push('250 2.1.5 ok');
        else if (verb === 'DATA') {
          inData = mailOk;
          out.push(mailOk ? '354 go ahead' : '503 5.5.1 MAIL first');
        } else if (verb === 'RSET') {
          mailOk = false;
          out.push('250 2.0.0 ok');
        }
        else if (verb === 'QUIT') {
          out.push('221 2.0.0 bye');
          s.end(out.join('\r\n') + '\r\n');
          return;
        } else out.push('500 5.5.1 what?');
      }
      if (out.length > 0) s.write(out.join('\r\n') + '\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  (state as { port: number }).port = typeof a === 'object' && a ? a.port : 0;
  const close = state.close;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await close();
  };
  return state;
}

describe('bench load generator', () => {
  let tiny: Tiny;
  before(async () => {
    tiny = await tinyServer({ pipelining: true, refuseEveryMail: 0 });
  });
  after(async () => tiny.close());

  it('sends exactly the number of messages asked for, pipelined, reconnecting every perSession messages', async () => {
    const r = await runLoad({ port: tiny.port, sessions: 3, size: 2000, rcpts: 2, maxMessages: 30, perSession: 4, durationMs: 60_000 });
    assert.equal(r.accepted, 30);
    assert.equal(r.refused, 0);
    assert.equal(r.broken, 0);
    assert.deepEqual(r.errors, {});
    assert.equal(tiny.messages.length, 30);
    // 30 messages in sessions of at most 4: at least 8 connections.
    assert.ok(r.connections >= 8, `connections ${r.connections}`);
    assert.equal(r.latency.count, 30);
    assert.ok(r.latency.p50 <= r.latency.p99 && r.latency.p99 <= r.latency.max);
    for (const m of tiny.messages) {
      // Content (its last CRLF included) then ".\r\n".
      assert.ok(Math.abs(m.length - 3 - 2000) <= 2, `message of ${m.length - 3} bytes`);
      assert.ok(m.subarray(-5).equals(Buffer.from('\r\n.\r\n')));
    }
  });

  it('works without PIPELINING and counts refusals apart from acceptances', async () => {
    const plain = await tinyServer({ pipelining: false, refuseEveryMail: 5 });
    try {
      const r = await runLoad({ port: plain.port, sessions: 2, size: 500, rcpts: 1, maxMessages: 20, perSession: 100, durationMs: 60_000 });
      assert.equal(r.accepted + r.refused, 20);
      assert.equal(r.refused, 4);
      assert.equal(plain.messages.length, 16);
      assert.equal(r.errors['MAIL 451'], 4);
      assert.ok(r.sampleReplies[0]?.includes('451'));
    } finally {
      await plain.close();
    }
  });

  it('reports a refused connection as an error, not as mail', async () => {
    const closed = await tinyServer({ pipelining: true, refuseEveryMail: 0 });
    const port = closed.port;
    await closed.close();
    const r = await runLoad({ port, sessions: 1, maxMessages: 5, durationMs: 300 });
    assert.equal(r.accepted, 0);
    assert.ok((r.errors['connect ECONNREFUSED'] ?? 0) >= 1, JSON.stringify(r.errors));
  });

  it('builds messages of the requested size with CRLF lines only', () => {
    for (const size of [300, 1024, 102_400]) {
      const m = buildMessage(size, { sender: 'a@b.test', rcpt: 'c@d.test' });
      const body = m.subarray(0, m.length - 3).toString('latin1');
      assert.ok(Math.abs(body.length - size) <= 2, `${size}: ${body.length}`);
      assert.ok(m.toString('latin1').endsWith('\r\n.\r\n'));
      assert.equal(/\r(?!\n)|(?<!\r)\n/.test(body), false, 'no bare CR or LF');
    }
  });
});

/* ---------------------------------------------------------- tables */

function run(rate: number, over: Partial<RunFigures> = {}): RunFigures {
  return {
    accepted: 100,
    arrived: 100,
    counted: 100,
    elapsedMs: 1000,
    rate,
    latencyMs: { count: 100, p50: 2, p90: 4, p99: 9, max: 12 },
    peakRssKb: 50 * 1024,
    peakPssKb: 40 * 1024,
    peakPids: 1,
    cpuSeconds: 0.1,
    errors: {},
    notes: [],
    ...over,
  };
}

describe('bench result table', () => {
  const cells = [
    summarizeCell({ scenario: 'maildir-1k-10', server: 'postern', tool: 'load', mode: 'maildir' }, [run(3000), run(2800), run(3100, { peakRssKb: 80 * 1024 })]),
    summarizeCell({ scenario: 'maildir-1k-10', server: 'postfix', tool: 'load', mode: 'maildir' }, [run(1000), run(900), run(1100)]),
    summarizeCell({ scenario: 'maildir-1k-10', server: 'opensmtpd', tool: 'load', mode: 'maildir' }, [], 'needs root'),
  ];

  it('summarises runs: median and range of the rate, peak memory over the runs, CPU per message', () => {
    const c = cells[0]!;
    assert.deepEqual(c.rate, { median: 3000, min: 2800, max: 3100, n: 3 });
    assert.equal(c.peakRssKb, 80 * 1024);
    assert.equal(c.p99Ms, 9);
    assert.equal(c.cpuUsPerMsg, 1000);
  });

  it('formats rates, ratios to Postfix and cells that did not run', () => {
    assert.equal(formatRate(cells[0]!.rate), '3,000 (2,800–3,100)');
    assert.equal(formatRate(spread([12.34])), '12.3');
    const rows = tableRows(cells);
    assert.equal(rows[0]![3], '3.00×');
    assert.equal(rows[1]![3], '1.00×');
    assert.equal(rows[0]![6], '80.0');
    assert.equal(rows[0]![9], '300/300');
    assert.match(rows[2]![2]!, /not run: needs root/);
  });

  it('aligns the text table and writes a Markdown table with one row per cell', () => {
    const rows = tableRows(cells.slice(0, 2));
    const text = formatText(TABLE_HEADER, rows).split('\n');
    assert.equal(text.length, 4);
    assert.equal(new Set(text.map((l) => l.length)).size, 1, 'every line as wide as the header');
    const md = formatMarkdownTable(TABLE_HEADER, rows).split('\n');
    assert.equal(md.length, 4);
    assert.match(md[1]!, /^\| --- \| --- \| ---: \|/);
  });

  it('renders a whole report as text and Markdown', () => {
    const results: BenchResults = {
      format: 'postern-bench 2',
      label: 'quick',
      argv: ['--quick'],
      startedAt: '2026-11-22T00:00:00.000Z',
      finishedAt: '2026-11-22T00:02:00.000Z',
      durationS: 120,
      machine: { cpus: 2, cpuModel: 'Test CPU', memoryMb: 4096, kernel: '6.1', os: 'Debian', loadAvgStart: [0.5, 0.4, 0.3], loadAvgEnd: [1, 1, 1] },
      params: { runs: 3, durationMs: 4000, warmupMs: 800, idleSessions: 10 },
      servers: { postern: { version: 'Postern 0.1.0', method: { maildir: 'fsync', lmtp: 'lmtp', mda: 'mda', relay: 'sink' } } },
      scenarios: [{ name: 'maildir-1k-10', title: '1 KB, 10 sessions' }],
      cells,
      destinationVersions: { dovecot: '2.3.19.1', procmail: '' },
      setupLog: [],
      timings: {
        setupS: 1.2,
        cells: [
          { scenario: 'maildir-1k-10', server: 'postern', seconds: 20.5, startS: 1, stopS: 1.5 },
          { scenario: 'maildir-1k-10', server: 'postfix', seconds: 15.2, startS: 0.1, stopS: 0.4 },
        ],
        extras: [{ name: 'large-queue', seconds: 240, parts: { 'both queues written': 80, 'postern measured': 45 } }],
        cleanupS: 3,
        totalS: 280,
      },
    };
    assert.match(formatReportText(results), /maildir-1k-10 +postern +3,000 \(2,800–3,100\)/);
    const md = formatReportMarkdown(results);
    assert.match(md, /^# Postern benchmark — quick/);
    assert.match(md, /Destinations: dovecot 2\.3\.19\.1; procmail not installed/);
    assert.match(md, /`npm run bench -- --quick`/);
    assert.match(md, /\| maildir-1k-10 \| postern \| 3,000 \(2,800–3,100\) \| 3\.00× \|/);
    // Where the time went: the last section, each part on a line.
    const time = md.slice(md.indexOf('## Where the time went'));
    assert.ok(md.indexOf('## Where the time went') > md.indexOf('| maildir-1k-10 |'));
    assert.match(time, /^- set-up \(peers, users, versions\): 1\.2 s$/m);
    assert.match(time, /^- load scenarios: 35\.7 s for 2 cells \(servers' start 1\.1 s, stop 1\.9 s\)$/m);
    assert.match(time, /^  - maildir-1k-10: 35\.7 s \(postern 20\.5, postfix 15\.2\)$/m);
    assert.match(time, /^- large-queue: 240 s \(both queues written 80\.0, postern measured 45\.0\)$/m);
    assert.match(time, /^- total: 280 s \(4\.7 min\)$/m);
    assert.match(formatReportText(results), /Where the time went:\n {2}set-up/);
  });
});

/* ---------------------------------------------------------- /proc */

describe('bench: every server does the same work', () => {
  it('gives Postern and OpenSMTPD the same action line in each mode, and never pauses delivery', () => {
    assert.equal(smtpdAction('maildir', {}), 'action "bench" maildir');
    assert.equal(smtpdAction('lmtp', { lmtpPort: 2424 }), 'action "bench" lmtp "127.0.0.1:2424"');
    assert.equal(smtpdAction('mda', {}), `action "bench" mda "${MDA_COMMAND}"`);
    assert.match(smtpdAction('relay', { sinkPort: 2525 }), /relay host smtp\+notls:\/\/127\.0\.0\.3:2525$/);
    for (const mode of MODES) {
      const p = posternConfig({ port: 2500, spool: '/x/spool', mode, lmtpPort: 2424, sinkPort: 2525 });
      const o = opensmtpdConfig({ port: 2500, mode, lmtpPort: 2424, sinkPort: 2525 });
      const action = smtpdAction(mode, { lmtpPort: 2424, sinkPort: 2525 });
      assert.ok(p.includes(action) && o.includes(action), mode);
      assert.match(p, /match from any for domain "bench\.test" action "bench"/);
    }
  });

  it('writes a Postfix instance that delivers locally, over LMTP or by relaying', () => {
    const maildir = postfixMainCf({ dir: '/x', mode: 'maildir' });
    assert.match(maildir, /^mydestination = bench\.test$/m);
    assert.match(maildir, /^home_mailbox = Maildir\/$/m);
    assert.match(maildir, /^local_recipient_maps = proxy:unix:passwd\.byname$/m);
    assert.doesNotMatch(maildir, /transport_maps|discard/);
    const mda = postfixMainCf({ dir: '/x', mode: 'mda' });
    assert.ok(mda.includes(`mailbox_command = ${MDA_COMMAND}`));
    assert.doesNotMatch(mda, /home_mailbox/);
    const lmtp = postfixMainCf({ dir: '/x', mode: 'lmtp', lmtpPort: 2424 });
    assert.match(lmtp, /^transport_maps = inline:\{bench\.test=lmtp:inet:127\.0\.0\.1:2424\}$/m);
    assert.match(lmtp, /^mydestination =$/m);
    assert.match(postfixMainCf({ dir: '/x', mode: 'relay', sinkPort: 2525 }), /=smtp:\[127\.0\.0\.3\]:2525\}/);
    // A scenario's line replaces the base's for the same parameter (no "overriding earlier entry" in every process).
    const routed = withLines(postfixMainCf({ dir: '/x', mode: 'relay', sinkPort: 2525 }), ['transport_maps = inline:{down.test=smtp:[127.0.13.2]:9}', 'queue_run_delay = 1h']);
    assert.equal(routed.match(/^transport_maps =/gm)?.length, 1);
    assert.match(routed, /^transport_maps = inline:\{down\.test=smtp:\[127\.0\.13\.2\]:9\}\nqueue_run_delay = 1h\n$/m);
    assert.match(routed, /^relay_domains = bench\.test$/m);
    const master = postfixMasterCf(2500);
    assert.match(master, /^local +unix +- +n +n +- +- +local$/m);
    assert.match(master, /^lmtp +unix .* lmtp$/m);
  });

  it('writes a throwaway Dovecot configuration with everything in its folder', () => {
    const c = dovecotConfig({ dir: '/t/d', port: 2424, mailOwner: 'pbenchmail' });
    for (const line of ['base_dir = /t/d/run', 'state_dir = /t/d/state', 'protocols = lmtp', 'mail_location = maildir:/t/d/mail/%n/Maildir', 'mail_uid = pbenchmail', '    port = 2424']) assert.ok(c.split('\n').includes(line), line);
    assert.doesNotMatch(c, /\/etc\/dovecot/);
  });

  it('says which servers cannot do which work, and claims no ratio for them', () => {
    assert.equal(haraka.cannot?.('relay'), undefined);
    assert.match(haraka.cannot?.('maildir') ?? '', /no queue/);
    assert.ok(haraka.notSameWork);
    const cells = [
      summarizeCell({ scenario: 's', server: 'postern', tool: 'load', mode: 'maildir' }, [run(3000, { cpuSeconds: 0.05 })]),
      summarizeCell({ scenario: 's', server: 'postfix', tool: 'load', mode: 'maildir' }, [run(1000, { cpuSeconds: 0.2 })]),
      summarizeCell({ scenario: 's', server: 'haraka', tool: 'load', mode: 'maildir' }, [], 'cannot: Haraka has no queue and no local delivery'),
      summarizeCell({ scenario: 's', server: 'sink', tool: 'load', mode: 'maildir', notSameWork: 'stores nothing' }, [run(9000)]),
    ];
    const rows = tableRows(cells);
    assert.equal(rows[0]![3], '3.00×');
    assert.equal(rows[0]![10], '0.25', 'CPU per message against Postfix');
    assert.equal(rows[1]![10], '—');
    assert.equal(rows[2]![2], 'cannot: Haraka has no queue and no local delivery');
    assert.equal(rows[3]![3], 'not the same work');
    assert.equal(rows[3]![10], '—');
  });

  it('counts a maildir\'s new/ and finds its last delivery', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-maildir-'));
    try {
      assert.equal(countNew(dir), 0);
      assert.equal(newestCtimeMs([dir]), 0);
      mkdirSync(join(dir, 'new'));
      for (const f of ['1.a', '2.b', '3.c']) writeFileSync(join(dir, 'new', f), 'x');
      assert.equal(countNew(dir), 3);
      const t = newestCtimeMs([dir, join(dir, 'missing')]);
      assert.ok(t > 0 && t <= Date.now() + 1000);
      assert.match(PROCMAILRC, /^DEFAULT=\$HOME\/Maildir\/$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has a scenario for each kind of work the issue names, and a place to register scenarios of their own', () => {
    const names = SCENARIOS.map((s) => s.name);
    for (const n of ['maildir-1k-1', 'maildir-1k-10', 'maildir-1k-50', 'maildir-100k-1', 'maildir-100k-10', 'maildir-100k-50', 'lmtp-1k-10', 'users100', 'procmail-10', 'relay']) assert.ok(names.includes(n), n);
    assert.ok(SCENARIOS.every((s) => MODES.includes(s.mode)));
    assert.equal(SCENARIOS.find((s) => s.name === 'users100')?.rcpts, 100);
    assert.ok(Array.isArray(EXTRA_SCENARIOS));
    for (const mode of MODES) {
      const why = destinationUnavailable(mode);
      assert.ok(why === undefined || typeof why === 'string');
    }
  });

  it('starts the harness\'s Dovecot and counts what it stores (as root, with dovecot-lmtpd)', { skip: process.getuid?.() !== 0 ? 'needs root' : dovecotUnavailable() }, async () => {
    assert.equal(ensureMailOwner([]), undefined, `user ${MAIL_OWNER}`);
    const dir = mkdtempSync(join(tmpdir(), 'bench-dovecot-'));
    const d = await startDovecot(dir);
    try {
      const transcript = await lmtpSend(d.port, 'someone', 'Subject: t\r\n\r\nhello\r\n');
      assert.match(transcript, /250 2\.0\.0 <someone> .*Saved/i);
      for (let i = 0; i < 100 && d.delivered() === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(d.delivered(), 1);
      assert.ok(d.lastDeliveryMs() > 0);
    } finally {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** One LMTP transaction, a command at a time; resolves with the whole transcript. */
function lmtpSend(port: number, rcpt: string, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    const steps = ['LHLO bench.test\r\n', 'MAIL FROM:<a@bench.test>\r\n', `RCPT TO:<${rcpt}>\r\n`, 'DATA\r\n', `${message}.\r\n`, 'QUIT\r\n'];
    let text = '';
    let pending = '';
    s.setEncoding('latin1');
    s.setTimeout(10_000, () => s.destroy(new Error(`timeout: ${text}`)));
    s.on('error', reject);
    s.on('close', () => resolve(text));
    s.on('data', (d: string) => {
      text += d;
      pending += d;
      // Each complete reply (its last line has a space after the code) moves to the next step.
      for (;;) {
        const m = /^(\d{3}) .*\r\n/m.exec(pending);
        if (!m) break;
        pending = pending.slice(m.index + m[0].length);
        const next = steps.shift();
        if (next) s.write(next);
      }
    });
  });
}

describe('bench /proc sampling', () => {
  it('samples this process: memory, CPU time, its place in the tree', () => {
    // Burn a little CPU so utime is not zero on a fast machine (bounded loop, no timing asserted).
    let x = 0;
    for (let i = 0; i < 2_000_000; i++) x += Math.sqrt(i);
    assert.ok(x > 0);
    const s = sampleTree(process.pid);
    assert.ok(s.pids >= 1);
    assert.ok(s.rssKb > 1000, `rss ${s.rssKb} kB`);
    assert.ok(s.pssKb > 0 && s.pssKb <= s.rssKb, `pss ${s.pssKb} kB`);
    assert.ok(s.cpuSeconds > 0);
    assert.ok(treeCpuSeconds(process.pid) >= s.cpuSeconds);
    assert.ok(processTree(process.pid).includes(process.pid));
    assert.ok(processTree(process.ppid).includes(process.pid), 'found under its parent');
    const p = new PeakSampler(process.pid, 1000).start().stop();
    assert.ok(p.peakRssKb > 1000 && p.samples >= 2);
  });

  it('parses stat lines whose command name holds spaces and parentheses', () => {
    const line = '4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 100 1000 200';
    assert.deepEqual(parseStat(line), { pid: 4242, ppid: 17, comm: 'a (b) c', selfTicks: 300, childTicks: 10, state: 'S' });
    assert.equal(parseStat('garbage'), undefined);
    // A zombie has exited (stopTree does not wait for init to reap it).
    assert.equal(parseStat(line.replace(') S ', ') Z '))?.state, 'Z');
    assert.equal(running(process.pid), true);
  });

  it('splits the tree\'s CPU time by process name, the root apart', () => {
    const by = treeCpuByName(process.pid);
    const root = Object.keys(by).find((k) => k.endsWith(' (root)'));
    assert.ok(root, JSON.stringify(by));
    assert.deepEqual(cpuDelta({ a: 1, b: 2, gone: 5 }, { a: 1.5, b: 2, c: 0.25 }), { a: 0.5, c: 0.25 });
    const cell = summarizeCell({ scenario: 's', server: 'postfix', tool: 'load', mode: 'maildir' }, [
      run(100, { counted: 100, cpuByProcess: { smtpd: 0.1, local: 0.05, 'master (root)': 0.0000001 } }),
      run(100, { counted: 100, cpuByProcess: { smtpd: 0.1, local: 0.15 } }),
    ]);
    assert.deepEqual(cpuBreakdownLines([cell]), ['s / postfix: smtpd 1,000, local 1,000 µs']);
  });

  it('says what mail authentication costs against the same message unchecked', () => {
    const cell = (scenario: string, rate: number, cpuSeconds: number) => summarizeCell({ scenario, server: 'postern', tool: 'load', mode: 'relay' }, [run(rate, { counted: 100, cpuSeconds })]);
    assert.deepEqual(authCostLines([cell('auth-plain', 1000, 0.1), cell('auth-verify', 800, 0.15), cell('relay', 1200, 0.08)]), ['postern: auth-verify ÷ auth-plain = 0.80× the rate, 500 µs more CPU per message']);
    assert.deepEqual(authCostLines([cell('auth-verify', 800, 0.15)]), []);
    assert.ok(SCENARIOS.some((s) => s.name === 'auth-plain' && s.auth === 'plain' && s.quick));
  });

  it('parses smaps_rollup', () => {
    const text = '00400000-7ffd [rollup]\nRss:              123456 kB\nPss:               65432 kB\nPss_Anon:          40000 kB\n';
    assert.deepEqual(parseRollup(text), { rssKb: 123456, pssKb: 65432 });
    assert.equal(parseRollup('nothing'), undefined);
  });
});

/* ------------------------------------------------ plans and parsers */

describe('bench plan and parsers', () => {
  it('makes the quick plan smaller than the full one, and runs one scenario or server alone', () => {
    const full = makePlan([]);
    const quick = makePlan(['--quick']);
    assert.ok(full !== 'help' && quick !== 'help');
    assert.ok(quick.scenarios.length < full.scenarios.length);
    assert.equal(quick.params.runs, 1);
    assert.equal(full.params.runs, 3);
    assert.ok(!quick.servers.has('sink') && full.servers.has('sink'));
    assert.equal(quick.params.quick, true);
    assert.ok(quick.scenarios.some((s) => s.name === 'users100') && !quick.scenarios.some((s) => s.name === 'maildir-100k-50'));
    // --quick: Postern against Postfix (and the floor), longer runs; --server or --scenario widen it again.
    const q10 = quick.scenarios.find((s) => s.name === 'maildir-1k-10')!;
    assert.deepEqual(quick.serversFor(q10), ['postern', 'postfix', 'floor']);
    assert.ok(quick.params.durationMs >= 3000 && quick.params.warmupMs >= 2000);
    const qo = makePlan(['--quick', '--server', 'opensmtpd']);
    assert.ok(qo !== 'help');
    assert.deepEqual(qo.serversFor(q10), ['opensmtpd']);
    const qs = makePlan(['--quick', '--scenario', 'maildir-1k-10']);
    assert.ok(qs !== 'help');
    assert.deepEqual(qs.serversFor(qs.scenarios[0]!), ['postern', 'postfix', 'opensmtpd', 'haraka', 'sink', 'floor']);
    const one = makePlan(['--scenario', 'relay', '--server', 'postern']);
    assert.ok(one !== 'help');
    assert.deepEqual(one.scenarios.map((s) => s.name), ['relay']);
    assert.deepEqual(one.serversFor(one.scenarios[0]!), ['postern']);
    assert.equal(one.extraScenarios.length, 0);
    const idle = makePlan(['--scenario', 'idle']);
    assert.ok(idle !== 'help' && idle.scenarios.length === 0);
    assert.deepEqual(idle.extraScenarios.map((x) => x.name), ['idle']);
    assert.ok(idle.servers.has('postern'));
    // One list of extra scenarios: the disk, idle sessions and the large queue are in it, and --quick runs them (the cluster ones only full runs).
    const quickExtras = makePlan(['--quick']);
    assert.ok(quickExtras !== 'help');
    assert.deepEqual(quickExtras.extraScenarios.map((x) => x.name), ['fsync', 'idle', 'large-queue']);
    // --server without postern leaves out what only Postern runs, not the disk; the large queue runs Postfix too.
    const pf = makePlan(['--scenario', 'fsync,idle,large-queue', '--server', 'postfix']);
    assert.ok(pf !== 'help');
    assert.deepEqual(pf.extraScenarios.map((x) => x.name), ['fsync', 'large-queue']);
    // Each extra can be selected alone (e.g. to time it): the large queue, the cluster ones.
    for (const name of ['large-queue', 'cluster', 'cluster-smtp', 'antispam']) {
      const alone = makePlan(['--scenario', name]);
      assert.ok(alone !== 'help');
      assert.deepEqual([alone.scenarios.length, alone.extraScenarios.map((x) => x.name)], [0, [name]]);
    }
    const prof = makePlan(['--profile']);
    assert.ok(prof !== 'help');
    assert.deepEqual(prof.scenarios.map((s) => s.name), ['maildir-1k-10']);
    assert.throws(() => makePlan(['--scenario', 'nope']), /unknown scenario "nope"/);
    assert.throws(() => makePlan(['--runs', '0']), /--runs/);
    assert.equal(makePlan(['--help']), 'help');
  });

  it('answers DNS queries on loopback with NXDOMAIN at once', async () => {
    const dns = await startDnsStub();
    try {
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([`${dns.host}:${dns.port}`]);
      await assert.rejects(r.resolveMx('source.bench.test'), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND');
      assert.equal(dns.queries(), 1);
    } finally {
      await dns.stop();
    }
    assert.equal(nxdomainAnswer(Buffer.alloc(5)), undefined);
  });

  it('reads the counters of smtp-sink and smtp-source', () => {
    assert.equal(lastMessageCount('sess=1 quit=1 mesg=1\rsess=2 quit=2 mesg=17\r'), 17);
    assert.equal(lastMessageCount('sess=1 quit=1\r'), undefined);
    assert.equal(lastCounter('1\r2\r3\r\n'), 3);
    assert.equal(lastCounter(''), 0);
  });

  it('computes percentiles and spreads', () => {
    assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
    assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
    assert.ok(Number.isNaN(percentile([], 0.5)));
    assert.deepEqual(spread([3, 1, 2, NaN]), { median: 2, min: 1, max: 3, n: 3 });
    assert.equal(spread([1, 2, 3, 4]).median, 2.5);
    assert.equal(summarizeLatencies([5, 1, 3]).p50, 3);
  });

  it('finds the self time of functions in a CPU profile', () => {
    const frame = (functionName: string, url = ''): CpuProfile['nodes'][number]['callFrame'] => ({ functionName, url, lineNumber: 9, columnNumber: 0 });
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
        { id: 2, callFrame: frame('parse', 'file:///x/dist/src/wire/framer.js'), children: [] },
        { id: 3, callFrame: frame('(idle)'), children: [] },
        { id: 4, callFrame: frame('(garbage collector)'), children: [] },
      ],
      startTime: 0,
      endTime: 1000,
      samples: [2, 2, 3, 4, 2],
      timeDeltas: [100, 100, 500, 100, 100],
    };
    const s = summarizeProfile(profile, 5);
    assert.equal(s.idleMs, 0.5);
    assert.equal(s.functions[0]!.name, 'parse');
    assert.equal(s.functions[0]!.where, 'dist/src/wire/framer.js:10');
    assert.equal(s.functions[0]!.share, 0.75);
  });
});
