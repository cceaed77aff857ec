"""Verified webhook deliveries accepted per second (202) vs bare uvicorn verifying the same.

nimbus: `python -m nimbus up bench/apps/webhook_app.py --no-reload`, a GitHub webhook
(`X-Hub-Signature-256`) whose handler does nothing. Each accepted delivery is verified,
committed (the delivery, then its job: two durable SQLite writes, shared by concurrent
requests), answered 202 with its status URL, and then run by the asynchronous invoker.
Baseline: bench/apps/bare_webhook.py on bare uvicorn (one worker, httptools + uvloop): the same
HMAC-SHA256 verification and a 202, storing and running nothing.
Both get the same wrk load: POSTs of one signed 1 KiB body, each with a new X-GitHub-Delivery
(the delivery id is not signed by GitHub), so every request is a new delivery, never a replay.
After each nimbus run the benchmark waits until a last delivery has run, so the backlog of
jobs does not load the next run. Any non-2xx response or socket error is reported.
Target: nimbus >= 1,000 verified deliveries/s (a busy GitHub organisation or Stripe account
sends a few per second; the baseline, which keeps nothing, shows the cost of durability).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from common import (
    WRK_MISSING,
    Report,
    Runs,
    Summary,
    Target,
    add_wrk_arguments,
    alternate_runs,
    argument_parser,
    bare_uvicorn,
    find_wrk,
    finish,
    median_of_runs,
    nimbus_server,
    run_wrk,
    wait_until,
    wrk_failures,
    wrk_load,
    wrk_metrics,
)

NAME = "webhook_accept"
TITLE = "verified webhook deliveries accepted per second (202)"
BASELINE = "bare uvicorn (1 worker, httptools, uvloop), raw ASGI app verifying the same HMAC"
TARGET_RATE = 1000.0
HOOK = "/hooks/github"
READY = "/hello/bench"  # both servers answer it
SECRET = "bench webhook secret"
BODY = json.dumps({"action": "opened", "padding": "x" * 990}).encode()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
HEADERS = {"X-Hub-Signature-256": SIGNATURE, "X-GitHub-Event": "issues"}
DRAIN_LIMIT = 120.0
SCRIPT = """
local counter = 0
local prefix = "run"
function init(args) prefix = args[1] end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. "-" .. counter
  return wrk.format("POST", nil, wrk.headers, wrk.body)
end
"""


def write_script(directory: Path) -> Path:
    """The wrk script: BODY as the request body, a new delivery id per request."""
    script = directory / "deliveries.lua"
    body = BODY.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{body}"\n{SCRIPT}')
    return script


def deliver(wrk: str, script: Path, url: str, args: argparse.Namespace, duration: float) -> Summary:
    """One wrk run of signed deliveries, each with a delivery id of its own."""
    options = ["-s", str(script), "-H", "Content-Type: application/json"]
    for name, value in HEADERS.items():
        options += ["-H", f"{name}: {value}"]
    return run_wrk(wrk, url + HOOK, args, duration, options, script_args=[uuid.uuid4().hex])


def drain(url: str) -> None:
    """Send one more delivery and wait until it has run: the jobs accepted before it have too
    (they wait for the function in order)."""
    headers = {**HEADERS, "X-GitHub-Delivery": f"drain-{uuid.uuid4()}"}
    answer = httpx.post(url + HOOK, content=BODY, headers=headers, timeout=30).json()

    def ran() -> bool | None:
        return True if httpx.get(url + answer["status_url"], timeout=30).json()["done"] else None

    wait_until(ran, DRAIN_LIMIT, "the accepted deliveries to run")


def measure_runs(wrk: str, script: Path, urls: dict[str, str], args: argparse.Namespace) -> Runs:
    """Warm both up, then alternate them run by run; after each nimbus run, wait until its
    backlog of accepted jobs has run, so that it does not load the next run."""
    for url in urls.values():
        deliver(wrk, script, url, args, args.warmup)
    drain(urls["nimbus"])

    def nimbus_run() -> Summary:
        result = deliver(wrk, script, urls["nimbus"], args, args.duration)
        started = time.monotonic()
        drain(urls["nimbus"])
        return {**result, "drain_seconds": time.monotonic() - started}

    def baseline_run() -> Summary:
        return deliver(wrk, script, urls["baseline"], args, args.duration)

    sides = {"nimbus": nimbus_run, "baseline": baseline_run}
    return alternate_runs(sides, args.runs, lambda r: f"{r['requests_per_s']:,.0f} deliveries/s")


def report(args: argparse.Namespace, runs: Runs) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    return Report(
        name=NAME,
        title=TITLE,
        baseline=BASELINE,
        runs=args.runs,
        parameters={"wrk": wrk_load(args), "body_bytes": len(BODY), "warmup_seconds": args.warmup},
        metrics=wrk_metrics("deliveries/s", nimbus, baseline),
        target=Target(
            f"nimbus >= {TARGET_RATE:,.0f} deliveries/s",
            nimbus["requests_per_s"],
            TARGET_RATE,
            "req/s",
            at_most=False,
        ),
        details={
            "nimbus: seconds to run the backlog after a run (median)": round(
                nimbus["drain_seconds"], 2
            )
        },
        per_run=runs,
        warnings=wrk_failures(runs),
    )


def measure(args: argparse.Namespace) -> Report:
    wrk = find_wrk()
    if wrk is None:
        return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=WRK_MISSING)
    os.environ["BENCH_WEBHOOK_SECRET"] = SECRET  # both servers read it from their environment
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        script = write_script(Path(tmp))
        data_dir = Path(tmp) / "data"
        with (
            nimbus_server("webhook_app.py", data_dir, READY) as nimbus,
            bare_uvicorn("bare_webhook:app", Path(tmp) / "bare.log", READY) as bare,
        ):
            runs = measure_runs(wrk, script, {"nimbus": nimbus, "baseline": bare}, args)
    return report(args, runs)


def main() -> None:
    parser = argument_parser(__doc__)
    add_wrk_arguments(parser)
    finish(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
