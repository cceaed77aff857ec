"""Run every benchmark, each in its own process, then print a summary table of their results.

    .venv/bin/python bench/run_all.py [--runs N] [--only NAME ...] [--check]

Exits 1 if a benchmark failed to run, or, with --check, if a target was missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from common import BENCH_DIR, PYTHON, fmt, format_table, result_path

BENCHMARKS = (
    "invoke_overhead",
    "cold_start",
    "http_throughput",
    "idle_memory",
    "queue_throughput",
    "services_ops",
    "websocket_fanout",
    "webhook_accept",
    "observability_overhead",
)
TIME_LIMIT = 240.0  # seconds for one benchmark; each is meant to take under two minutes


def run(name: str, runs: int | None) -> bool:
    """Run one benchmark script; False if it failed or ran over its time limit."""
    result_path(name).unlink(missing_ok=True)
    command = [PYTHON, str(BENCH_DIR / f"{name}.py")]
    if runs is not None:
        command += ["--runs", str(runs)]
    print(f"\n### {name}", flush=True)
    started = time.monotonic()
    try:
        status = subprocess.run(command, check=False, timeout=TIME_LIMIT).returncode
    except subprocess.TimeoutExpired:
        print(f"### {name}: over the time limit of {TIME_LIMIT:g} s", flush=True)
        return False
    print(f"### {name}: {time.monotonic() - started:.0f} s, exit status {status}", flush=True)
    return status == 0 and result_path(name).exists()


def summary_row(name: str) -> list[str]:
    path = result_path(name)
    if not path.exists():
        return [name, "-", "-", "-", "-", "FAILED"]
    data: dict[str, Any] = json.loads(path.read_text())
    if data["skipped"]:
        return [name, "-", "-", "-", "-", f"SKIPPED ({data['skipped']})"]
    metric = data["metrics"][0]
    return [
        name,
        f"{metric['name']}",
        fmt(metric["nimbus"], metric["unit"]),
        fmt(metric["baseline"], metric["unit"]),
        f"{metric['ratio']:.2f}x",
        target_summary(data),
    ]


def targets_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    primary = [data["target"]] if data.get("target") else []
    return primary + list(data.get("more_targets", []))


def target_summary(data: dict[str, Any]) -> str:
    targets = targets_of(data)
    if not targets:
        return "no target"
    first = targets[0]
    verdict = "MET" if first["met"] else "MISSED"
    text = f"{verdict}: {first['description']} ({fmt(first['value'], first['unit'])})"
    if len(targets) > 1:
        others = sum(not target["met"] for target in targets[1:])
        text += f"; {len(targets) - 1} more: " + (f"{others} MISSED" if others else "all MET")
    return text


def missed(names: list[str]) -> list[str]:
    out = []
    for name in names:
        path = result_path(name)
        data = json.loads(path.read_text()) if path.exists() else None
        if data and any(not target["met"] for target in targets_of(data)):
            out.append(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Run all nimbus benchmarks.")
    parser.add_argument("--runs", type=int, help="measurement runs of each benchmark")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    names = list(args.only or BENCHMARKS)
    failed = [name for name in names if not run(name, args.runs)]
    headers = ["benchmark", "metric (median)", "nimbus", "baseline", "nimbus/baseline", "target"]
    print("\n" + format_table(headers, [summary_row(name) for name in names]))
    if failed:
        print(f"failed: {', '.join(failed)}")
    sys.exit(1 if failed or (args.check and missed(names)) else 0)


if __name__ == "__main__":
    main()
