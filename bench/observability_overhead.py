"""Observability overhead: the hot path with every observability feature on vs all of them off.

nimbus (on): the platform as it runs by default, observing everything that sits on the hot path:
Prometheus metrics (each finished invocation counted), traces (spans of every invocation, kept
in traces.db) and usage metering (with budgets). Baseline (off): the same platform without
them. `SWITCHES` lists each feature, with its `nimbus up` option and the Invoker attributes
through which it sits on the invoke path; a new one is one more line there.
- warm invoke: one controller in this process, started with everything on, timing 2000 calls
  of the no-op function one after another (as invoke_overhead.py does), run by run in turns:
  as it is (on), with every feature's hooks detached from its invoker (off), and with one
  feature's hooks attached alone (to tell which one costs what). One controller, because the
  same platform started twice in one process differs from itself by up to a third at this
  scale (where the kernel places its instance), more than what is measured here. Many short
  runs (15 by default), because this shared machine's noise comes in phases of seconds: in
  turns, every side meets each phase alike, and the median sees past them.
- HTTP: two `nimbus up` servers, one as it is and one with every feature's option off, loaded
  in turns by the same wrk command through the hello function (as http_throughput.py does).
Targets: with everything on, at most 10 % slower: warm invoke p50 <= 1.1 x off, and
requests/s >= 0.9 x off.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client.parser import text_string_to_metric_families

from common import (
    WRK_MISSING,
    Metric,
    Report,
    Runs,
    Target,
    add_wrk_arguments,
    argument_parser,
    find_wrk,
    finish,
    latency_summary,
    median_of_runs,
    nimbus_server,
    time_calls_us,
    wrk_failures,
    wrk_load,
)
from http_throughput import PATH, check_connections
from http_throughput import measure_runs as http_runs
from nimbus.client import Client
from nimbus.compute.invoker import Invoker
from nimbus.errors import NotFound
from nimbus_harness import invoke_ok, running_controller

NAME = "observability_overhead"
TITLE = "warm invoke and HTTP requests/s, observability on vs off"
BASELINE = "the same platform with metrics, traces and usage metering off"
APP = "bench_app.py"
FUNCTION = "noop"
MAX_SLOWDOWN = 1.10  # warm invoke p50, on / off
MIN_THROUGHPUT = 0.90  # HTTP requests/s, on / off


@dataclass(frozen=True)
class Switch:
    """How one observability feature is turned off, and where it sits on the invoke path."""

    option: str
    """The `nimbus up` option that turns it off."""
    hooks: tuple[str, ...]
    """The Invoker attributes that hold it (None: off)."""


SWITCHES = {
    "metrics": Switch("--no-metrics", ("on_record",)),
    "traces": Switch("--no-traces", ("tracer",)),
    "metering": Switch("--no-metering", ("usage", "budgets")),
}
OFF_OPTIONS = [switch.option for switch in SWITCHES.values()]


def invoke_sides() -> dict[str, tuple[str, ...]]:
    """The hooks each side detaches: none (on), all (off), all but one feature's."""
    every = tuple(hook for switch in SWITCHES.values() for hook in switch.hooks)
    sides = {"on": (), "off": every}
    for feature, switch in SWITCHES.items():
        sides[f"only {feature}"] = tuple(hook for hook in every if hook not in switch.hooks)
    return sides


@contextlib.contextmanager
def detached(invoker: Invoker, hooks: Iterable[str]) -> Iterator[None]:
    """The invoker without these hooks, as if their features were off; then with them again."""
    saved = {hook: getattr(invoker, hook) for hook in hooks}
    for hook in saved:
        setattr(invoker, hook, None)
    try:
        yield
    finally:
        for hook, value in saved.items():
            setattr(invoker, hook, value)


async def measure_invoke(args: argparse.Namespace) -> tuple[Runs, dict[str, float]]:
    """Every side's runs, and the invocations the metrics counted vs those made with them on."""
    sides = invoke_sides()
    async with running_controller() as controller:
        assert controller.metrics is not None and controller.tracer is not None
        call = functools.partial(invoke_ok, controller, FUNCTION)
        await time_calls_us(call, args.invoke_warmup)
        runs: Runs = {side: [] for side in sides}
        for number in range(1, args.runs + 1):
            for side, hooks in sides.items():
                with detached(controller.invoker, hooks):
                    summary = latency_summary(await time_calls_us(call, args.invocations))
                runs[side].append(summary)
                print(f"run {number}/{args.runs} {side}: p50 {summary['p50']:.1f} µs", flush=True)
        counted = controller.metrics.registry.get_sample_value(
            "nimbus_invocations_total", {"function": FUNCTION}
        )
    counting = sum(1 for hooks in sides.values() if "on_record" not in hooks)
    made = args.invoke_warmup + args.runs * args.invocations * counting
    return runs, {"counted": counted or 0.0, "made with metrics on": made}


def counted_requests(url: str, data_dir: Path) -> float | None:
    """The hello function's invocations as the platform's metrics count them; None if off."""
    with Client(url, data_dir=data_dir, timeout=10) as client:
        try:
            text = client.send("GET", "/metrics").text
        except NotFound:
            return None
    samples = (
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    )
    return next(
        s.value
        for s in samples
        if s.name == "nimbus_invocations_total" and s.labels.get("function") == "hello"
    )


def measure_http(wrk: str, args: argparse.Namespace) -> tuple[Runs, dict[str, float | None]]:
    """Both servers' runs, and the requests each one's metrics counted (None: off)."""
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        data = {side: Path(tmp) / side / "data" for side in ("on", "off")}
        for folder in data.values():
            folder.parent.mkdir()  # the server's log goes beside its data folder
        with (
            nimbus_server(APP, data["on"], PATH) as on,
            nimbus_server(APP, data["off"], PATH, *OFF_OPTIONS) as off,
        ):
            urls = {"on": on, "off": off}
            runs = http_runs(wrk, urls, args)
            counted = {side: counted_requests(url, data[side]) for side, url in urls.items()}
    return runs, counted


def report(args: argparse.Namespace, invoke: Runs, http: Runs, details: dict[str, Any]) -> Report:
    calls_on, calls_off = median_of_runs(invoke["on"]), median_of_runs(invoke["off"])
    http_on, http_off = median_of_runs(http["on"]), median_of_runs(http["off"])
    metrics = [
        Metric(f"warm invoke {key}", "µs", calls_on[key], calls_off[key]) for key in ("p50", "p99")
    ]
    metrics += [
        Metric("HTTP requests/s", "req/s", http_on["requests_per_s"], http_off["requests_per_s"]),
        Metric("HTTP latency p50", "ms", http_on["latency_p50_ms"], http_off["latency_p50_ms"]),
        Metric("HTTP latency p99", "ms", http_on["latency_p99_ms"], http_off["latency_p99_ms"]),
    ]
    return Report(
        name=NAME,
        title=TITLE,
        baseline=BASELINE,
        runs=args.runs,
        parameters={
            "on": sorted(SWITCHES),
            "off options": OFF_OPTIONS,
            "invocations_per_run": args.invocations,
            "invoke_warmup": args.invoke_warmup,
            "wrk": wrk_load(args),
            "path": PATH,
            "warmup_seconds": args.warmup,
        },
        metrics=metrics,
        target=Target(
            f"warm invoke p50, on <= {MAX_SLOWDOWN:g} x off",
            metrics[0].ratio,
            MAX_SLOWDOWN,
            "x",
        ),
        more_targets=[
            Target(
                f"HTTP requests/s, on >= {MIN_THROUGHPUT:g} x off",
                metrics[2].ratio,
                MIN_THROUGHPUT,
                "x",
                at_most=False,
            )
        ],
        details=details,
        per_run={
            **{f"invoke {side}": results for side, results in invoke.items()},
            **{f"http {side}": results for side, results in http.items()},
        },
        warnings=wrk_failures(http),
    )


def measure(args: argparse.Namespace) -> Report:
    check_connections(args.connections)
    wrk = find_wrk()
    if wrk is None:
        return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=WRK_MISSING)
    invoke, invocations_counted = uvloop.run(measure_invoke(args))
    http, requests_counted = measure_http(wrk, args)
    p50 = {side: median_of_runs(runs)["p50"] for side, runs in invoke.items()}
    details: dict[str, Any] = {
        f"warm invoke p50, {side} / off": f"{p50[side] / p50['off']:.2f}x"
        for side in p50
        if side.startswith("only ")
    }
    details["warm invocations the metrics counted"] = invocations_counted
    details["requests the metrics counted (on, off)"] = requests_counted
    return report(args, invoke, http, details)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.set_defaults(runs=15)
    parser.add_argument("--invocations", type=int, default=2000, help="timed calls per run")
    parser.add_argument(
        "--invoke-warmup", type=int, default=500, help="untimed calls before the runs"
    )
    add_wrk_arguments(parser)
    finish(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
