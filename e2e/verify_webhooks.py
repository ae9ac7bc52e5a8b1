#!/usr/bin/env python3
"""Verifies the requests a webhook receiver logged, with the Standard Webhooks library from PyPI.

    verify_webhooks.py --secret whsec_... [--secret whsec_...] [--max-skew S] FILE

FILE is the JSON-lines log of e2e/webhook_receiver.py. Every logged request must:
- carry `webhook-id`, `webhook-timestamp` and `webhook-signature`, and `content-type:
  application/json`;
- verify with `standardwebhooks.Webhook(secret).verify(body, headers)` for at least one of the
  given secrets; the library's 5-minute timestamp tolerance is applied as of the moment the
  request arrived (its `t`), as a receiver would have checked it then;
- have a JSON body whose `id` is the `webhook-id`, with a `webhook-timestamp` (Unix seconds)
  within --max-skew seconds (default 10) of its arrival.

Exits 1 naming the first failure; on success prints a JSON summary: requests, distinct event
ids, how many each secret verified, and how many requests carried more than one signature.
"""

import argparse
import datetime as _dt
import json
import sys

try:
    import standardwebhooks
    import standardwebhooks.webhooks as _swh
    from standardwebhooks import Webhook, WebhookVerificationError
except ImportError:
    sys.exit("verify_webhooks.py: the standardwebhooks package is missing: run ./scripts/install-deps")


class _ArrivalClock:
    """Makes the library's `datetime.now()` answer the request's arrival time."""

    def __init__(self):
        self.at = None
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
        # The library refers to `datetime` through its module; pinned version 1.1.0.
        if getattr(_swh, "datetime", None) is _dt.datetime:
            _swh.datetime = self.cls
            return True
        return False


def fail(n, why):
    print(f"verify_webhooks.py: request {n}: {why}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--secret", action="append", required=True, help="whsec_... (repeatable)")
    p.add_argument("--max-skew", type=float, default=10.0)
    p.add_argument("file")
    args = p.parse_args(argv)

    hooks = []
    for s in args.secret:
        if not s.startswith("whsec_"):
            sys.exit(f"verify_webhooks.py: not a whsec_ secret: {s[:8]}...")
        hooks.append(Webhook(s))

    clock = _ArrivalClock()
    clock_installed = clock.install()

    try:
        with open(args.file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        sys.exit(f"verify_webhooks.py: {e}")

    verified_by = [0] * len(hooks)
    ids = set()
    multi = 0
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
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            fail(n, f"content-type {ctype!r}, not application/json")
        sigs = headers["webhook-signature"].split(" ")
        for s in sigs:
            if not s.startswith("v1,") or len(s) <= 3:
                fail(n, f"signature entry {s!r} is not v1,<base64>")
        if len(sigs) > 1:
            multi += 1
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
            except Exception as e:  # malformed signature entries and the like
                errors.append(f"secret {i + 1}: {type(e).__name__}: {e}")
                continue
            verified_by[i] += 1
            ok = payload if ok is None else ok
        clock.at = None
        if ok is None:
            fail(n, f"webhook-id {headers['webhook-id']}: not verified ({'; '.join(errors)})")
        if not isinstance(ok, dict) or ok.get("id") != headers["webhook-id"]:
            got = ok.get("id") if isinstance(ok, dict) else type(ok).__name__
            fail(n, f"body id {got!r} is not the webhook-id {headers['webhook-id']!r}")
        ids.add(headers["webhook-id"])

    if n == 0:
        sys.exit(f"verify_webhooks.py: no requests in {args.file}")
    print(
        json.dumps(
            {
                "requests": n,
                "event_ids": len(ids),
                "verified_by": verified_by,
                "multi_signature": multi,
                "library": getattr(standardwebhooks, "__version__", "?"),
                "tolerance_at_arrival": clock_installed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
