"""Memory of one idle warm instance: USS (private memory) and PSS, from /proc/PID/smaps_rollup.

nimbus: invoke the `pid` function once (it returns os.getpid()), check that the process is a
child of the zygote, let it sit idle, then read its smaps_rollup. Each run uses a new instance.
Baseline: an idle `python -c "import time; time.sleep(60)"` (plus a flushed 'ready' line, so
that it is measured only once started), measured the same way after the same idle time.
Target: nimbus instance USS <= 5 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
from pathlib import Path

import msgspec
import uvloop

from common import (
    PYTHON,
    Metric,
    Report,
    Runs,
    Summary,
    Target,
    argument_parser,
    finish,
    median_of_runs,
    stop_process,
)
from nimbus.controller import Controller
from nimbus_harness import invoke_ok, running_controller, stop_idle_instances

NAME = "idle_memory"
FUNCTION = "pid"
TARGET_USS_MIB = 5.0
BASELINE_CODE = "import time; print('ready', flush=True); time.sleep(60)"
KIB_PER_MIB = 1024


def read_memory(pid: int) -> Summary:
    """USS, PSS and RSS of a process in MiB, from /proc/PID/smaps_rollup."""
    kib: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        value, _, unit = rest.strip().partition(" ")
        if unit == "kB":
            kib[name] = int(value)
    return {
        "uss": (kib["Private_Clean"] + kib["Private_Dirty"]) / KIB_PER_MIB,
        "pss": kib["Pss"] / KIB_PER_MIB,
        "rss": kib["Rss"] / KIB_PER_MIB,
    }


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])  # after "pid (comm)": state, ppid


async def nimbus_sample(controller: Controller, idle: float) -> tuple[Summary, Summary]:
    """A new instance's memory after `idle` seconds, and the zygote's at the same moment."""
    pool = controller.invoker.pool(FUNCTION)
    await stop_idle_instances(pool)
    pid = msgspec.json.decode((await invoke_ok(controller, FUNCTION)).result.value, type=int)
    zygote = pool.zygote.process.pid
    if parent_pid(pid) != zygote:
        raise RuntimeError(f"process {pid} is not a child of the zygote {zygote}")
    await asyncio.sleep(idle)
    instance_memory, zygote_memory = read_memory(pid), read_memory(zygote)
    await stop_idle_instances(pool)
    return instance_memory, zygote_memory


async def baseline_sample(idle: float) -> Summary:
    """An idle bare interpreter's memory, once started and `idle` seconds later."""
    process = subprocess.Popen(
        [PYTHON, "-c", BASELINE_CODE], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        await asyncio.to_thread(process.stdout.readline)
        await asyncio.sleep(idle)
        return read_memory(process.pid)
    finally:
        stop_process(process, sig=signal.SIGTERM)


async def measure_runs(args: argparse.Namespace) -> Runs:
    """Alternate nimbus and baseline run by run so that both see the same machine load."""
    runs: Runs = {"nimbus": [], "baseline": [], "zygote": []}
    async with running_controller() as controller:
        for run in range(args.runs):
            instance, zygote = await nimbus_sample(controller, args.idle)
            runs["nimbus"].append(instance)
            runs["zygote"].append(zygote)
            runs["baseline"].append(await baseline_sample(args.idle))
            print(
                f"run {run + 1}/{args.runs}: USS instance {instance['uss']:.2f} MiB, "
                f"bare python {runs['baseline'][-1]['uss']:.2f} MiB",
                flush=True,
            )
    return runs


def report(args: argparse.Namespace, runs: Runs) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    zygote = median_of_runs(runs["zygote"])
    labels = {"uss": "USS (private)", "pss": "PSS", "rss": "RSS"}
    return Report(
        name=NAME,
        title="memory of one idle warm instance",
        baseline="idle bare interpreter: python -c 'import time; time.sleep(60)'",
        runs=args.runs,
        parameters={"idle_seconds": args.idle},
        metrics=[Metric(label, "MiB", nimbus[key], baseline[key]) for key, label in labels.items()],
        target=Target(
            f"nimbus instance USS <= {TARGET_USS_MIB:g} MiB", nimbus["uss"], TARGET_USS_MIB, "MiB"
        ),
        details={
            "zygote (shared by all instances)": f"USS {zygote['uss']:.1f} MiB, "
            f"PSS {zygote['pss']:.1f} MiB, RSS {zygote['rss']:.1f} MiB"
        },
        per_run=runs,
    )


async def measure(args: argparse.Namespace) -> Report:
    return report(args, await measure_runs(args))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds idle before reading")
    finish(uvloop.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
