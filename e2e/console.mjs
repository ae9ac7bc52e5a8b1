// Drives the web console in headless Chromium as an operator would, and prints what it saw as
// JSON (exit 0 when every check held, 1 with `failed` naming the first that did not).
//   node e2e/console.mjs API_URL TOKEN [--screenshots DIR] [--target RTMP_URL]
// API_URL is the sigma-server API listener (the console is API_URL/console). The script:
//  - refuses a wrong token, then signs in with TOKEN;
//  - creates a live stream in the dialog, reads its ingest URL and key (and the copy button);
//  - publishes to it with ffmpeg and times the list's row turning `active` against the API's
//    own status, polled at the same time (the page must follow within 3 s, without a reload);
//  - opens the stream: the preview plays (currentTime grows), the ingest figures show, a
//    simulcast target (--target, one that refuses connections) goes `errored` live, the
//    timeline has the broadcast's events; Complete turns it `idle`;
//  - creates a second stream with signed playback and "go live at once" off: it plays in
//    preview, and Start makes it `active`;
//  - shows the webhooks page with its endpoints' deliveries;
//  - checks that no request URL carried the token and that it is kept in sessionStorage only.
import { launchChromium } from './chromium.mjs';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const [api, token] = args;
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : null; };
const shots = opt('--screenshots');
const target = opt('--target');
if (!api || !token) { console.error('usage: console.mjs API_URL TOKEN [--screenshots DIR] [--target URL]'); process.exit(2); }
if (shots) mkdirSync(shots, { recursive: true });

const out = { checks: [], timings: {} };
const publishers = [];
const hard = setTimeout(() => { finish('hard timeout (240 s)'); }, 240000);

function check(name, ok, detail) {
  out.checks.push({ name, ok: !!ok, detail: detail === undefined ? undefined : String(detail) });
  if (!ok) throw new Error(`${name}${detail === undefined ? '' : `: ${detail}`}`);
}
async function apiGet(path) {
  const r = await fetch(api + path, { headers: { Authorization: `Bearer ${token}` } });
  return r.json();
}
function publish(url, seconds) {
  const p = spawn('ffmpeg', ['-nostdin', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30',
    '-pix_fmt', 'yuv420p', '-b:v', '800k', '-c:a', 'aac', '-b:a', '96k', '-f', 'flv', url],
  { stdio: 'ignore' });
  publishers.push(p);
  return p;
}
let browser = null;
let done = false;
async function finish(failure) {
  if (done) return;
  done = true;
  clearTimeout(hard);
  for (const p of publishers) { try { p.kill('SIGKILL'); } catch (_) { /* gone */ } }
  if (failure) out.failed = failure;
  try { if (browser) await browser.close(); } catch (_) { /* closing anyway */ }
  console.log(JSON.stringify(out, null, 1));
  process.exit(failure ? 1 : 0);
}
process.on('exit', () => { for (const p of publishers) { try { p.kill('SIGKILL'); } catch (_) { /* gone */ } } });

const shot = async (page, name) => { if (shots) await page.screenshot({ path: join(shots, name) }); };
const statusOf = (page, sel) => page.$eval(sel, (e) => e.textContent).catch(() => null);

try {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const origin = new URL(api).origin;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const page = await context.newPage();
  const urls = [];
  const errors = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('pageerror', (e) => errors.push(String(e)));
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });

  await page.goto(`${api}/console`, { waitUntil: 'load', timeout: 20000 });
  await page.waitForSelector('#sign-in:not([hidden])', { timeout: 10000 });
  await shot(page, 'console-sign-in.png');

  // A wrong token is refused and not kept.
  await page.fill('#token', 'sigma_not_a_token');
  await page.click('#sign-in-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('sign-in-error').textContent.length > 0, null, { timeout: 10000 });
  check('wrong token refused', (await page.textContent('#sign-in-error')).includes('refused'), await page.textContent('#sign-in-error'));
  check('wrong token not kept', (await page.evaluate(() => sessionStorage.length)) === 0);

  // Sign in.
  await page.fill('#token', token);
  await page.click('#sign-in-form button[type=submit]');
  await page.waitForSelector('#view-streams:not([hidden])', { timeout: 10000 });
  await page.waitForSelector('#live.on', { timeout: 10000 });
  const navigationsAtSignIn = navigations;

  // Create a stream in the dialog.
  await page.click('#new-stream');
  await page.fill('#c-name', 'Console e2e');
  await page.selectOption('#c-latency', 'low');
  await page.click('#create-submit');
  await page.waitForSelector('#created:not([hidden])', { timeout: 10000 });
  const ingestUrl = (await page.textContent('#k-url')).trim();
  const server = (await page.textContent('#k-server')).trim();
  const key = (await page.textContent('#k-key')).trim();
  check('ingest URL is server/key', ingestUrl === `${server}/${key}` && key.length > 8, ingestUrl);
  check('OBS settings shown', (await page.textContent('#obs')).includes('Keyframe Interval'));
  await shot(page, 'console-create.png');
  await page.click('[data-copy=k-key]');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check('copy button copies the key', copied === key);
  await page.click('#created-close');
  const streams = await apiGet('/v1/live-streams?limit=100');
  const first = streams.data.find((s) => s.stream_key === key);
  check('the API has the stream', first, JSON.stringify(streams).slice(0, 200));
  const row = `tr[data-id="${first.id}"] .status`;
  await page.waitForSelector(row, { timeout: 5000 });
  check('listed idle', (await statusOf(page, row)) === 'idle');

  // Publish; time the page against the API.
  publish(ingestUrl, 150);
  const t0 = Date.now();
  let apiActiveAt = null;
  const apiPoll = (async () => {
    while (apiActiveAt === null && Date.now() - t0 < 30000) {
      const s = await apiGet(`/v1/live-streams/${first.id}`);
      if (s.status === 'active') apiActiveAt = Date.now();
      else await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await page.waitForFunction((sel) => { const e = document.querySelector(sel); return e && e.textContent === 'active'; },
    row, { timeout: 30000, polling: 50 });
  const pageActiveAt = Date.now();
  await apiPoll;
  check('API turned active', apiActiveAt !== null);
  out.timings.api_active_after_publish_ms = apiActiveAt - t0;
  out.timings.page_behind_api_ms = pageActiveAt - apiActiveAt;
  check('page shows active within 3 s of the API', pageActiveAt - apiActiveAt <= 3000, `${pageActiveAt - apiActiveAt} ms`);
  check('no reload', navigations === navigationsAtSignIn, `${navigations - navigationsAtSignIn} navigations`);
  await page.waitForTimeout(1500);
  await shot(page, 'console-streams.png');

  // The stream page: preview, figures, target, timeline.
  await page.click(`tr[data-id="${first.id}"]`);
  await page.waitForSelector('#view-stream:not([hidden])', { timeout: 5000 });
  const playing = async (what) => {
    await page.waitForFunction(() => document.getElementById('preview').currentTime > 0.5, null, { timeout: 30000, polling: 200 });
    const a = await page.$eval('#preview', (v) => v.currentTime);
    await page.waitForTimeout(2000);
    const b = await page.$eval('#preview', (v) => v.currentTime);
    check(`${what}: preview plays`, b > a + 1, `${a} → ${b}`);
  };
  await playing('active');
  await page.waitForFunction(() => document.getElementById('st-bitrate').textContent.includes('kbit/s'), null, { timeout: 10000 });
  out.ingest = {
    bitrate: await page.textContent('#st-bitrate'),
    fps: await page.textContent('#st-fps'),
    keyframe_interval: await page.textContent('#st-keyint'),
  };
  check('ingest frame rate shown', /^\d/.test(out.ingest.fps), out.ingest.fps);
  if (target) {
    await page.fill('#target-url', target);
    await page.fill('#target-key', 'console-target-key');
    await page.click('#target-form button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('#target-rows .status')].some((e) => e.textContent === 'errored'),
      null, { timeout: 20000, polling: 100 });
    check('target errored, shown live', true);
    check('target key not shown', !(await page.textContent('#view-stream')).includes('console-target-key'));
  }
  await page.waitForSelector('#timeline li[data-type="live_stream.active"]', { timeout: 5000 });
  check('timeline has connected', await page.$('#timeline li[data-type="live_stream.connected"]'));
  await page.waitForTimeout(500);
  if (shots) await page.screenshot({ path: join(shots, 'console-stream.png'), fullPage: true });
  await page.click('button[data-action=complete]');
  await page.waitForFunction(() => document.getElementById('s-status').textContent === 'idle', null, { timeout: 10000, polling: 50 });
  check('complete makes it idle (API)', (await apiGet(`/v1/live-streams/${first.id}`)).status === 'idle');
  for (const p of publishers) p.kill('SIGKILL');

  // A signed stream in preview: plays for the operator, then Start.
  await page.click('a[href="#/streams"]');
  await page.waitForSelector('#view-streams:not([hidden])');
  await page.click('#new-stream');
  await page.fill('#c-name', 'Console preview');
  await page.selectOption('#c-policy', 'signed');
  await page.uncheck('#c-auto');
  await page.click('#create-submit');
  await page.waitForSelector('#created:not([hidden])', { timeout: 10000 });
  const url2 = (await page.textContent('#k-url')).trim();
  await page.click('#created-open');
  await page.waitForSelector('#view-stream:not([hidden])', { timeout: 5000 });
  publish(url2, 120);
  await page.waitForFunction(() => document.getElementById('s-status').textContent === 'preview', null, { timeout: 30000, polling: 100 });
  await playing('preview (signed)');
  await shot(page, 'console-preview.png');
  await page.click('button[data-action=start]');
  await page.waitForFunction(() => document.getElementById('s-status').textContent === 'active', null, { timeout: 10000, polling: 50 });
  check('start makes it active', true);

  // Webhooks.
  await page.click('a[href="#/webhooks"]');
  await page.waitForSelector('#view-webhooks:not([hidden])');
  await page.waitForFunction(() => document.querySelectorAll('#webhook-list .webhook tbody tr').length > 0, null, { timeout: 20000, polling: 250 });
  out.webhooks = await page.$$eval('#webhook-list .webhook', (cards) => cards.map((c) => c.querySelector('.status').textContent));
  await shot(page, 'console-webhooks.png');

  // Secrets: never in a URL; only in this tab's sessionStorage.
  check('no URL carries the token', !urls.some((u) => u.includes(token)), urls.find((u) => u.includes(token)));
  check('token in sessionStorage only', await page.evaluate((t) => sessionStorage.getItem('sigma.console.token') === t && localStorage.length === 0, token));
  check('no page errors', errors.length === 0, errors.join('; '));
  out.requests = urls.length;
  await finish(null);
} catch (e) {
  // What the page said, for the report.
  try {
    const page = browser && browser.contexts()[0] && browser.contexts()[0].pages()[0];
    if (page) {
      out.page = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.error')]
        .filter((x) => x.textContent).map((x) => [x.id, x.textContent])));
      out.page.hash = await page.evaluate(() => location.hash);
      if (shots) await page.screenshot({ path: join(shots, 'console-failure.png') });
    }
  } catch (_) { /* the report goes out anyway */ }
  await finish(String(e && e.message ? e.message : e));
}
