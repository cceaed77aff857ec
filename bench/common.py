"""Shared by every benchmark: statistics, the result record, printing, JSON output, processes,
servers and wrk.

A benchmark measures nimbus and a baseline in the same run, several runs, and reports the
median over runs of each statistic (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
DEFAULT_RUNS = 5
STARTUP_LIMIT = 60.0  # seconds for a benchmarked server to answer
APT_LIMIT = 300.0
WRK_MISSING = (
    "wrk is not on PATH, and `apt-get install -y wrk` was not possible or failed: "
    "install the Debian package `wrk` to run this benchmark"
)
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}

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


# runs


def alternate_runs(
    sides: Mapping[str, Callable[[], Summary]], runs: int, describe: Callable[[Summary], str]
) -> Runs:
    """Run every side once per run, alternately, so that all see the same machine load."""
    results: Runs = {side: [] for side in sides}
    for number in range(1, runs + 1):
        for side, run in sides.items():
            summary = run()
            results[side].append(summary)
            print(f"run {number}/{runs} {side}: {describe(summary)}", flush=True)
    return results


# servers


def ensure_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the server exited with status {process.returncode}")


@contextlib.contextmanager
def server(
    command: list[str], log: Path, url_of: Callable[[], str | None], ready_path: str
) -> Iterator[str]:
    """Run a server, yield its URL once GET `ready_path` answers 200, stop it at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )

    def announced_url() -> str | None:
        ensure_running(process)
        return url_of()

    def answered(url: str) -> bool | None:
        ensure_running(process)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + ready_path, timeout=5).status_code == 200:
                return True
        return None

    try:
        url = wait_until(announced_url, STARTUP_LIMIT, "the server's URL")
        wait_until(lambda: answered(url), STARTUP_LIMIT, f"{url} to answer")
        yield url
    except Exception:
        status = process.poll()
        state = "still running" if status is None else f"exited with status {status}"
        print(f"server {command[2:4]} {state}; its log ({log}):\n{log.read_text()[-4000:]}")
        raise
    finally:
        stop_process(process)


def nimbus_server(
    app_file: str, data_dir: Path, ready_path: str, *options: str
) -> contextlib.AbstractContextManager[str]:
    """`nimbus up APP_FILE [OPTIONS]` on a free port (the URL is read from its discovery file)."""
    command = [PYTHON, "-m", "nimbus", "up", str(APPS_DIR / app_file), "--port", "0"]
    command += ["--host", LOOPBACK, "--no-reload", "--data-dir", str(data_dir), *options]
    discovery = data_dir / "platform.json"

    def url_of() -> str | None:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            url: str = json.loads(discovery.read_text())["url"]
            return url
        return None

    return server(command, data_dir.parent / "nimbus.log", url_of, ready_path)


def bare_uvicorn(
    app: str, log: Path, ready_path: str, *options: str
) -> contextlib.AbstractContextManager[str]:
    """Bare uvicorn serving `app` (module:attribute of bench/apps) as nimbus configures its own:
    one worker, httptools, uvloop."""
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", app, "--app-dir", str(APPS_DIR)]
    command += ["--host", LOOPBACK, "--port", str(port), "--http", "httptools", "--loop", "uvloop"]
    command += ["--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    command += ["--no-server-header", "--no-date-header", *options]
    return server(command, log, lambda: f"http://{LOOPBACK}:{port}", ready_path)


# wrk


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_p50_ms: float
    latency_p99_ms: float


def find_wrk() -> str | None:
    """wrk's path; installs Debian's package once if it is missing and we are root."""
    if (path := shutil.which("wrk")) is not None:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("wrk not found: trying `apt-get install -y wrk`", flush=True)
    with contextlib.suppress(subprocess.SubprocessError):
        subprocess.run(
            ["apt-get", "install", "-y", "wrk"],
            check=True,
            capture_output=True,
            timeout=APT_LIMIT,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which("wrk")


def _number(pattern: str, text: str, default: str | None = None) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        if default is None:
            raise ValueError(f"wrk output has no match for {pattern!r}:\n{text}")
        return default
    return found.group(1)


def _latency_ms(percent: int, text: str) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if found is None:
        raise ValueError(f"wrk output has no {percent}% latency:\n{text}")
    return float(found.group(1)) * UNITS_MS[found.group(2)]


def parse_wrk(text: str) -> WrkResult:
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        requests_per_s=float(_number(r"^Requests/sec:\s+([\d.]+)", text)),
        requests=int(_number(r"^\s*(\d+) requests in", text)),
        non_2xx=int(_number(r"Non-2xx or 3xx responses:\s+(\d+)", text, "0")),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        latency_p50_ms=_latency_ms(50, text),
        latency_p99_ms=_latency_ms(99, text),
    )


def add_wrk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of the warm-up run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")


def wrk_load(args: argparse.Namespace) -> str:
    """The load every run gets, as wrk's options say it."""
    return f"-t{args.threads} -c{args.connections} -d{args.duration:g}s --latency"


def run_wrk(
    wrk: str,
    url: str,
    args: argparse.Namespace,
    duration: float,
    options: Sequence[str] = (),
    script_args: Sequence[str] = (),
) -> Summary:
    """One wrk run against `url` with the load of `args` for `duration` seconds."""
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s"]
    command += ["--latency", "--timeout", "5s", *options, url]
    if script_args:
        command += ["--", *script_args]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=duration + 30
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with status {done.returncode}:\n{done.stderr}{done.stdout}"
        )
    return {key: float(value) for key, value in asdict(parse_wrk(done.stdout)).items()}


def wrk_metrics(rate_name: str, nimbus: Summary, baseline: Summary) -> list[Metric]:
    """Requests/s and latency p50/p99 of both sides."""
    return [
        Metric(rate_name, "req/s", nimbus["requests_per_s"], baseline["requests_per_s"]),
        Metric("latency p50", "ms", nimbus["latency_p50_ms"], baseline["latency_p50_ms"]),
        Metric("latency p99", "ms", nimbus["latency_p99_ms"], baseline["latency_p99_ms"]),
    ]


def wrk_failures(runs: Runs) -> list[str]:
    """A warning for each run with non-2xx responses or socket errors."""
    warnings = []
    for side, results in runs.items():
        for number, result in enumerate(results, 1):
            if result["non_2xx"] or result["socket_errors"]:
                warnings.append(
                    f"{side} run {number}: {result['non_2xx']:.0f} non-2xx responses, "
                    f"{result['socket_errors']:.0f} socket errors"
                )
    return warnings
