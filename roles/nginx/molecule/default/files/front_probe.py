#!/usr/bin/python3
"""Sends requests through the front door the way users do, and counts what they got.

until:  one request every INTERVAL until the answer comes from INSTANCE, or TIMEOUT passes;
        prints how long that took and how many requests failed on the way.
loop:   starts one request every INTERVAL (each in its own thread, so that slow requests
        overlap and some are always in flight) until STOP_FILE, removed first, exists again
        or MAX_SECONDS pass; prints how many requests there were, how many failed and which
        instances answered.
Every request is bounded by a 10 s timeout; standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter


def fetch(url: str, context: ssl.SSLContext) -> dict:
    """Status, answering instance and X-Served-By of one GET (status 0 when none came)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            body = json.loads(response.read())
            return {
                "status": response.status,
                "instance": body.get("instance"),
                "served_by": response.headers.get("X-Served-By"),
            }
    except urllib.error.HTTPError as error:
        return {"status": error.code, "instance": None, "served_by": None}
    except (OSError, ValueError) as error:
        return {"status": 0, "instance": None, "served_by": None, "error": str(error)}


def until(args: argparse.Namespace, context: ssl.SSLContext) -> int:
    start = time.monotonic()
    requests = failures = 0
    while True:
        result = fetch(args.url, context)
        requests += 1
        failures += result["status"] != 200
        elapsed = time.monotonic() - start
        if result["instance"] == args.instance or elapsed >= args.timeout:
            break
        time.sleep(args.interval)
    print(
        json.dumps(
            {
                "reached": result["instance"] == args.instance,
                "elapsed_ms": round(elapsed * 1000),
                "requests": requests,
                "failures": failures,
                "last": result,
            }
        )
    )
    return 0 if result["instance"] == args.instance else 1


def loop(args: argparse.Namespace, context: ssl.SSLContext) -> int:
    results: list[dict] = []
    lock = threading.Lock()

    def one() -> None:
        result = fetch(args.url, context)
        with lock:
            results.append(result)

    with contextlib.suppress(FileNotFoundError):  # left by an earlier run
        os.remove(args.stop_file)
    threads = []
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        thread = threading.Thread(target=one)
        thread.start()
        threads.append(thread)
        time.sleep(args.interval)
    for thread in threads:
        thread.join()
    failed = [r for r in results if r["status"] != 200]
    stopped_by_file = os.path.exists(args.stop_file)
    print(
        json.dumps(
            {
                "requests": len(results),
                "failures": len(failed),
                "failed": failed[:5],
                "instances": dict(Counter(str(r["instance"]) for r in results)),
                "stopped_by_file": stopped_by_file,
            }
        )
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["until", "loop"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--instance", help="until: the instance to wait for")
    parser.add_argument("--timeout", type=float, default=5.0, help="until: seconds to wait")
    parser.add_argument("--stop-file", default="/tmp/front-probe.stop", help="loop: stops it")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="loop: hard bound")
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.cacert)
    return until(args, context) if args.mode == "until" else loop(args, context)


if __name__ == "__main__":
    sys.exit(main())
