"""Queue end to end: send N messages, a queue-triggered function processes them, all are
acknowledged. Messages/s from the first send to the last acknowledgement, batch size 1 and 100.

nimbus: a controller in this process deploys bench/apps/queue_app.py. The `produce` function,
invoked directly, sends the N messages with `send_batch` (1000 per call, through the SDK and
the controller, as user code does). `consume1` (batch_size=1) or `consume100` (batch_size=100),
2 instances each, parse every message; the queue trigger deletes (acknowledges) each batch once
its invocation has succeeded. The clock stops when the last message is deleted.
Baseline: Celery + Redis on the same machine: a worker with the prefork pool, concurrency 2,
`acks_late` (acknowledged after the task ran), no result backend (bench/apps/celery_app.py).
Batch size 1: one task per message, published from this process with `apply_async` on one
producer connection. Batch size 100: Celery's own `chunks` primitive, one task per 100
messages. The clock stops when the broker's queue and its unacknowledged set are both empty
and the worker has accepted every task.
Targets: nimbus >= 20,000 msgs/s with batches of 100; nimbus >= 10 x Celery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
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
    median_of_runs,
    stop_process,
    wait_until,
)
from nimbus.controller import Controller
from nimbus.services.queue import DeleteBatchResult, Queues
from nimbus_harness import invocation_records, invoke_ok, running_controller
from redis_harness import DEFAULT_DB, DEFAULT_URL, RedisUnavailable, redis_database

NAME = "queue_throughput"
TITLE = "queue end to end: send, trigger, process, acknowledge (msgs/s)"
BASELINE = "Celery + Redis, prefork worker, concurrency 2, acks_late"
APP = APPS_DIR / "queue_app.py"
BATCH_SIZES = (1, 100)
TARGET_MSGS_PER_S = 20_000.0
TARGET_RATIO = 10.0
WORKER_CONCURRENCY = 2
CELERY_QUEUE = "bench-queue"  # celery_app.QUEUE
UNACKED = "unacked"  # kombu's Redis hash of delivered, not yet acknowledged messages
POLL = 0.002  # s between looks at the broker
RUN_LIMIT = 300.0  # s for one run to finish
STARTUP_LIMIT = 60.0


def bench_module(name: str) -> ModuleType:
    """A module of bench/apps (the app loader puts that folder on sys.path the same way)."""
    if str(APPS_DIR) not in sys.path:
        sys.path.insert(0, str(APPS_DIR))
    return importlib.import_module(name)


# nimbus


class AckCounter:
    """Counts the messages the queue triggers acknowledge (delete), queue by queue, and tells
    the instant a queue reaches a count. It wraps the controller's queue service object for
    the benchmark's duration; what the trigger does is unchanged."""

    def __init__(self, queues: Queues) -> None:
        self._queues = queues
        self._delete_batch = queues.delete_batch
        self.acked: Counter[str] = Counter()
        self._expected: dict[str, tuple[int, asyncio.Future[float]]] = {}

    def __enter__(self) -> AckCounter:
        self._queues.delete_batch = self.delete_batch  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._queues.delete_batch

    async def delete_batch(self, name: str, receipts: Any) -> DeleteBatchResult:
        result = await self._delete_batch(name, receipts)
        now = time.perf_counter()
        self.acked[name] += len(result.deleted)
        waiting = self._expected.get(name)
        if waiting is not None and self.acked[name] >= waiting[0] and not waiting[1].done():
            waiting[1].set_result(now)
        return result

    def expect(self, name: str, more: int) -> asyncio.Future[float]:
        """A future set to the perf_counter time when `more` further messages are acked."""
        future = asyncio.get_running_loop().create_future()
        self._expected[name] = (self.acked[name] + more, future)
        return future


class NimbusSide:
    def __init__(self, controller: Controller, counter: AckCounter) -> None:
        self.controller = controller
        self.counter = counter
        self.queue_app = bench_module("queue_app")
        self.sent: Counter[int] = Counter()  # messages sent, by batch size

    async def run(self, batch: int, first: int, count: int) -> Summary:
        queue = self.queue_app.queue_name(batch)
        acked = self.counter.expect(queue, count)
        payload = msgspec.json.encode({"batch": batch, "first": first, "count": count})
        start = time.perf_counter()
        await invoke_ok(self.controller, "produce", payload)
        sent = time.perf_counter()
        end = await asyncio.wait_for(acked, RUN_LIMIT)
        self.sent[batch] += count
        return {"msgs_per_s": count / (end - start), "send_s": sent - start, "total_s": end - start}

    async def check(self) -> tuple[dict[str, Any], list[str]]:
        """After the runs: every queue empty, and invocations as many as expected."""
        details: dict[str, Any] = {}
        warnings: list[str] = []
        for batch in BATCH_SIZES:
            queue = self.queue_app.queue_name(batch)
            stats = await self.controller.services.queues.stats(queue)
            left = stats.visible + stats.in_flight + stats.delayed + stats.dead_letters
            if left:
                warnings.append(f"nimbus queue {queue} is not empty after the runs: {stats}")
            invocations = await invocation_records(
                self.controller, self.queue_app.consumer_name(batch)
            )
            details[f"nimbus batch {batch}: messages per invocation (mean)"] = round(
                self.sent[batch] / invocations, 1
            )
            if batch == 1 and invocations != self.sent[batch]:
                warnings.append(
                    f"nimbus batch 1: {invocations} invocations for {self.sent[batch]} messages"
                )
        return details, warnings


# Celery


@contextlib.contextmanager
def celery_worker(broker: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [PYTHON, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(WORKER_CONCURRENCY), "-Q", CELERY_QUEUE]
    command += ["--loglevel", "warning", "--without-gossip", "--without-mingle"]
    command += ["--without-heartbeat"]
    env = {**os.environ, "BENCH_CELERY_BROKER": broker}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=APPS_DIR, env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    except Exception:
        print(f"celery worker log ({log}):\n{log.read_text()[-4000:]}")
        raise
    finally:
        stop_process(process, grace=20.0, sig=15)  # SIGTERM: Celery's warm shutdown


class CelerySide:
    def __init__(self, broker: str, client: Any) -> None:
        module = bench_module("celery_app")
        self.app: Any = module.app
        self.app.conf.broker_url = broker
        self.task: Any = module.process
        self.event_work = bench_module("event_work")
        self.redis = client
        self.accepted = 0  # tasks the worker has accepted so far
        self.tasks: Counter[int] = Counter()  # tasks published, by batch size

    def wait_ready(self, worker: subprocess.Popen[bytes]) -> None:
        def answered() -> bool | None:
            if worker.poll() is not None:
                raise RuntimeError(f"the celery worker exited with status {worker.returncode}")
            return True if self.app.control.ping(timeout=0.5) else None

        wait_until(answered, STARTUP_LIMIT, "the celery worker to answer a ping")
        self.accepted = self.tasks_accepted()

    def tasks_accepted(self) -> int:
        """The worker's own count of the tasks it has accepted (all names together)."""
        replies = self.app.control.inspect(timeout=2.0, limit=1).stats() or {}
        return sum(sum(stats["total"].values()) for stats in replies.values())

    def run(self, batch: int, first: int, count: int) -> Summary:
        body = self.event_work.body
        tasks = count if batch == 1 else math.ceil(count / batch)
        expected = self.accepted + tasks
        start = time.perf_counter()
        if batch == 1:
            with self.app.producer_or_acquire() as producer:
                for number in range(first, first + count):
                    self.task.apply_async((body(number),), producer=producer)
        else:
            args = ((body(number),) for number in range(first, first + count))
            self.task.chunks(args, batch).apply_async()
        sent = time.perf_counter()
        end = self._drained(expected)
        self.tasks[batch] += tasks
        return {"msgs_per_s": count / (end - start), "send_s": sent - start, "total_s": end - start}

    def _drained(self, expected: int) -> float:
        """When the queue and the unacknowledged set were first seen empty with every task
        accepted (acks_late: a task is acknowledged once it has run)."""
        deadline = time.monotonic() + RUN_LIMIT
        while time.monotonic() < deadline:
            pipe = self.redis.pipeline(transaction=False)
            waiting, unacked = pipe.llen(CELERY_QUEUE).hlen(UNACKED).execute()
            if not waiting and not unacked:
                end = time.perf_counter()
                accepted = self.tasks_accepted()
                if accepted >= expected:
                    self.accepted = accepted
                    return end
            time.sleep(POLL)
        raise RuntimeError(f"celery did not finish within {RUN_LIMIT:g} s")


# the benchmark


async def measure_runs(nimbus: NimbusSide, celery: CelerySide, args: argparse.Namespace) -> Runs:
    counts = {1: args.messages_1, 100: args.messages_100}
    first = 0
    for batch in BATCH_SIZES:  # warm-up: instances started, connections open
        await nimbus.run(batch, first, args.warmup)
        await asyncio.to_thread(celery.run, batch, first, args.warmup)
        first += args.warmup
    runs: Runs = {f"{side} batch {b}": [] for b in BATCH_SIZES for side in ("nimbus", "celery")}
    for run in range(args.runs):
        for batch in BATCH_SIZES:
            count = counts[batch]
            result = await nimbus.run(batch, first, count)
            runs[f"nimbus batch {batch}"].append(result)
            baseline = await asyncio.to_thread(celery.run, batch, first, count)
            runs[f"celery batch {batch}"].append(baseline)
            first += count
            print(
                f"run {run + 1}/{args.runs} batch {batch}: nimbus {result['msgs_per_s']:,.0f}, "
                f"celery {baseline['msgs_per_s']:,.0f} msgs/s",
                flush=True,
            )
    return runs


def report(args: argparse.Namespace, runs: Runs, details: dict[str, Any]) -> Report:
    median = {side: median_of_runs(results) for side, results in runs.items()}

    def rate(side: str, batch: int) -> float:
        return median[f"{side} batch {batch}"]["msgs_per_s"]

    def send(side: str, batch: int) -> float:
        return median[f"{side} batch {batch}"]["send_s"]

    ratio_100 = rate("nimbus", 100) / rate("celery", 100)
    ratio_1 = rate("nimbus", 1) / rate("celery", 1)
    return Report(
        name=NAME,
        title=TITLE,
        baseline=f"{BASELINE}; batch 1: a task per message; batch 100: Celery chunks of 100",
        runs=args.runs,
        parameters={
            "messages_batch_1": args.messages_1,
            "messages_batch_100": args.messages_100,
            "warmup_messages": args.warmup,
            "nimbus_consumer_instances": bench_module("queue_app").CONSUMER_INSTANCES,
            "nimbus_send_batch": bench_module("queue_app").SEND_CHUNK,
            "celery_concurrency": WORKER_CONCURRENCY,
        },
        metrics=[
            Metric("msgs/s, batch 100", "msgs/s", rate("nimbus", 100), rate("celery", 100)),
            Metric("msgs/s, batch 1", "msgs/s", rate("nimbus", 1), rate("celery", 1)),
            Metric(
                "msgs/s, nimbus batch 100 vs Celery task per message",
                "msgs/s",
                rate("nimbus", 100),
                rate("celery", 1),
            ),
            Metric("seconds to send, batch 100", "s", send("nimbus", 100), send("celery", 100)),
            Metric("seconds to send, batch 1", "s", send("nimbus", 1), send("celery", 1)),
        ],
        target=Target(
            f"nimbus batch 100 >= {TARGET_MSGS_PER_S:,.0f} msgs/s",
            rate("nimbus", 100),
            TARGET_MSGS_PER_S,
            "msgs/s",
            at_most=False,
        ),
        more_targets=[
            Target(
                f"nimbus/Celery >= {TARGET_RATIO:g}x, batch 100 (Celery chunks)",
                ratio_100,
                TARGET_RATIO,
                "x",
                at_most=False,
            ),
            Target(
                f"nimbus/Celery >= {TARGET_RATIO:g}x, batch 1",
                ratio_1,
                TARGET_RATIO,
                "x",
                at_most=False,
            ),
        ],
        details=details,
        per_run=runs,
    )


async def measure(args: argparse.Namespace) -> Report:
    try:
        bench_module("celery_app")
    except ImportError as missing:
        reason = f"the benchmark-only package celery is not installed ({missing})"
        return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=reason)
    with contextlib.ExitStack() as stack:
        try:
            database = stack.enter_context(redis_database(args.redis_url, args.redis_db))
        except RedisUnavailable as reason:
            return Report(NAME, TITLE, BASELINE, args.runs, parameters={}, skipped=str(reason))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nimbus-bench-")))
        worker = stack.enter_context(celery_worker(database.url, folder / "celery.log"))
        celery = CelerySide(database.url, database.client)
        celery.wait_ready(worker)
        async with running_controller(APP) as controller:
            with AckCounter(controller.services.queues) as counter:
                nimbus = NimbusSide(controller, counter)
                runs = await measure_runs(nimbus, celery, args)
                details, warnings = await nimbus.check()
        expected = sum(celery.tasks.values())
        accepted = celery.tasks_accepted()
        if accepted < expected:
            warnings.append(f"celery accepted {accepted} tasks of {expected}")
        details["redis"] = {**database.server, "started by the benchmark": database.own_server}
        details["versions"] = {name: version(name) for name in ("celery", "kombu", "redis")}
    result = report(args, runs, details)
    result.warnings += warnings
    return result


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--messages-1", type=int, default=3000, help="messages per batch-1 run")
    parser.add_argument(
        "--messages-100", type=int, default=50_000, help="messages per batch-100 run"
    )
    parser.add_argument("--warmup", type=int, default=500, help="messages of the warm-up runs")
    parser.add_argument("--redis-url", default=DEFAULT_URL, help="Redis server for Celery")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_DB, help="an unused database")
    finish(uvloop.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
