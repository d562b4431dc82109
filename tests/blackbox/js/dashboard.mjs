// The dashboard in a real browser: headless Chromium (Debian's) driven by
// playwright-core, for tests/blackbox/test_dashboard.py.
//   node dashboard.mjs URL USER PASSWORD OUTDIR full|reduced VICTIM
// (DASH_USER and DASH_USER_PW in the environment: a user's, not an admin's,
// signed in after the admin in the full run.)
// Talks to the harness on stdio, one JSON object a line: it prints
// {"kill": PID} when the VICTIM kernel's tile shows its pid, and waits for
// a line on stdin saying the harness killed it; at the end it prints
// {"result": {...}} (or {"failure": "..."} and exits 1). Screenshots go to
// OUTDIR. Every console error, page error and failed request of the page
// is a failure.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const { chromium } = require('playwright-core');

const [base, user, password, outdir, mode, victim] = process.argv.slice(2);
const full = mode === 'full';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const problems = [];
const shots = [];
const timings = {};
// Bounds: the harness passes scaled ones through the environment.
const RECOVER_MS = Number(process.env.DASH_RECOVER_MS || 10000);
const STEP_MS = Number(process.env.DASH_STEP_MS || 10000);

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function shot(page, name) {
  const file = path.join(outdir, name + '.png');
  await page.screenshot({ path: file });
  shots.push(file);
}

async function visit(page, name, ready, shotName = name) {
  const t0 = Date.now();
  await page.click(`#nav a[data-page="${name}"]`);
  await page.waitForSelector(`#page-${name}:not([hidden])`, { timeout: STEP_MS });
  await page.waitForFunction(ready, null, { timeout: STEP_MS, polling: 100 });
  timings[shotName + '_ms'] = Date.now() - t0;
  await shot(page, shotName);
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Root in CI has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('requestfailed', (r) => {
    // The live feed is cut when the browser closes: not the page's fault.
    if (!r.url().endsWith('/dashboard/events')) problems.push(`request failed: ${r.url()} ${r.failure().errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });

  // Sign in with the cookie session.
  let t0 = Date.now();
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('#page-signin:not([hidden])', { timeout: STEP_MS });
  await shot(page, 'signin');
  // Keyboard: the form has the focus, Tab walks it in order, and every
  // input is labelled.
  const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.tagName);
  check(await focused() === 'username', 'the sign-in form does not have the focus');
  await page.keyboard.press('Tab');
  check(await focused() === 'password', 'Tab does not go from the user name to the password');
  await page.keyboard.press('Tab');
  check(await focused() === 'BUTTON', 'Tab does not go from the password to the button');
  check(await page.evaluate(() => [...document.querySelectorAll('input')].every((i) => i.labels.length > 0)), 'an input has no label');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#page-kernels:not([hidden])', { timeout: STEP_MS });
  await page.waitForSelector('#feed[data-feed="open"]', { timeout: STEP_MS });
  await page.waitForFunction(() => document.querySelectorAll('#tiles li.tile').length > 0, null, { timeout: STEP_MS });
  timings.signin_ms = Date.now() - t0;
  const cookie = (await context.cookies()).find((c) => c.name === 'grace_session');
  check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is not HttpOnly and SameSite=Strict');
  check(await page.evaluate(() => document.cookie === ''), 'the page can read the session cookie');
  await shot(page, 'kernels');
  // Every button says what it does to which kernel.
  check(await page.evaluate(() => [...document.querySelectorAll('button')].every((b) => (b.getAttribute('aria-label') || b.textContent).trim())), 'a button has no name');

  if (full) {
    // A kernel killed from outside: its tile goes red, then green with a
    // new pid, without a reload.
    const tile = `#tiles li[data-kernel="${victim}"]`;
    await page.waitForSelector(`${tile}[data-color="green"]`, { timeout: STEP_MS });
    const pid = Number(await page.getAttribute(tile, 'data-pid'));
    await page.evaluate((sel) => {
      window.__notReloaded = true;
      window.__colors = [];
      const li = document.querySelector(sel);
      new MutationObserver(() => window.__colors.push(li.dataset.color + ':' + li.dataset.state))
        .observe(li, { attributes: true, attributeFilter: ['data-color'] });
    }, tile);
    out({ kill: pid });
    const said = await lines.next();
    check(!said.done && said.value.trim() === 'killed', 'the harness did not kill the kernel');
    t0 = Date.now();
    await page.waitForFunction((sel) => window.__colors.some((c) => c.startsWith('red')), tile, { timeout: RECOVER_MS, polling: 50 });
    timings.red_ms = Date.now() - t0;
    await shot(page, 'kernels-recovering');
    await page.waitForFunction(([sel, old]) => {
      const li = document.querySelector(sel);
      return li.dataset.color === 'green' && li.dataset.pid !== '' && Number(li.dataset.pid) !== old;
    }, [tile, pid], { timeout: RECOVER_MS, polling: 50 });
    timings.green_ms = Date.now() - t0;
    check(await page.evaluate(() => window.__notReloaded === true), 'the page was reloaded');
    const colors = await page.evaluate(() => window.__colors);
    check(colors.indexOf(colors.find((c) => c.startsWith('red'))) < colors.lastIndexOf(colors.find((c) => c.startsWith('green'))), 'green did not follow red: ' + colors.join(' '));
    timings.colors = colors;

    // An admin's button: a restart through POST /kernel-ports/NAME/restart
    // with the cookie (a JSON body from the page's own origin: CSRF rules).
    const answer = page.waitForResponse((r) => r.url().endsWith(`/kernel-ports/${victim}/restart`), { timeout: STEP_MS });
    await page.click(`${tile} button[data-action="restart"]`);
    check((await answer).status() === 202, 'the restart was not accepted');
    await page.waitForFunction((name) => document.getElementById('status').textContent === `restart ${name}: accepted`, victim, { timeout: STEP_MS });
    await page.waitForSelector(`${tile}[data-color="green"]`, { timeout: RECOVER_MS });
    // And a heal (POST /network-healer/heal): its incident is then listed.
    await page.click(`${tile} button[data-action="heal"]`);
    await page.waitForFunction((name) => document.getElementById('status').textContent.startsWith(`heal ${name}: `) &&
      /incident \d+/.test(document.getElementById('status').textContent), victim, { timeout: STEP_MS });

    // A narrow window: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 380, height: 800 });
    check(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page is wider than a narrow window');
    await shot(page, 'kernels-narrow');
    await page.setViewportSize({ width: 1100, height: 760 });

    // Every other page, each with what it shows.
    await visit(page, 'incidents', () => document.querySelector('#incidents details'));
    check(await page.isVisible('#incidents details table.steps tbody tr'), 'an incident shows no steps');
    await visit(page, 'alerts', () => document.querySelector('#alerts table, #alerts p') && document.querySelector('#silences table, #silences p'));
    await visit(page, 'metrics', () => document.querySelectorAll('#charts figure.chart svg').length === 3);
    // Traces: the search lists spans; a trace opened by id is a
    // waterfall of its spans, the gateway's forward under the API's span
    // and the kernel's handler under it, each with its bar.
    await visit(page, 'traces', () => document.querySelector('#traces table tbody tr'));
    const tid = process.env.DASH_TRACE_ID;
    await page.fill('#trace-id', tid);
    await page.press('#trace-id', 'Enter');
    await page.waitForFunction((id) => location.hash === '#/traces/' + id &&
      document.querySelectorAll('#trace table.waterfall tbody tr').length >= 3, tid, { timeout: STEP_MS, polling: 100 });
    const rows = await page.$$eval('#trace table.waterfall tbody tr', (trs) => trs.map((tr) => ({
      name: tr.querySelector('td.name .span-name').textContent,
      depth: Number(tr.dataset.depth),
      width: Number(tr.querySelector('td.bar rect').getAttribute('width')),
    })));
    const depth = (n) => (rows.find((r) => r.name === n) || { depth: -1 }).depth;
    check(depth('GET /bus/subjects') === 0, 'the API span is not the root: ' + JSON.stringify(rows));
    check(depth('forward message_bus') === 1, 'the forward is not the API span\'s child: ' + JSON.stringify(rows));
    check(depth('GET /subjects') === 2, 'the kernel handler is not the forward\'s child: ' + JSON.stringify(rows));
    check(rows.every((r) => r.width > 0), 'a span has no bar');
    timings.trace_rows = rows.length;
    await shot(page, 'trace');
    // Search by service and minimum duration, from the form.
    await page.fill('#ts-service', 'grace.message_bus');
    await page.fill('#ts-min', '0');
    await page.click('#trace-search button');
    await page.waitForFunction(() => location.hash === '#/traces' && document.querySelector('#traces table tbody tr') &&
      [...document.querySelectorAll('#traces tbody tr td:nth-child(2)')].every((td) => td.textContent === 'grace.message_bus'),
    null, { timeout: STEP_MS, polling: 100 });
    await visit(page, 'audit', () => document.querySelector('#audit table, #audit p'));
    const check_button = await page.$('#audit button');
    if (check_button) {
      await check_button.click();
      await page.waitForFunction(() => /included at \d+ of a signed tree of \d+/.test(document.getElementById('audit').textContent), null, { timeout: STEP_MS });
      timings.proof_checked = true;
    }
    // Keyboard: the pages are reached by Tab and Enter from the nav.
    await page.focus('#nav a[data-page="kernels"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#page-kernels:not([hidden])', { timeout: STEP_MS });
  }
  // Signing out ends the session.
  await page.click('#signout');
  await page.waitForSelector('#page-signin:not([hidden])', { timeout: STEP_MS });
  check((await context.cookies()).every((c) => c.name !== 'grace_session' || c.value === ''), 'sign out left the cookie');
  if (full && process.env.DASH_USER) {
    // A user (not an admin): the tiles, live, without the admin's buttons
    // or the audit page, and nothing the API refuses.
    await page.fill('#username', process.env.DASH_USER);
    await page.fill('#password', process.env.DASH_USER_PW);
    await page.click('#signin-form button');
    await page.waitForSelector('#feed[data-feed="open"]', { timeout: STEP_MS });
    await page.waitForFunction(() => document.querySelectorAll('#tiles li.tile').length > 0, null, { timeout: STEP_MS });
    check(await page.$$eval('#tiles button', (b) => b.length) === 0, 'a user sees the admin\'s buttons');
    check(!(await page.isVisible('#nav a[data-page="audit"]')), 'a user sees the audit page\'s link');
    await visit(page, 'incidents', () => document.querySelector('#incidents details'), 'incidents-user');
    await page.click('#signout');
    await page.waitForSelector('#page-signin:not([hidden])', { timeout: STEP_MS });
  }
  await browser.close();
  browser = null;
  if (problems.length) throw new Error('the page logged errors: ' + problems.join(' | '));
  out({ result: { timings, shots } });
} catch (e) {
  out({ failure: String(e && e.message || e), problems, shots, timings });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
process.exit(0);
