#!/usr/bin/env bash
# Load bench: sigma-server (LL-HLS, ultra-low) beside nginx with the RTMP module (plain HLS), both
# loaded by sigma-load on loopback, figures printed side by side. Not a test: nothing here is
# timed against a threshold.
#
#   benches/scripts/load.sh                     # the default runs below, 60 s each
#   RUNS="sigma:20:25" DURATION=30 benches/scripts/load.sh
#
# RUNS is a list of SERVER:STREAMS:VIEWERS_PER_STREAM (SERVER is sigma or nginx). Default: both
# servers at issue 5's target of 20 x 25, then both at nginx's reference load of 30 x 2.
# MEDIA=FILE reuses an MP4 (H.264 + AAC) instead of generating the 720p 2.5 Mbit/s clip;
# SIGMA_SERVER=PATH measures another sigma-server build. Needs ffmpeg, nginx, libnginx-mod-rtmp,
# curl, python3 (scripts/install-deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS="${RUNS:-sigma:20:25 nginx:20:25 sigma:30:2 nginx:30:2}"
DURATION="${DURATION:-60}"
WARMUP="${WARMUP:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
NGINX_RTMP_MODULE="${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}"

WORK="$(mktemp -d /tmp/sigma-load-bench.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "== building (release)" >&2
cargo build --release -p sigma-examples --bin sigma-server --bin sigma-load >&2
BIN="$CARGO_TARGET_DIR/release"
# SIGMA_SERVER=PATH measures another sigma-server build (e.g. a candidate fix) with the same load.
SIGMA_SERVER="${SIGMA_SERVER:-$BIN/sigma-server}"

MEDIA="${MEDIA:-$WORK/media-720p-2500k.mp4}"
if [ ! -f "$MEDIA" ]; then
  echo "== generating $MEDIA (20 s, 1280x720 30 fps, x264 2.5 Mbit/s CBR, 1 s GOP, AAC 128k)" >&2
  ffmpeg -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 20 \
    -c:v libx264 -preset veryfast -b:v 2500k -minrate 2500k -maxrate 2500k -bufsize 2500k \
    -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ac 2 -movflags +faststart "$MEDIA"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL: bounded wait for an answer
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

stop_server() {
  cleanup
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

run_sigma() { # STREAMS VIEWERS OUT
  local rtmp http
  rtmp="$(free_port)"; http="$(free_port)"
  "$SIGMA_SERVER" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" \
    --data-dir "$WORK/sigma-data" --latency ultra-low >"$WORK/sigma-$1x$2.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$http/healthz"
  echo "== sigma-server (pid $SERVER_PID, ultra-low): $1 streams x $2 viewers, ${DURATION} s" >&2
  "$BIN/sigma-load" --rtmp "rtmp://127.0.0.1:$rtmp/live" --http "http://127.0.0.1:$http/live" \
    --media "$MEDIA" --streams "$1" --viewers-per-stream "$2" --duration "$DURATION" \
    --warmup "$WARMUP" --server-pid "$SERVER_PID" --mode llhls --json >"$3" || true
  # Streams end after the publisher grace period (10 s by default) and log their summary.
  for _ in $(seq 150); do
    [ "$(grep -c 'stream ended' "$WORK/sigma-$1x$2.log" || true)" -ge "$1" ] && break
    sleep 0.1
  done
  stop_server
  # The relay logs each stream's frames lost between ingest and packaging when it ends.
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/sigma-$1x$2.log" | grep -o 'RelaySummary {[^}]*}' \
    | sed -n 's/.*lost: \([0-9]*\).*/\1/p' | awk '{s += $1; n++} END {print n + 0, s + 0}' >"$3.relay"
}

run_nginx() { # STREAMS VIEWERS OUT
  local rtmp http dir pids=()
  rtmp="$(free_port)"; http="$(free_port)"
  dir="$WORK/nginx-$1x$2"
  mkdir -p "$dir/hls" "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
load_module $NGINX_RTMP_MODULE;
daemon off;
master_process on;
worker_processes 1;
user $(id -un);
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
rtmp {
  server {
    listen 127.0.0.1:$rtmp;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $dir/hls;
      hls_nested on;
      hls_fragment 1s;
      hls_playlist_length 6s;
    }
  }
}
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$http;
    location /hls/ {
      alias $dir/hls/;
      add_header Cache-Control no-cache;
    }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
  SERVER_PID=$!
  for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
  # Measure the master and its worker(s).
  pids=(--server-pid "$SERVER_PID")
  for w in $(pgrep -P "$SERVER_PID" || true); do pids+=(--server-pid "$w"); done
  echo "== nginx-rtmp (pids ${pids[*]}, hls_fragment 1s): $1 streams x $2 viewers, ${DURATION} s" >&2
  "$BIN/sigma-load" --rtmp "rtmp://127.0.0.1:$rtmp/live" --http "http://127.0.0.1:$http/hls" \
    --media "$MEDIA" --streams "$1" --viewers-per-stream "$2" --duration "$DURATION" \
    --warmup "$WARMUP" "${pids[@]}" --mode hls --json >"$3" || true
  stop_server
}

results=()
for run in $RUNS; do
  IFS=: read -r server streams viewers <<<"$run"
  out="$WORK/$server-${streams}x$viewers.json"
  case "$server" in
    sigma) run_sigma "$streams" "$viewers" "$out" ;;
    nginx) run_nginx "$streams" "$viewers" "$out" ;;
    *) echo "unknown server in RUNS: $server" >&2; exit 2 ;;
  esac
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  results+=("$server:$out")
done

python3 - "${results[@]}" <<'PY'
import json, sys
rows = []
for arg in sys.argv[1:]:
    name, path = arg.split(":", 1)
    try:
        r = json.load(open(path))
    except Exception as e:
        rows.append((name, None, str(e)))
        continue
    try:
        n, lost = open(path + ".relay").read().split()
        r["relay"] = f"{lost} in {n} streams"
    except Exception:
        r["relay"] = "n/a"
    rows.append((name, r, None))
cols = [
    ("server", lambda n, r: n),
    ("mode", lambda n, r: r["mode"]),
    ("streams x viewers", lambda n, r: f'{r["streams"]} x {r["viewers_per_stream"]}'),
    ("CPU % (1 core)", lambda n, r: f'{r["server"]["cpu_percent"]:.1f}'),
    ("CPU %/stream", lambda n, r: f'{r["server"]["cpu_percent_per_stream"]:.2f}'),
    ("RSS MiB", lambda n, r: f'{r["server"]["vm_rss_kib"]/1024:.1f}'),
    ("peak RSS MiB", lambda n, r: f'{r["server"]["vm_hwm_kib"]/1024:.1f}'),
    ("delay of", lambda n, r: "part" if r["mode"] == "llhls" else "segment"),
    ("p50 ms", lambda n, r: f'{r["totals"]["delay"]["p50_ms"]:.2f}'),
    ("p95 ms", lambda n, r: f'{r["totals"]["delay"]["p95_ms"]:.2f}'),
    ("p99 ms", lambda n, r: f'{r["totals"]["delay"]["p99_ms"]:.2f}'),
    ("max ms", lambda n, r: f'{r["totals"]["delay"]["max_ms"]:.2f}'),
    ("fetched", lambda n, r: str(r["totals"]["fetched"])),
    ("delivered Mbit/s", lambda n, r: f'{r["totals"]["delivered_mbit_per_second"]:.0f}'),
    ("ingest frames lost", lambda n, r: str(r["totals"]["frames_not_sent"])),
    ("server-side lost", lambda n, r: r["relay"]),
    ("publisher errors", lambda n, r: str(r["totals"]["publisher_errors"])),
    ("viewer errors", lambda n, r: str(r["totals"]["viewer_errors"]) + (" " + json.dumps(r["totals"]["errors"]) if r["totals"]["viewer_errors"] else "")),
    ("discontinuities", lambda n, r: str(r["totals"]["streams_with_discontinuities"])),
    ("sigma-load CPU %", lambda n, r: f'{r["load_tool_cpu_percent"]:.1f}'),
    ("machine CPU %", lambda n, r: f'{r["machine"]["cpu_percent"]:.1f} of {100 * r["machine"]["cores"]}'),
    ("other work CPU %", lambda n, r: f'{r["machine"]["cpu_percent"] - r["server"]["cpu_percent"] - r["load_tool_cpu_percent"]:.1f}'),
]
print()
w = max(len(c[0]) for c in cols)
table = []
for title, f in cols:
    cells = []
    for name, r, err in rows:
        try:
            cells.append(f(name, r) if r else ("failed: " + err if title == "server" else "-"))
        except Exception:
            cells.append("?")
    table.append((title, cells))
widths = [max(len(t[1][i]) for t in table) for i in range(len(rows))]
for title, cells in table:
    print(title.ljust(w), " | ".join(c.rjust(widths[i]) for i, c in enumerate(cells)))
PY
echo "(raw JSON and logs in $WORK)"
