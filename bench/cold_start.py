"""Cold start of a trivial function: from asking for a new instance to having its result.

nimbus: invoke the `cold` function (keep_alive=0, min_instances=0) when it has no instance, so
the pool forks one from the zygote, the instance imports the handler module and runs it once;
then stop that instance and wait for it to exit, untimed, before the next sample.
Baseline: `python -c "import bench_handlers; bench_handlers.cold(None)"` run with `subprocess`,
timed until the process has exited.
Target: nimbus p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import uvloop

from common import (
    APPS_DIR,
    PYTHON,
    Metric,
    Report,
    Runs,
    Summary,
    Target,
    argument_parser,
    finish,
    latency_summary,
    median_of_runs,
)
from nimbus.controller import Controller
from nimbus_harness import invoke_ok, running_controller, stop_idle_instances

NAME = "cold_start"
FUNCTION = "cold"
TARGET_P50_MS = 5.0
BASELINE_CODE = (
    f"import sys; sys.path.insert(0, {str(APPS_DIR)!r}); "
    "import bench_handlers; bench_handlers.cold(None)"
)


async def nimbus_sample(controller: Controller) -> tuple[float, float]:
    """One cold invocation: its time in ms, and the instance's own handler-loading time."""
    pool = controller.invoker.pool(FUNCTION)
    await stop_idle_instances(pool)  # whatever is left makes the next invocation warm
    start = time.perf_counter_ns()
    invocation = await invoke_ok(controller, FUNCTION)
    elapsed_ms = (time.perf_counter_ns() - start) / 1e6
    if not invocation.record.cold_start:
        raise RuntimeError("the invocation was not a cold start")
    await stop_idle_instances(pool)
    return elapsed_ms, invocation.record.init_ms


def baseline_sample() -> float:
    """One `python -c` run of the same handler, in ms."""
    start = time.perf_counter_ns()
    subprocess.run([PYTHON, "-c", BASELINE_CODE], check=True, stdin=subprocess.DEVNULL)
    return (time.perf_counter_ns() - start) / 1e6


async def nimbus_run(controller: Controller, samples: int) -> Summary:
    results = [await nimbus_sample(controller) for _ in range(samples)]
    summary = latency_summary([elapsed for elapsed, _ in results])
    summary["init_ms"] = statistics.median(init for _, init in results)
    return summary


def baseline_run(samples: int) -> Summary:
    return latency_summary([baseline_sample() for _ in range(samples)])


async def measure_runs(args: argparse.Namespace) -> Runs:
    """Alternate nimbus and baseline run by run so that both see the same machine load."""
    runs: Runs = {"nimbus": [], "baseline": []}
    async with running_controller() as controller:
        await nimbus_run(controller, args.warmup)
        baseline_run(args.warmup)
        for run in range(args.runs):
            runs["nimbus"].append(await nimbus_run(controller, args.samples))
            runs["baseline"].append(baseline_run(args.samples))
            nimbus_p50, baseline_p50 = runs["nimbus"][-1]["p50"], runs["baseline"][-1]["p50"]
            print(
                f"run {run + 1}/{args.runs}: p50 nimbus {nimbus_p50:.2f} ms, "
                f"baseline {baseline_p50:.2f} ms",
                flush=True,
            )
    return runs


def report(args: argparse.Namespace, runs: Runs) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    return Report(
        name=NAME,
        title="cold start of a trivial function, request to result",
        baseline="subprocess: python -c 'import bench_handlers; bench_handlers.cold(None)', "
        "until it exits",
        runs=args.runs,
        parameters={"samples_per_run": args.samples, "warmup": args.warmup},
        metrics=[Metric(key, "ms", nimbus[key], baseline[key]) for key in ("p50", "p99", "mean")],
        target=Target(f"nimbus p50 <= {TARGET_P50_MS:g} ms", nimbus["p50"], TARGET_P50_MS, "ms"),
        details={"instance handler-loading time (init_ms), median": f"{nimbus['init_ms']:.2f} ms"},
        per_run=runs,
    )


async def measure(args: argparse.Namespace) -> Report:
    return report(args, await measure_runs(args))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--samples", type=int, default=100, help="cold starts per run and side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed cold starts first")
    finish(uvloop.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
