// Player pages for e2e/play.mjs other than Sigma's own: hls.js at its defaults (only
// `lowLatencyMode` set, as the issue tracker's "hls.js at its defaults" means) and Shaka Player
// in low-latency mode. Each page exposes the same `window.sigmaStats` as Sigma's player page, so
// play.mjs reads every player alike. The page is served by a small HTTP server on loopback (a
// page from a non-loopback origin may not fetch from loopback under Chromium's local-network
// rules); the media come from the sigma-server under test, which answers with
// `Access-Control-Allow-Origin: *`.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const statsScript = `
const stats = window.sigmaStats = {
  mode: 'harness', playing: false, stalls: 0, fatal: null, errors: [], latency: null,
  target: null, rate: 1, frames: 0, currentTime: 0, level: null, levelSwitches: 0, levels: 0,
  latencySamples: [],
};
const video = document.getElementById('video');
video.addEventListener('playing', () => { stats.playing = true; });
video.addEventListener('waiting', () => { if (stats.playing) stats.stalls++; });
function sample(playingDate, target) {
  if (playingDate && stats.playing) {
    stats.latency = (Date.now() - playingDate.getTime()) / 1000;
    stats.latencySamples.push(stats.latency);
    if (stats.latencySamples.length > 3000) stats.latencySamples.shift();
  }
  stats.target = target;
  stats.rate = video.playbackRate;
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  stats.frames = q ? q.totalVideoFrames : 0;
  stats.currentTime = video.currentTime;
}
`;

const hlsjsPage = (src) => `<!doctype html><html><body>
<video id="video" muted autoplay playsinline></video>
<script>${readFileSync(join(here, '..', 'sigma-server', 'assets', 'hls.min.js'), 'utf8')}</script>
<script>
${statsScript}
const hls = window.hls = new Hls({ lowLatencyMode: true });
hls.on(Hls.Events.ERROR, (_e, d) => {
  stats.errors.push(d.type + '/' + d.details + (d.fatal ? ' (fatal)' : ''));
  if (d.fatal) stats.fatal = d.type + ': ' + d.details;
});
hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => { stats.levels = d.levels.length; });
hls.loadSource(${JSON.stringify(src)});
hls.attachMedia(video);
setInterval(() => sample(hls.playingDate, hls.targetLatency), 200);
video.play().catch(() => {});
</script></body></html>`;

const shakaPage = (src) => `<!doctype html><html><body>
<video id="video" muted autoplay playsinline></video>
<script>${readFileSync(require.resolve('shaka-player/dist/shaka-player.compiled.js'), 'utf8')}</script>
<script>
${statsScript}
shaka.polyfill.installAll();
const player = window.shakaPlayer = new shaka.Player();
player.configure({ streaming: { lowLatencyMode: true } });
player.addEventListener('error', (e) => {
  const d = e.detail || {};
  stats.errors.push('shaka/' + d.code + (d.severity === 2 ? ' (fatal)' : ''));
  if (d.severity === 2) stats.fatal = 'shaka ' + d.code;
});
player.attach(video).then(() => player.load(${JSON.stringify(src)}))
  .then(() => { stats.levels = player.getVariantTracks().length; video.play().catch(() => {}); })
  .catch((e) => { stats.fatal = 'shaka load ' + (e && e.code); stats.errors.push(String(e && e.code)); });
setInterval(() => {
  let date = null;
  try { date = player.getPlayheadTimeAsDate(); } catch (_) {}
  sample(date, null);
  // Shaka's own view, for diagnosing its stalls (gap jumps, buffered ranges per type).
  const st = player.getStats();
  stats.player = { buffering: st.bufferingTime, gapsJumped: st.gapsJumped, stallsDetected: st.stallsDetected,
    liveLatency: st.liveLatency, buffered: player.getBufferedInfo().total.map((r) => [r.start.toFixed(2), r.end.toFixed(2)]),
    video: player.getBufferedInfo().video.map((r) => [r.start.toFixed(3), r.end.toFixed(3)]),
    audio: player.getBufferedInfo().audio.map((r) => [r.start.toFixed(3), r.end.toFixed(3)]),
    t: video.currentTime.toFixed(3) };
}, 200);
</script></body></html>`;

/**
 * Serves a page playing `src` (an .m3u8 URL) with `player` on a loopback port; returns its URL
 * and a `close()` for the server.
 */
export async function openHarness(player, src) {
  const html = player === 'shaka' ? shakaPage(src) : hlsjsPage(src);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/${player}.html`, close: () => server.close() };
}
