#!/usr/bin/env python3
"""An admission hook for Sigma's end-to-end tests (standard library only), and its verifier.

    admission_hook.py --port P --log FILE [--decision allow|deny|hang|slow:S|status:CODE|garbage]
                      [--reason TEXT] [--hang-if-query SUBSTRING] [--deny-if-stream NAME]
                      [--deny-action ACTION]
    admission_hook.py --verify FILE --secret whsec_... [--secret whsec_...] [--max-skew S]

Serving, it listens on 127.0.0.1:P (threaded). For every POST it appends one JSON line to FILE,
flushed at once, when the request has arrived (before any answer, so a hung request is on record):

    {"t": <time.time() on arrival>, "method": "POST", "path": "/...",
     "headers": {<lower-cased name>: <value>}, "body": "<the body as UTF-8 text>",
     "decision": "allow" | "deny" | "hang" | "slow:S" | "status:CODE" | "garbage",
     "status": <the HTTP status answered, null when hanging>,
     "answer": "<the body answered, null when hanging>"}

What it answers, for the first rule that applies:
- `--hang-if-query X`: a request whose JSON body has a `query` containing X is never answered;
- `--deny-if-stream N`: a body with `stream == N` is denied;
- `--deny-action A`: a body with `action == A` (`publish` or `play`) is denied;
- else --decision (default allow):
    allow        200 {"allowed": true}
    deny         200 {"allowed": false, "reason": REASON}   (no reason field without --reason)
    hang         never answers (the connection stays open until the peer gives up or we stop)
    slow:S       200 {"allowed": true} after S seconds
    status:CODE  CODE with a JSON body {"allowed": true} (a non-2xx must not count as an answer)
    garbage      200 with a body that is not JSON
Every denial carries `--reason` when given. Other methods get 405 and are not logged. SIGTERM (or
SIGINT) stops it cleanly with exit status 0, even with requests hanging.

Verifying (`--verify FILE`), every request FILE logged must carry `webhook-id` (an `adm_` id, a
fresh one per request), `webhook-timestamp` (Unix seconds within --max-skew, default 10, of its
arrival), `webhook-signature` (`v1,<base64>` entries) and `content-type: application/json`, and
verify with `standardwebhooks.Webhook(secret).verify(body, headers)` (the PyPI library; its
5-minute tolerance applied as of the arrival) under one of the secrets, with a JSON object body.
Exits 1 naming the first failure; on success prints a JSON summary.
"""

import argparse
import datetime as _dt
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_decision(p, text):
    if text in ("allow", "deny", "hang", "garbage"):
        return (text, None)
    kind, _, arg = text.partition(":")
    if kind == "slow":
        try:
            seconds = float(arg)
        except ValueError:
            p.error(f"--decision slow:S: not a number of seconds: {arg!r}")
        if seconds < 0:
            p.error("--decision slow:S: negative")
        return ("slow", seconds)
    if kind == "status":
        try:
            code = int(arg)
        except ValueError:
            p.error(f"--decision status:CODE: not a status: {arg!r}")
        if not 100 <= code <= 599:
            p.error(f"--decision status:{code}: not an HTTP status")
        return ("status", code)
    p.error(f"--decision: unknown {text!r}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--log", help="JSON lines file, appended to")
    p.add_argument("--decision", default="allow")
    p.add_argument("--reason", default=None, help="the reason of every denial")
    p.add_argument("--hang-if-query", default=None, metavar="SUBSTRING")
    p.add_argument("--deny-if-stream", default=None, metavar="NAME")
    p.add_argument("--deny-action", default=None, metavar="ACTION")
    p.add_argument("--verify", default=None, metavar="FILE", help="verify a log instead of serving")
    p.add_argument("--secret", action="append", default=[], help="whsec_... (repeatable; with --verify)")
    p.add_argument("--max-skew", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.verify is not None:
        if not args.secret:
            p.error("--verify needs at least one --secret")
        return args
    if args.port is None or args.log is None:
        p.error("--port and --log are required (or --verify FILE)")
    args.decision = parse_decision(p, args.decision)
    return args


# ---- serving --------------------------------------------------------------------------------


class State:
    """What the handler threads share: the script, the log file, and the stop flag."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8")
        self.stopping = threading.Event()

    def decide(self, body_text):
        """(decision name, status or None, answer bytes or None, delay seconds)."""
        a = self.args
        try:
            body = json.loads(body_text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        query = body.get("query")
        if a.hang_if_query is not None and isinstance(query, str) and a.hang_if_query in query:
            return ("hang", None, None, 0)
        if a.deny_if_stream is not None and body.get("stream") == a.deny_if_stream:
            return self.deny()
        if a.deny_action is not None and body.get("action") == a.deny_action:
            return self.deny()
        kind, arg = a.decision
        if kind == "allow":
            return ("allow", 200, allowed(), 0)
        if kind == "deny":
            return self.deny()
        if kind == "hang":
            return ("hang", None, None, 0)
        if kind == "slow":
            return (f"slow:{arg:g}", 200, allowed(), arg)
        if kind == "status":
            return (f"status:{arg}", arg, allowed(), 0)
        return ("garbage", 200, b"<html>this is not JSON</html>\n", 0)

    def deny(self):
        answer = {"allowed": False}
        if self.args.reason is not None:
            answer["reason"] = self.args.reason
        return ("deny", 200, json.dumps(answer).encode(), 0)

    def record(self, entry):
        with self.lock:
            self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.log.flush()


def allowed():
    return json.dumps({"allowed": True}).encode()


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sigma-e2e-admission-hook"
        # A peer that stops sending mid-request (or idles on keep-alive) must not hold a thread
        # for ever.
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
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline(65537)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_POST(self):
            arrived = time.time()
            body = self.read_body().decode("utf-8", errors="replace")
            headers = {}
            for k, v in self.headers.items():
                k = k.lower()
                headers[k] = v if k not in headers else headers[k] + ", " + v
            decision, status, answer, delay = state.decide(body)
            state.record(
                {
                    "t": arrived,
                    "method": "POST",
                    "path": self.path,
                    "headers": headers,
                    "body": body,
                    "decision": decision,
                    "status": status,
                    "answer": None if answer is None else answer.decode("utf-8", errors="replace"),
                }
            )
            if status is None:
                # Hang: never answer; wake only to stop.
                state.stopping.wait()
                self.close_connection = True
                return
            if delay > 0 and state.stopping.wait(delay):
                self.close_connection = True
                return
            self.send_response(status)
            ctype = "text/html" if decision == "garbage" else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def refuse(self):
            payload = b"POST only\n"
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_PATCH = do_DELETE = refuse

    return Handler


def serve(args):
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
    print(f"admission hook listening on {args.host}:{server.server_address[1]}", flush=True)
    while not state.stopping.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    with state.lock:
        state.log.close()
    return 0


# ---- verifying ------------------------------------------------------------------------------


class ArrivalClock:
    """Makes the library's `datetime.now()` answer the request's arrival time."""

    def __init__(self, module):
        self.at = None
        self.module = module
        real = _dt.datetime
        clock = self

        class Clock(real):
            @classmethod
            def now(cls, tz=None):
                if clock.at is None:
                    return real.now(tz)
                return real.fromtimestamp(clock.at, tz)

        self.cls = Clock

    def install(self):
        # The library refers to `datetime` through its module (version 1.1.0).
        if getattr(self.module, "datetime", None) is _dt.datetime:
            self.module.datetime = self.cls
            return True
        return False


def fail(n, why):
    print(f"admission_hook.py --verify: request {n}: {why}", file=sys.stderr)
    sys.exit(1)


def verify(args):
    try:
        import standardwebhooks
        import standardwebhooks.webhooks as swh
        from standardwebhooks import Webhook, WebhookVerificationError
    except ImportError:
        sys.exit("admission_hook.py: the standardwebhooks package is missing: run ./scripts/install-deps")
    hooks = []
    for s in args.secret:
        if not s.startswith("whsec_"):
            sys.exit(f"admission_hook.py: not a whsec_ secret: {s[:8]}...")
        hooks.append(Webhook(s))
    clock = ArrivalClock(swh)
    clock_installed = clock.install()
    try:
        with open(args.verify, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        sys.exit(f"admission_hook.py: {e}")

    verified_by = [0] * len(hooks)
    ids = set()
    actions = {}
    n = 0
    for line in lines:
        if not line.strip():
            continue
        n += 1
        try:
            rec = json.loads(line)
        except ValueError as e:
            fail(n, f"not a JSON line ({e}): {line[:200]}")
        headers = {k.lower(): v for k, v in rec.get("headers", {}).items()}
        body = rec.get("body", "")
        for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            if not headers.get(h):
                fail(n, f"no {h} header; headers {sorted(headers)}")
        msg_id = headers["webhook-id"]
        if not msg_id.startswith("adm_") or len(msg_id) <= 4:
            fail(n, f"webhook-id {msg_id!r} is not an adm_ id")
        if msg_id in ids:
            fail(n, f"webhook-id {msg_id!r} used twice: each call needs a fresh id")
        ids.add(msg_id)
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            fail(n, f"content-type {ctype!r}, not application/json")
        for s in headers["webhook-signature"].split(" "):
            if not s.startswith("v1,") or len(s) <= 3:
                fail(n, f"signature entry {s!r} is not v1,<base64>")
        try:
            ts = int(headers["webhook-timestamp"])
        except ValueError:
            fail(n, f"webhook-timestamp {headers['webhook-timestamp']!r} is not Unix seconds")
        t = rec.get("t")
        if not isinstance(t, (int, float)):
            fail(n, "no arrival time t in the log line")
        if abs(ts - t) > args.max_skew:
            fail(n, f"webhook-timestamp {ts} is {ts - t:+.1f} s from the arrival ({t:.3f})")

        clock.at = t
        ok = None
        errors = []
        for i, hook in enumerate(hooks):
            try:
                payload = hook.verify(body, headers)
            except WebhookVerificationError as e:
                errors.append(f"secret {i + 1}: {e}")
                continue
            except Exception as e:  # malformed signature entries, a body that is not JSON
                errors.append(f"secret {i + 1}: {type(e).__name__}: {e}")
                continue
            verified_by[i] += 1
            ok = payload if ok is None else ok
        clock.at = None
        if ok is None:
            fail(n, f"webhook-id {msg_id}: not verified ({'; '.join(errors)})")
        if not isinstance(ok, dict):
            fail(n, f"the body is a JSON {type(ok).__name__}, not an object")
        action = ok.get("action")
        actions[str(action)] = actions.get(str(action), 0) + 1

    if n == 0:
        sys.exit(f"admission_hook.py: no requests in {args.verify}")
    print(
        json.dumps(
            {
                "requests": n,
                "ids": len(ids),
                "verified_by": verified_by,
                "actions": actions,
                "library": getattr(standardwebhooks, "__version__", "?"),
                "tolerance_at_arrival": clock_installed,
            }
        )
    )
    return 0


def main(argv):
    args = parse_args(argv)
    if args.verify is not None:
        return verify(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
