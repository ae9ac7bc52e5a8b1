#!/usr/bin/env bash
# Glass-to-glass latency bench: for each latency mode, publish with ffmpeg (real time, x264
# zerolatency, 1 s keyframe interval), play with hls.js in headless Chromium, and report the
# median and p95 of (wall clock − EXT-X-PROGRAM-DATE-TIME of the frame on screen) plus stalls.
#   benches/scripts/latency.sh [SECONDS] [MODE...]       (default 60 s; ultra-low low normal)
# Loopback only; every process is bounded in time and killed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"; shift || true
modes=("$@"); [ "${#modes[@]}" -gt 0 ] || modes=(ultra-low low normal)

cargo build --release --locked -p sigma-examples --bin sigma-server >/dev/null
server=target/release/sigma-server
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

rtmp_port=19350; http_port=18080
printf '%-10s %8s %8s %7s %s\n' mode median_s p95_s stalls notes
for mode in "${modes[@]}"; do
  rtmp_port=$((rtmp_port + 1)); http_port=$((http_port + 1))
  timeout $((seconds + 120)) "$server" --rtmp-listen "127.0.0.1:$rtmp_port" --http-listen "127.0.0.1:$http_port" \
    --data-dir "$work/$mode" --latency "$mode" >"$work/server-$mode.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
  timeout $((seconds + 60)) ffmpeg -nostdin -loglevel error -re \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t $((seconds + 40)) -c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 -b:v 2500k \
    -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "rtmp://127.0.0.1:$rtmp_port/live/bench" 2>"$work/ffmpeg-$mode.log" &
  pids+=($!)
  # Let the playlist fill before the player starts (normal mode needs a few 6 s segments).
  case "$mode" in normal) sleep 20 ;; low) sleep 5 ;; *) sleep 3 ;; esac
  json="$(node e2e/play.mjs "http://127.0.0.1:$http_port/live/bench/player" --seconds "$seconds" --settle 5 || true)"
  echo "$json" > "$work/result-$mode.json"
  node -e '
    const r = JSON.parse(process.argv[1] || "{}");
    const f = (x) => x == null ? "-" : x.toFixed(2);
    const notes = r.played ? "" : "did not play: " + (r.fatal || (r.errors || []).join(","));
    console.log([process.argv[2].padEnd(10), f(r.latencyMedian).padStart(8), f(r.latencyP95).padStart(8),
      String(r.stalls ?? "-").padStart(7), notes].join(" "));
  ' "$json" "$mode"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  sleep 1
done
