/*
 * bench/torture/crash.ts — the checks where the daemon itself is hurt:
 *  - kill -9 in a loop under load: senders count every message the daemon
 *    acknowledged (250 after the final dot); after the last restart every
 *    one of them must reach the maildir (duplicates are allowed, counted);
 *  - a full disk: the spool on a small tmpfs (root only); the reply at the
 *    end of DATA must be 452 (4.3.1, mail system full: RFC 3463), and the
 *    daemon must live and take mail again once there is room.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../../test/helpers/smtp-client.js';
import { startDaemon, type Daemon } from './daemon.js';
import { row, type Row } from './report.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Send one message carrying `token`; resolves true when it was acknowledged (250 after the dot). */
async function sendOne(port: number, token: string, body = 'x\r\n'): Promise<boolean | number> {
  const c = await RawClient.open(port);
  try {
    const expect = async (code: number): Promise<void> => {
      const r = await c.reply(20_000);
      if (r.code !== code) throw Object.assign(new Error(r.text), { code: r.code });
    };
    await expect(220);
    c.send('EHLO crash.test\r\n');
    await expect(250);
    c.send('MAIL FROM:<load@crash.test>\r\n');
    await expect(250);
    c.send('RCPT TO:<torture@torture.example>\r\n');
    await expect(250);
    c.send('DATA\r\n');
    await expect(354);
    c.send(`Subject: ${token}\r\n\r\n${body}.\r\n`);
    const r = await c.reply(30_000);
    c.send('QUIT\r\n');
    return r.code === 250 ? true : r.code;
  } finally {
    c.close();
  }
}

/** Tokens (Subject: torture-N) found in the maildir, with their counts. */
function delivered(maildir: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const sub of ['new', 'cur']) {
    const d = join(maildir, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      const m = /^Subject: (torture-\d+)/m.exec(readFileSync(join(d, f), 'latin1'));
      if (m?.[1] !== undefined) found.set(m[1], (found.get(m[1]) ?? 0) + 1);
    }
  }
  return found;
}

export async function killLoop(dir: string, config: string, loops: number, periodMs: number, senders: number): Promise<Row> {
  let d: Daemon = await startDaemon(dir, config, { deliver: true });
  const acked = new Set<string>();
  let next = 0;
  let running = true;
  const sender = async (): Promise<void> => {
    while (running) {
      const token = `torture-${next++}`;
      const port = d.ports[0] as number;
      const ok = await sendOne(port, token).catch(() => false);
      if (ok === true) acked.add(token);
      else await sleep(20);
    }
  };
  const load = Array.from({ length: senders }, sender);
  for (let i = 0; i < loops; i++) {
    await sleep(periodMs);
    await d.kill9();
    d = await startDaemon(dir, config, { deliver: true });
  }
  running = false;
  await Promise.all(load);
  const drainStart = Date.now();
  const maildir = join(dir, 'Maildir', 'torture');
  const deadline = Date.now() + 300_000;
  let found = delivered(maildir);
  while ([...acked].some((t) => !found.has(t)) && Date.now() < deadline) {
    await sleep(500);
    found = delivered(maildir);
  }
  const lost = [...acked].filter((t) => !found.has(t));
  const drainS = ((Date.now() - drainStart) / 1000).toFixed(1);
  const dups = [...found.values()].reduce((n, c) => n + (c - 1), 0);
  const faults = d.faults();
  await d.stop();
  return row('kill -9 under load', lost.length === 0 && faults.length === 0, `${loops} kills; ${acked.size} acknowledged, ${acked.size - lost.length} delivered, ${lost.length} lost, ${dups} duplicates; all delivered ${drainS} s after the load`);
}

export async function fullDisk(dir: string, config: string): Promise<Row> {
  if (process.getuid?.() !== 0) return { check: 'full disk (tmpfs spool)', result: 'skipped', figures: 'needs root to mount a tmpfs' };
  const spool = join(dir, 'spool');
  mkdirSync(spool, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', spool]);
  try {
    const d = await startDaemon(dir, config, { deliver: false });
    const port = d.ports[0] as number;
    const big = `${'y'.repeat(998)}\r\n`.repeat(300); // about 300 KB
    let accepted = 0;
    let refusal: number | undefined;
    for (let i = 0; i < 40 && refusal === undefined; i++) {
      const r = await sendOne(port, `torture-disk-${i}`, big).catch((e: { code?: number }) => e.code ?? 0);
      if (r === true) accepted++;
      else refusal = r as number;
    }
    const alive = d.exited() === undefined && (await RawClient.open(port).then((c) => c.reply().then((x) => (c.close(), x.code === 220))).catch(() => false));
    await d.stop();
    const ok = refusal === 452 && alive;
    return row('full disk (tmpfs spool)', ok, `${accepted} × 300 KB accepted, then ${refusal ?? 'no refusal'}; daemon ${alive ? 'answers' : 'DOWN'}`);
  } finally {
    execFileSync('umount', ['-l', spool]);
  }
}
