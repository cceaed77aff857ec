"""HTTP requests/s through a nimbus hello function vs a bare uvicorn hello app.

nimbus: `python -m nimbus up bench/apps/bench_app.py --no-reload`, GET /hello/{name} answered
by a sync hello function with max_instances >= the connection count (no request throttled).
Baseline: the same answer from a raw ASGI app (bench/apps/bare_asgi.py) on bare uvicorn, one
worker, httptools + uvloop, as nimbus configures its own uvicorn.
Both are loaded by the same wrk command (same threads, connections and duration), alternately,
on 127.0.0.1 only. Any non-2xx response or socket error is reported.
Target: nimbus >= 0.5 x bare uvicorn's requests/s.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

from common import (
    APPS_DIR,
    WRK_MISSING,
    Report,
    Runs,
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
    wrk_failures,
    wrk_load,
    wrk_metrics,
)
from nimbus.client import Client
from nimbus.spec.loader import load_app

NAME = "http_throughput"
TITLE = "HTTP requests/s through a hello function"
BASELINE = "bare uvicorn (1 worker, httptools, uvloop) serving a raw ASGI hello app"
TARGET_RATIO = 0.5
APP = "bench_app.py"
PATH = "/hello/bench"


def check_connections(connections: int) -> None:
    spec = load_app(str(APPS_DIR / APP))
    limit = spec.functions["hello"].max_instances
    if connections > limit:
        raise SystemExit(f"--connections {connections} exceeds hello's max_instances ({limit})")


def measure_runs(wrk: str, urls: dict[str, str], args: argparse.Namespace) -> Runs:
    """Warm both up (nimbus starts its instances), then alternate them run by run."""
    for url in urls.values():
        run_wrk(wrk, url + PATH, args, args.warmup)
    sides = {
        side: functools.partial(run_wrk, wrk, url + PATH, args, args.duration)
        for side, url in urls.items()
    }
    return alternate_runs(sides, args.runs, lambda result: f"{result['requests_per_s']:,.0f} req/s")


def report(args: argparse.Namespace, runs: Runs, instances: int) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    ratio = nimbus["requests_per_s"] / baseline["requests_per_s"]
    return Report(
        name=NAME,
        title=TITLE,
        baseline=BASELINE,
        runs=args.runs,
        parameters={"wrk": wrk_load(args), "path": PATH, "warmup_seconds": args.warmup},
        metrics=wrk_metrics("requests/s", nimbus, baseline),
        target=Target(
            f"nimbus >= {TARGET_RATIO:g} x bare uvicorn requests/s",
            ratio,
            TARGET_RATIO,
            "x",
            at_most=False,
        ),
        details={"hello instances after the runs": instances},
        per_run=runs,
        warnings=wrk_failures(runs),
    )


def hello_instances(url: str, data_dir: Path) -> int:
    with Client(url, data_dir=data_dir, timeout=10) as client:  # the token is in data_dir
        functions = client.request("GET", "/functions")
    return int(next(f["instances"] for f in functions if f["name"] == "hello"))


def measure(args: argparse.Namespace) -> Report:
    check_connections(args.connections)
    wrk = find_wrk()
    if wrk is None:
        return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with (
            nimbus_server(APP, data_dir, PATH) as nimbus,
            bare_uvicorn("bare_asgi:app", Path(tmp) / "bare.log", PATH) as bare,
        ):
            runs = measure_runs(wrk, {"nimbus": nimbus, "baseline": bare}, args)
            instances = hello_instances(nimbus, data_dir)
    return report(args, runs, instances)


def main() -> None:
    parser = argument_parser(__doc__)
    add_wrk_arguments(parser)
    finish(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
