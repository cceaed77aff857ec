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
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from common import (
    APPS_DIR,
    LOOPBACK,
    PYTHON,
    Metric,
    Report,
    Runs,
    Summary,
    Target,
    argument_parser,
    finish,
    free_port,
    median_of_runs,
    stop_process,
    wait_until,
)
from nimbus.spec.loader import load_app

NAME = "http_throughput"
TITLE = "HTTP requests/s through a hello function"
BASELINE = "bare uvicorn (1 worker, httptools, uvloop) serving a raw ASGI hello app"
TARGET_RATIO = 0.5
PATH = "/hello/bench"
STARTUP_LIMIT = 60.0
APT_LIMIT = 300.0
WRK_MISSING = (
    "wrk is not on PATH, and `apt-get install -y wrk` was not possible or failed: "
    "install the Debian package `wrk` to run this benchmark"
)
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_p50_ms: float
    latency_p99_ms: float


# wrk


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


def run_wrk(wrk: str, url: str, args: argparse.Namespace, duration: float) -> WrkResult:
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s"]
    command += ["--latency", "--timeout", "5s", url + PATH]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=duration + 30
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with status {done.returncode}:\n{done.stderr}{done.stdout}"
        )
    return parse_wrk(done.stdout)


# servers


def ensure_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the server exited with status {process.returncode}")


def hello_answered(url: str, process: subprocess.Popen[bytes]) -> bool | None:
    """True once the server answers the hello path with 200; None before."""
    ensure_running(process)
    with contextlib.suppress(httpx.HTTPError):
        if httpx.get(url + PATH, timeout=5).status_code == 200:
            return True
    return None


@contextlib.contextmanager
def server(command: list[str], log: Path, url_of: Callable[[], str | None]) -> Iterator[str]:
    """Run a server, yield its URL once it answers the hello path, stop it at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )

    def announced_url() -> str | None:
        ensure_running(process)
        return url_of()

    try:
        url = wait_until(announced_url, STARTUP_LIMIT, "the server's URL")
        wait_until(lambda: hello_answered(url, process), STARTUP_LIMIT, f"{url} to answer")
        yield url
    except Exception:
        status = process.poll()
        state = "still running" if status is None else f"exited with status {status}"
        print(f"server {command[2:4]} {state}; its log ({log}):\n{log.read_text()[-4000:]}")
        raise
    finally:
        stop_process(process)


def nimbus_server(data_dir: Path) -> contextlib.AbstractContextManager[str]:
    command = [PYTHON, "-m", "nimbus", "up", str(APPS_DIR / "bench_app.py"), "--port", "0"]
    command += ["--host", LOOPBACK, "--no-reload", "--data-dir", str(data_dir)]
    discovery = data_dir / "platform.json"

    def url_of() -> str | None:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            url: str = json.loads(discovery.read_text())["url"]
            return url
        return None

    return server(command, data_dir.parent / "nimbus.log", url_of)


def bare_server(log: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "bare_asgi:app", "--app-dir", str(APPS_DIR)]
    command += ["--host", LOOPBACK, "--port", str(port), "--http", "httptools", "--loop", "uvloop"]
    command += ["--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    command += ["--no-server-header", "--no-date-header"]
    return server(command, log, lambda: f"http://{LOOPBACK}:{port}")


# the benchmark


def check_connections(connections: int) -> None:
    spec = load_app(str(APPS_DIR / "bench_app.py"))
    limit = spec.functions["hello"].max_instances
    if connections > limit:
        raise SystemExit(f"--connections {connections} exceeds hello's max_instances ({limit})")


def summary(result: WrkResult) -> Summary:
    return {key: float(value) for key, value in asdict(result).items()}


def measure_runs(wrk: str, urls: dict[str, str], args: argparse.Namespace) -> Runs:
    """Warm both up (nimbus starts its instances), then alternate them run by run."""
    for url in urls.values():
        run_wrk(wrk, url, args, args.warmup)
    runs: Runs = {side: [] for side in urls}
    for run in range(args.runs):
        for side, url in urls.items():
            result = run_wrk(wrk, url, args, args.duration)
            runs[side].append(summary(result))
            print(
                f"run {run + 1}/{args.runs} {side}: {result.requests_per_s:,.0f} req/s", flush=True
            )
    return runs


def failures(runs: Runs) -> list[str]:
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


def report(args: argparse.Namespace, runs: Runs, instances: int) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    ratio = nimbus["requests_per_s"] / baseline["requests_per_s"]
    return Report(
        name=NAME,
        title=TITLE,
        baseline=BASELINE,
        runs=args.runs,
        parameters={
            "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration:g}s --latency",
            "path": PATH,
            "warmup_seconds": args.warmup,
        },
        metrics=[
            Metric("requests/s", "req/s", nimbus["requests_per_s"], baseline["requests_per_s"]),
            Metric("latency p50", "ms", nimbus["latency_p50_ms"], baseline["latency_p50_ms"]),
            Metric("latency p99", "ms", nimbus["latency_p99_ms"], baseline["latency_p99_ms"]),
        ],
        target=Target(
            f"nimbus >= {TARGET_RATIO:g} x bare uvicorn requests/s",
            ratio,
            TARGET_RATIO,
            "x",
            at_most=False,
        ),
        details={"hello instances after the runs": instances},
        per_run=runs,
        warnings=failures(runs),
    )


def hello_instances(url: str) -> int:
    functions = httpx.get(f"{url}/_nimbus/functions", timeout=10).json()
    return int(next(f["instances"] for f in functions if f["name"] == "hello"))


def skipped(args: argparse.Namespace, reason: str) -> Report:
    return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=reason)


def measure(args: argparse.Namespace) -> Report:
    check_connections(args.connections)
    wrk = find_wrk()
    if wrk is None:
        return skipped(args, WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with nimbus_server(data_dir) as nimbus, bare_server(Path(tmp) / "bare.log") as bare:
            runs = measure_runs(wrk, {"nimbus": nimbus, "baseline": bare}, args)
            instances = hello_instances(nimbus)
    return report(args, runs, instances)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of the warm-up run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    finish(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
