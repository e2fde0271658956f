/*
 * The dashboard in a real browser: the system's Chromium (Debian package
 * `chromium`), headless, driven by puppeteer-core (which downloads
 * nothing). Real mail goes through the real daemon — one message delivered
 * locally, one deferred (its relay host refuses connections) — and the page
 * must show the live figures; an admin token schedules the deferred
 * message from the page, a read-only token gets no buttons and a 403.
 *
 * The screenshot in docs/ is made by this test:
 *   npm run screenshot     (POSTERN_SCREENSHOT=docs/dashboard.png, this file)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { ADMIN, READER, sendMail, startHttpDaemon } from './http-helpers.js';

// The page's globals, for the functions that run in the browser (the tests compile without the DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const sessionStorage: any;

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launch(): Promise<{ browser: Browser; done: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'postern-chromium-'));
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, `--user-data-dir=${profile}`] });
  return {
    browser,
    done: async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function login(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  await page.type('#token', token);
  await page.keyboard.press('Enter'); // keyboard only: the form submits
  await page.waitForFunction(() => document.getElementById('conn')?.textContent === 'live', { timeout: 10_000 });
}

const text = (page: Page, sel: string): Promise<string> => page.$eval(sel, (e) => e.textContent ?? '');

test('the dashboard shows live figures; an admin schedules a deferred message, a read-only token cannot', { timeout: 90_000 }, async () => {
  const { d, base } = await startHttpDaemon('action "dead" relay host smtp+notls://127.0.0.1:9\nmatch from any for domain "dead.example" action "dead"', { deliver: true });
  const { browser, done } = await launch();
  try {
    const admin = await browser.newPage();
    await admin.setViewport({ width: 1280, height: 900 });
    await login(admin, base, ADMIN);
    assert.equal(await text(admin, '#who'), 'ops · admin');

    // Real mail, after the page is live: the figures move without a reload.
    assert.match(await sendMail(d.port, 'root@test.example'), /^250 /);
    assert.match(await sendMail(d.port, 'someone@dead.example', 'Subject: to a dead host\n\nhi'), /^250 /);
    await admin.waitForFunction(() => document.getElementById('total-received')?.textContent === '2' && document.getElementById('total-delivered')?.textContent === '1', { timeout: 20_000 });
    await admin.waitForFunction(() => Number(document.getElementById('total-deferred')?.textContent) >= 1, { timeout: 20_000 });
    await admin.waitForFunction(() => /dead\.example/.test(document.querySelector('#failing tbody')?.textContent ?? ''), { timeout: 10_000 });
    await admin.waitForFunction(() => /smtp message/.test(document.getElementById('log')?.textContent ?? ''), { timeout: 10_000 });
    assert.match(await text(admin, '#q-domains tbody'), /dead\.example/);

    // The deferred envelope is listed with its buttons; Schedule works.
    await admin.waitForFunction(() => [...document.querySelectorAll('#queue tbody tr')].some((tr: any) => tr.cells[3]?.textContent === 'deferred'), { timeout: 10_000 });
    const evpid = await admin.$eval('#queue tbody tr', (tr) => (tr as any).dataset['evpid'] ?? '');
    assert.match(evpid, /^[0-9a-f]{16}$/);
    if (process.env['POSTERN_SCREENSHOT']) {
      await new Promise((r) => setTimeout(r, 2500)); // a few seconds of the rate graph
      await admin.screenshot({ path: resolve(process.env['POSTERN_SCREENSHOT']) as `${string}.png`, fullPage: true });
    }
    // The search narrows the list (typed, then Enter).
    await admin.type('#q', 'dead.example');
    await admin.keyboard.press('Enter');
    await admin.waitForFunction(() => document.getElementById('page')?.textContent === '1–1 of 1', { timeout: 10_000 });
    await admin.$eval('#q', (e: any) => (e.value = 'nothing-matches-this'));
    await admin.keyboard.press('Enter');
    await admin.waitForFunction(() => document.getElementById('page')?.textContent === '0 of 0', { timeout: 10_000 });
    await admin.$eval('#q', (e: any) => (e.value = ''));
    await admin.keyboard.press('Enter');
    await admin.waitForSelector(`button[data-act="schedule"][data-target="${evpid}"]`, { timeout: 10_000 });
    // By keyboard: focus the button, press Enter.
    await admin.focus(`button[data-act="schedule"][data-target="${evpid}"]`);
    await admin.keyboard.press('Enter');
    await admin.waitForFunction((id) => document.getElementById('action-status')?.textContent === `schedule: 1 envelope(s) of ${id}`, { timeout: 10_000 }, evpid);
    await d.waitForLog(new RegExp(`http change token=ops command=schedule target=${evpid} result=ok`));
    await d.waitForLog(new RegExp(`control schedule target=${evpid}`));

    // Read-only: the same list without buttons, and the API refuses the change.
    const ctx = await browser.createBrowserContext();
    const viewer = await ctx.newPage();
    await viewer.setViewport({ width: 390, height: 844, isMobile: true }); // a phone
    await login(viewer, base, READER);
    assert.equal(await text(viewer, '#who'), 'viewer · read-only');
    await viewer.waitForFunction(() => document.querySelectorAll('#queue tbody tr[data-evpid]').length >= 1, { timeout: 10_000 });
    assert.equal(await viewer.$$eval('#queue button[data-act]', (b) => b.length), 0, 'no action buttons for a read-only token');
    const status = await viewer.evaluate(async (id) => {
      const token = sessionStorage.getItem('postern-token') ?? '';
      const r = await fetch(`/api/v1/queue/${id}/schedule`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      return r.status;
    }, evpid);
    assert.equal(status, 403);
    // Readable on a phone: nothing wider than the screen but the scrolling table.
    const overflow = await viewer.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await ctx.close();
  } finally {
    await done();
    await d.stop();
    d.cleanup();
  }
});
