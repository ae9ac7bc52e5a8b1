// Plays a sigma-server player page in headless Chromium and prints what happened as JSON.
//   node e2e/play.mjs URL [--seconds N] [--settle N] [--switch-level] [--player sigma|hlsjs|shaka]
// With --player sigma (the default) URL is a sigma-server player page; with hlsjs (hls.js at its
// defaults, lowLatencyMode on) or shaka (Shaka Player, lowLatencyMode on) URL is a multivariant
// playlist, played from a harness page (e2e/harness.mjs).
// Exit status 0 when the page played (frames advanced, no fatal error), 1 otherwise.
// The JSON has: frames, currentTime, stalls (after --settle seconds), errors, fatal, latency
// samples (glass-to-glass: wall clock minus EXT-X-PROGRAM-DATE-TIME of the frame on screen) with
// their median / p95, and the levels seen.
import { launchChromium } from './chromium.mjs';
import { openHarness } from './harness.mjs';

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const seconds = opt('--seconds', 15);
const settle = opt('--settle', 3);
const switchLevel = args.includes('--switch-level');
const playerIdx = args.indexOf('--player');
const player = playerIdx >= 0 ? args[playerIdx + 1] : 'sigma';
if (!['sigma', 'hlsjs', 'shaka'].includes(player)) { console.error(`unknown player ${player}`); process.exit(2); }
if (!url) { console.error('usage: play.mjs URL [--seconds N]'); process.exit(2); }

const browser = await launchChromium();
const deadline = setTimeout(() => { console.error('play.mjs: hard timeout'); process.exit(3); }, (seconds + 60) * 1000);
let result;
let harness = null;
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  if (player !== 'sigma') harness = await openHarness(player, url);
  await page.goto(harness ? harness.url : url, { waitUntil: 'load', timeout: 20000 });
  // Wait (bounded) for playback to start, then observe for `seconds`.
  const startWait = Date.now();
  await page.waitForFunction(() => window.sigmaStats && (window.sigmaStats.playing || window.sigmaStats.fatal),
    null, { timeout: 30000, polling: 100 }).catch(() => {});
  const startupSeconds = (Date.now() - startWait) / 1000;
  await page.waitForTimeout(settle * 1000);
  const before = await page.evaluate(() => ({ ...window.sigmaStats, latencySamples: [] }));
  await page.evaluate(() => { window.sigmaStats.latencySamples = []; });
  if (switchLevel) {
    // Force a switch away from whatever level ABR picked (to the top, or from the top to the
    // bottom), as a viewer picking a quality would.
    await page.evaluate(() => {
      const h = window.hls;
      if (h && h.levels.length > 1) h.currentLevel = h.currentLevel === 0 ? h.levels.length - 1 : 0;
    });
  }
  await page.waitForTimeout(Math.max(0, seconds - settle) * 1000);
  const after = await page.evaluate(() => window.sigmaStats);
  const lat = [...after.latencySamples].sort((a, b) => a - b);
  const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null;
  result = {
    url, player, startupSeconds,
    // Video frames must advance; an audio-only stream (no video frame ever) plays when time does.
    played: after.playing && (after.frames > before.frames || after.frames === 0) && after.currentTime > before.currentTime && !after.fatal,
    framesAdvanced: after.frames - before.frames,
    currentTime: after.currentTime,
    stalls: after.stalls - before.stalls,
    fatal: after.fatal, errors: after.errors, pageErrors: consoleErrors,
    latencyMedian: q(0.5), latencyP95: q(0.95), latencySamples: lat.length,
    // Where the player settled: the median of the last 2 s of samples (every 200 ms).
    latencyEnd: (() => {
      const tail = after.latencySamples.slice(-10).sort((a, b) => a - b);
      return tail.length ? tail[Math.floor(tail.length / 2)] : null;
    })(),
    targetLatency: after.target, levels: after.levels, level: after.level, levelSwitches: after.levelSwitches,
  };
} finally {
  clearTimeout(deadline);
  await browser.close();
  if (harness) harness.close();
}
console.log(JSON.stringify(result));
process.exit(result && result.played ? 0 : 1);
