"""Shared by every benchmark: statistics, the result record, printing, JSON output, processes.

A benchmark measures nimbus and a baseline in the same run, several runs, and reports the
median over runs of each statistic (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
DEFAULT_RUNS = 5

T = TypeVar("T")
Summary = dict[str, float]
Runs = dict[str, list[Summary]]  # per side ("nimbus", "baseline", ...), one summary per run


# statistics


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0 to 100), interpolating linearly between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples: Sequence[float]) -> Summary:
    """p50, p99 and mean of one run's samples."""
    return {
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
    }


def median_of_runs(runs: Sequence[Mapping[str, float]]) -> Summary:
    """For each statistic, its median over the runs."""
    if not runs:
        raise ValueError("no runs")
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


async def time_call_us(call: Callable[[], Awaitable[object]]) -> float:
    """How long one awaited call took, in microseconds."""
    start = time.perf_counter_ns()
    await call()
    return (time.perf_counter_ns() - start) / 1000


async def time_calls_us(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """`count` sequential calls, each timed in microseconds."""
    return [await time_call_us(call) for _ in range(count)]


# the result record


@dataclass(frozen=True)
class Metric:
    """One figure measured for nimbus and for the baseline, in the same unit."""

    name: str
    unit: str
    nimbus: float
    baseline: float

    @property
    def ratio(self) -> float:
        """nimbus / baseline."""
        return self.nimbus / self.baseline if self.baseline else math.inf


@dataclass(frozen=True)
class Target:
    """The figure a benchmark must reach: `value` at most (or at least) `limit`."""

    description: str
    value: float
    limit: float
    unit: str = ""
    at_most: bool = True

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit


@dataclass
class Report:
    """What one benchmark found; printed, and written to bench/results/<name>.json."""

    name: str
    title: str
    baseline: str
    runs: int
    parameters: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    target: Target | None = None
    more_targets: list[Target] = field(default_factory=list)
    """Further targets of the same benchmark; `target` is the one the summary shows."""
    details: dict[str, Any] = field(default_factory=dict)
    per_run: Runs = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = [{**asdict(m), "ratio": m.ratio} for m in self.metrics]
        data["target"] = None if self.target is None else _target_json(self.target)
        data["more_targets"] = [_target_json(target) for target in self.more_targets]
        data["machine"] = machine()
        data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return data


def _target_json(target: Target) -> dict[str, Any]:
    return {**asdict(target), "met": target.met}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def result_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def write_report(report: Report) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = result_path(report.name)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return path


def finish(report: Report) -> None:
    """Print the report and write its JSON file."""
    print(render_report(report))
    print(f"written to {write_report(report).relative_to(BENCH_DIR.parent)}")


# printing


def fmt(value: float, unit: str = "") -> str:
    """A number with about three significant digits, and its unit."""
    if math.isinf(value) or math.isnan(value):
        text = str(value)
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, the first column left-aligned and the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def target_verdict(target: Target | None) -> str:
    if target is None:
        return "no target"
    verdict = "MET" if target.met else "MISSED"
    return f"{target.description}: {fmt(target.value, target.unit)} -> {verdict}"


def render_report(report: Report) -> str:
    header = f"== {report.name}: {report.title}"
    if report.skipped is not None:
        return f"{header}\nSKIPPED: {report.skipped}"
    rows = [
        [m.name, fmt(m.nimbus, m.unit), fmt(m.baseline, m.unit), f"{m.ratio:.2f}x"]
        for m in report.metrics
    ]
    table = format_table(["median of runs", "nimbus", "baseline", "nimbus/baseline"], rows)
    lines = [header, f"baseline: {report.baseline}", f"runs: {report.runs}", table]
    lines += [f"{key}: {value}" for key, value in report.details.items()]
    lines += [f"WARNING: {warning}" for warning in report.warnings]
    lines.append(f"target: {target_verdict(report.target)}")
    lines += [f"target: {target_verdict(target)}" for target in report.more_targets]
    return "\n".join(lines)


# command line


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(description or "").strip().split("\n")[0])
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="measurement runs (medians are reported)"
    )
    return parser


# processes


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(
    process: subprocess.Popen[Any], grace: float = 10.0, sig: int = signal.SIGINT
) -> None:
    """Send `sig` (a graceful stop), then SIGKILL if it has not exited within `grace` s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition: Callable[[], T | None], limit: float, what: str) -> T:
    """Poll `condition` until it returns something other than None, and return that;
    RuntimeError after `limit` seconds."""
    deadline = time.monotonic() + limit
    while (value := condition()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {limit:g} s")
        time.sleep(0.02)
    return value
