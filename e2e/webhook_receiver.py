#!/usr/bin/env python3
"""A webhook receiver for Sigma's end-to-end tests (standard library only).

    webhook_receiver.py --port P --log FILE [--responses 500,500,200] [--retry-after S] [--hang]

Listens on 127.0.0.1:P (threaded). For every POST it appends one JSON line to FILE, flushed at
once:

    {"t": <time.time() on arrival>, "method": "POST", "path": "/...", "status": <answer or null>,
     "headers": {<lower-cased name>: <value>}, "body": "<the body as UTF-8 text>"}

and answers the next status of --responses (then 200 for ever), with `Retry-After: S` on every
non-2xx answer when --retry-after is given. With --hang it reads and logs the request, then never
answers (the connection stays open until the peer gives up or the receiver stops); `status` is
null then. Other methods get 405 and are not logged. SIGTERM (or SIGINT) stops it cleanly with
exit status 0.
"""

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--log", required=True, help="JSON lines file, appended to")
    p.add_argument("--responses", default="", help="comma-separated statuses to answer first, e.g. 500,500,200")
    p.add_argument("--retry-after", default=None, help="Retry-After value (seconds) on non-2xx answers")
    p.add_argument("--hang", action="store_true", help="read requests, never answer")
    args = p.parse_args(argv)
    try:
        args.responses = [int(s) for s in args.responses.split(",") if s.strip()]
    except ValueError:
        p.error(f"--responses: not a list of statuses: {args.responses!r}")
    for s in args.responses:
        if not 100 <= s <= 599:
            p.error(f"--responses: {s} is not an HTTP status")
    return args


class State:
    """What the handler threads share: the script, the log file, and the stop flag."""

    def __init__(self, args):
        self.responses = list(args.responses)
        self.retry_after = args.retry_after
        self.hang = args.hang
        self.lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8")
        self.stopping = threading.Event()

    def record(self, entry_without_status):
        """Picks the answer and logs the request, atomically (log order = answer order)."""
        with self.lock:
            if self.hang:
                status = None
            elif self.responses:
                status = self.responses.pop(0)
            else:
                status = 200
            entry = dict(entry_without_status)
            entry["status"] = status
            self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.log.flush()
            return status


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sigma-e2e-webhook-receiver"
        # A peer that stops sending mid-request must not hold a thread for ever.
        timeout = 60

        def log_message(self, fmt, *args):  # quiet: the JSON log is the record
            pass

        def read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                out = bytearray()
                while True:
                    line = self.rfile.readline(65537)
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        # trailers, up to the empty line
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline(65537)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_POST(self):
            arrived = time.time()
            body = self.read_body()
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = v if k not in headers else headers[k] + ", " + v
            status = state.record(
                {
                    "t": arrived,
                    "method": "POST",
                    "path": self.path,
                    "headers": headers,
                    "body": body.decode("utf-8", errors="replace"),
                }
            )
            if status is None:
                # --hang: never answer; wake only to stop.
                state.stopping.wait()
                self.close_connection = True
                return
            payload = b"ok\n" if 200 <= status < 300 else f"status {status}\n".encode()
            self.send_response(status)
            if state.retry_after is not None and not 200 <= status < 300:
                self.send_header("Retry-After", str(state.retry_after))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def refuse(self):
            payload = b"POST only\n"
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_PATCH = do_DELETE = refuse

    return Handler


def main(argv):
    args = parse_args(argv)
    state = State(args)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    server.daemon_threads = True
    server.block_on_close = False

    def stop(signum, frame):
        state.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    print(f"webhook receiver listening on {args.host}:{server.server_address[1]}", flush=True)
    while not state.stopping.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    with state.lock:
        state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
