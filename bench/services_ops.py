"""Service operations: table put/get ops/s, stream append and consume records/s, and the
latency from publishing to a topic to the subscribed function starting.

nimbus: a controller in this process deploys bench/apps/services_app.py.
- table, direct: the controller's table service (the embedded backend) called from this
  process, one call after another and with 32 calls in flight (writes share commits then).
- table, SDK: the `table_ops` function puts then gets items one call after another, each call
  going from the worker to the controller and back; it times itself.
- stream append: the stream service's put (one record per call) and put_batch (100 per call),
  on a stream nothing consumes.
- stream consume: records appended 100 per call to a stream whose trigger runs
  `consume_records` on batches of up to 100 per partition (4 partitions); the clock runs from
  the first append to the checkpoint of the last record.
- publish -> handler: events published one every few ms to the topic's service; `on_event`
  notes time.time() on its own clock minus the publisher's time.time() carried in the event.
Baselines (same run): raw sqlite3 in WAL mode with synchronous=NORMAL, as nimbus commits, each
put or single append its own transaction (put: INSERT OR REPLACE of the JSON document, get:
SELECT by key and decode), 100 appends per transaction, and reading the records back in pages
of 100 doing the same per-record work (a floor: no function is invoked). Publish latency:
Redis pub/sub to a subscriber process (bench/pubsub_peer.py) timed the same way; an
asyncio.Queue hop inside one process is reported beside it.
No target: the issue asks for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from common import (
    APPS_DIR,
    BENCH_DIR,
    PYTHON,
    Metric,
    Report,
    Runs,
    Summary,
    argument_parser,
    finish,
    latency_summary,
    median_of_runs,
    stop_process,
    wait_until,
)
from nimbus.controller import Controller
from nimbus.ops.store import Store
from nimbus_harness import invoke_ok, running_controller
from redis_harness import DEFAULT_DB, DEFAULT_URL, RedisUnavailable, redis_database

NAME = "services_ops"
TITLE = "table put/get, stream append/consume, publish -> handler latency"
APP = APPS_DIR / "services_app.py"
TABLE, STREAM, APPEND_STREAM, TOPIC = "items", "records", "appends", "events"
CONSUMER = "consume_records"
IN_FLIGHT = 32
STREAM_BATCH = 100
RUN_LIMIT = 120.0  # s for one measurement to finish
STARTUP_LIMIT = 30.0

SQLITE_SCHEMA = """
CREATE TABLE items (id TEXT PRIMARY KEY, version INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY, partition INTEGER NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
    arrival REAL NOT NULL);
"""


def bench_module(name: str) -> Any:
    if str(APPS_DIR) not in sys.path:
        sys.path.insert(0, str(APPS_DIR))
    return __import__(name)


def item(number: int) -> dict[str, Any]:
    result: dict[str, Any] = bench_module("services_app").item(number)
    return result


def record(number: int) -> tuple[str, bytes]:
    """Key and data of stream record `number`."""
    return f"key-{number}", bench_module("event_work").body(number).encode()


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


async def timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


class Numbers:
    """Fresh item and record numbers: a put of an unchanged document writes nothing in nimbus,
    so every put in the benchmark stores a new item."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> range:
        numbers = range(self.next, self.next + count)
        self.next += count
        return numbers


# the baseline: raw sqlite3


class RawSqlite:
    """The same operations on one sqlite3 connection, with nimbus's durability settings."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SQLITE_SCHEMA)
        self.encode = msgspec.json.encode
        self.decode = msgspec.json.decode
        self.work = bench_module("event_work").work
        self.sequence = 0

    def close(self) -> None:
        self.db.close()

    def puts(self, numbers: range) -> float:
        start = time.perf_counter()
        for number in numbers:
            document = item(number)
            self.db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, 1, ?)",
                (document["id"], self.encode(document)),
            )
        return per_second(len(numbers), time.perf_counter() - start)

    def gets(self, numbers: range) -> float:
        start = time.perf_counter()
        for number in numbers:
            row = self.db.execute("SELECT doc FROM items WHERE id = ?", (f"item-{number}",))
            self.decode(row.fetchone()[0])
        return per_second(len(numbers), time.perf_counter() - start)

    def _rows(self, numbers: range) -> list[tuple[int, int, str, bytes, float]]:
        rows = []
        for number in numbers:
            key, data = record(number)
            self.sequence += 1
            rows.append((self.sequence, zlib.crc32(key.encode()) % 4, key, data, time.time()))
        return rows

    def appends(self, numbers: range, per_transaction: int) -> float:
        start = time.perf_counter()
        for at in range(0, len(numbers), per_transaction):
            rows = self._rows(numbers[at : at + per_transaction])
            if per_transaction > 1:
                self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
            if per_transaction > 1:
                self.db.execute("COMMIT")
        return per_second(len(numbers), time.perf_counter() - start)

    def consume(self, numbers: range) -> float:
        """Append the records (untimed), then time reading them back in pages with the work."""
        after = self.sequence
        self.appends(numbers, STREAM_BATCH)
        start = time.perf_counter()
        read = 0
        while read < len(numbers):
            rows = self.db.execute(
                "SELECT seq, data FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, STREAM_BATCH),
            ).fetchall()
            for _, data in rows:
                self.work(data.decode())
            read += len(rows)
            after = rows[-1][0]
        return per_second(len(numbers), time.perf_counter() - start)


# nimbus


async def in_flight(numbers: range, width: int, call: Callable[[int], Awaitable[object]]) -> None:
    """`call` for each number, `width` calls in flight at any time."""
    pending = iter(numbers)

    async def lane() -> None:
        for number in pending:
            await call(number)

    await asyncio.gather(*(lane() for _ in range(width)))


class CheckpointWatch:
    """Tells when the stream trigger's checkpoints reach given positions: wraps the store's
    save_checkpoint for the benchmark's duration (what the trigger does is unchanged)."""

    def __init__(self, store: Store, consumer_prefix: str) -> None:
        self._store = store
        self._save = store.save_checkpoint
        self._prefix = consumer_prefix
        self.positions: dict[str, int] = {}
        self._target: tuple[dict[str, int], asyncio.Future[float]] | None = None

    def __enter__(self) -> CheckpointWatch:
        self._store.save_checkpoint = self.save_checkpoint  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._store.save_checkpoint

    async def save_checkpoint(self, consumer: str, partition: str, position: int) -> None:
        await self._save(consumer, partition, position)
        if not consumer.startswith(self._prefix):
            return
        now = time.perf_counter()
        self.positions[partition] = max(self.positions.get(partition, 0), position)
        self._check(now)

    def expect(self, last: dict[str, int]) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self._target = (last, future)
        self._check(time.perf_counter())
        return future

    def _check(self, now: float) -> None:
        if self._target is None:
            return
        last, future = self._target
        if not future.done() and all(self.positions.get(p, 0) >= s for p, s in last.items()):
            future.set_result(now)


class LatencyFile:
    """What `on_event` writes: one line per event, `run number latency`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def of_run(self, run: str) -> list[float]:
        found = []
        for line in self.path.read_text().splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] == run:
                found.append(float(fields[2]))
        return found


class NimbusSide:
    def __init__(self, controller: Controller, checkpoints: CheckpointWatch, latency: Path):
        self.controller = controller
        self.services = controller.services
        self.checkpoints = checkpoints
        self.latency = LatencyFile(latency)

    async def table_direct(self, puts: range, width: int) -> tuple[float, float]:
        tables = self.services.tables

        async def put(number: int) -> None:
            await tables.put(TABLE, item(number))

        async def get(number: int) -> None:
            if await tables.get(TABLE, {"id": f"item-{number}"}) is None:
                raise RuntimeError(f"item-{number} is missing")

        put_s = await timed(in_flight(puts, width, put))
        get_s = await timed(in_flight(puts, width, get))
        return per_second(len(puts), put_s), per_second(len(puts), get_s)

    async def table_sdk(self, puts: range) -> tuple[float, float]:
        payload = msgspec.json.encode({"first": puts.start, "count": len(puts)})
        invocation = await invoke_ok(self.controller, "table_ops", payload)
        phases = msgspec.json.decode(invocation.result.value)
        return per_second(len(puts), phases["put_s"]), per_second(len(puts), phases["get_s"])

    async def appends(self, numbers: range, per_call: int) -> float:
        streams = self.services.streams
        start = time.perf_counter()
        if per_call == 1:
            for number in numbers:
                await streams.put(APPEND_STREAM, *record(number))
        else:
            for at in range(0, len(numbers), per_call):
                batch = [(*record(n), None) for n in numbers[at : at + per_call]]
                await streams.put_batch(APPEND_STREAM, batch)
        return per_second(len(numbers), time.perf_counter() - start)

    async def consume(self, numbers: range) -> float:
        """Append 100 records per call; done when every partition is checkpointed."""
        streams = self.services.streams
        last: dict[str, int] = {}
        start = time.perf_counter()
        for at in range(0, len(numbers), STREAM_BATCH):
            batch = [(*record(n), None) for n in numbers[at : at + STREAM_BATCH]]
            for result in await streams.put_batch(STREAM, batch):
                last[str(result.partition)] = result.sequence
        end = await asyncio.wait_for(self.checkpoints.expect(last), RUN_LIMIT)
        return per_second(len(numbers), end - start)

    async def publish_latency(self, run: str, events: int, interval: float) -> list[float]:
        topics = self.services.topics
        for number in range(events):
            await topics.publish(TOPIC, {"t": time.time(), "run": run, "i": number})
            await asyncio.sleep(interval)

        def all_noted() -> list[float] | None:
            found = self.latency.of_run(run)
            return found if len(found) >= events else None

        return await asyncio.to_thread(wait_until, all_noted, RUN_LIMIT, f"{events} events")


# publish latency baselines


@contextlib.contextmanager
def pubsub_peer(url: str, channel: str) -> Iterator[subprocess.Popen[str]]:
    command = [PYTHON, str(BENCH_DIR / "pubsub_peer.py"), url, channel]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the pub/sub peer did not start")
        yield process
    finally:
        stop_process(process, grace=5.0, sig=15)


class RedisPubSub:
    def __init__(self, client: Any, channel: str, peer: subprocess.Popen[str]) -> None:
        self.client = client
        self.channel = channel
        self.peer = peer

    def latencies(self, events: int, interval: float) -> list[float]:
        for number in range(events):
            self.client.publish(self.channel, msgspec.json.encode({"t": time.time(), "i": number}))
            time.sleep(interval)
        self.client.publish(self.channel, b'{"end": true}')
        assert self.peer.stdout is not None
        found: list[float] = json.loads(self.peer.stdout.readline())
        if len(found) != events:
            raise RuntimeError(f"the pub/sub peer noted {len(found)} of {events} messages")
        return found


async def asyncio_hop(events: int, interval: float) -> list[float]:
    """The floor of any in-process hand-off: an asyncio.Queue between two tasks."""
    hops: asyncio.Queue[float] = asyncio.Queue()
    found: list[float] = []

    async def consumer() -> None:
        for _ in range(events):
            sent = await hops.get()
            found.append(time.time() - sent)

    task = asyncio.get_running_loop().create_task(consumer())
    for _ in range(events):
        hops.put_nowait(time.time())
        await asyncio.sleep(interval)
    await task
    return found


# the benchmark


def micros(samples: list[float]) -> Summary:
    return latency_summary([s * 1e6 for s in samples])


async def one_run(
    run: int,
    nimbus: NimbusSide,
    raw: RawSqlite,
    pubsub: RedisPubSub | None,
    numbers: Numbers,
    args: argparse.Namespace,
) -> dict[str, Summary]:
    n = args.table_ops
    puts_1, puts_n, raw_puts = numbers.take(n), numbers.take(n), numbers.take(n)
    sdk_puts = numbers.take(args.sdk_ops)
    nimbus_put_1, nimbus_get_1 = await nimbus.table_direct(puts_1, 1)
    nimbus_put_n, nimbus_get_n = await nimbus.table_direct(puts_n, IN_FLIGHT)
    sdk_put, sdk_get = await nimbus.table_sdk(sdk_puts)
    nimbus_table = {
        "put_1": nimbus_put_1, "get_1": nimbus_get_1, "put_n": nimbus_put_n,
        "get_n": nimbus_get_n, "sdk_put": sdk_put, "sdk_get": sdk_get,
    }  # fmt: skip
    baseline_table = {"put": raw.puts(raw_puts), "get": raw.gets(raw_puts)}
    single, batched = numbers.take(args.appends_single), numbers.take(args.appends_batched)
    nimbus_stream = {
        "append_1": await nimbus.appends(single, 1),
        "append_100": await nimbus.appends(batched, STREAM_BATCH),
        "consume": await nimbus.consume(numbers.take(args.consume)),
    }
    baseline_stream = {
        "append_1": raw.appends(numbers.take(args.appends_single), 1),
        "append_100": raw.appends(numbers.take(args.appends_batched), STREAM_BATCH),
        "consume": raw.consume(numbers.take(args.consume)),
    }
    label = f"run-{run}"
    nimbus_latency = micros(await nimbus.publish_latency(label, args.events, args.interval))
    hop = micros(await asyncio_hop(args.events, args.interval))
    if pubsub is not None:
        baseline_latency = micros(
            await asyncio.to_thread(pubsub.latencies, args.events, args.interval)
        )
    else:
        baseline_latency = hop
    return {
        "nimbus": {**nimbus_table, **nimbus_stream, **prefixed("latency", nimbus_latency)},
        "baseline": {
            **baseline_table, **baseline_stream, **prefixed("latency", baseline_latency)
        },
        "asyncio_hop": hop,
    }  # fmt: skip


def prefixed(prefix: str, summary: Summary) -> Summary:
    return {f"{prefix}_{key}": value for key, value in summary.items()}


async def measure_runs(
    nimbus: NimbusSide, raw: RawSqlite, pubsub: RedisPubSub | None, args: argparse.Namespace
) -> Runs:
    numbers = Numbers()
    warmup = argparse.Namespace(**{**vars(args), **warmup_sizes(args)})
    await one_run(0, nimbus, raw, pubsub, numbers, warmup)
    runs: Runs = {"nimbus": [], "baseline": [], "asyncio_hop": []}
    for run in range(1, args.runs + 1):
        results = await one_run(run, nimbus, raw, pubsub, numbers, args)
        for side, summary in results.items():
            runs[side].append(summary)
        found = results["nimbus"]
        print(
            f"run {run}/{args.runs}: table put {found['put_1']:,.0f}/s "
            f"(x{IN_FLIGHT}: {found['put_n']:,.0f}/s), get {found['get_1']:,.0f}/s, "
            f"SDK put {found['sdk_put']:,.0f}/s; stream append {found['append_1']:,.0f} and "
            f"{found['append_100']:,.0f} rec/s, consume {found['consume']:,.0f} rec/s; "
            f"publish -> handler p50 {found['latency_p50']:,.0f} µs",
            flush=True,
        )
    return runs


def warmup_sizes(args: argparse.Namespace) -> dict[str, int]:
    return {
        "table_ops": 200, "sdk_ops": 100, "appends_single": 100, "appends_batched": 1000,
        "consume": 1000, "events": 20,
    }  # fmt: skip


def metrics(nimbus: Summary, baseline: Summary) -> list[Metric]:
    ops, rec, us = "ops/s", "records/s", "µs"
    return [
        Metric("table put, direct, 1 in flight", ops, nimbus["put_1"], baseline["put"]),
        Metric(f"table put, direct, {IN_FLIGHT} in flight", ops, nimbus["put_n"], baseline["put"]),
        Metric("table put, SDK in a function", ops, nimbus["sdk_put"], baseline["put"]),
        Metric("table get, direct, 1 in flight", ops, nimbus["get_1"], baseline["get"]),
        Metric(f"table get, direct, {IN_FLIGHT} in flight", ops, nimbus["get_n"], baseline["get"]),
        Metric("table get, SDK in a function", ops, nimbus["sdk_get"], baseline["get"]),
        Metric("stream append, 1 per call", rec, nimbus["append_1"], baseline["append_1"]),
        Metric(
            f"stream append, {STREAM_BATCH} per call",
            rec,
            nimbus["append_100"],
            baseline["append_100"],
        ),
        Metric("stream consume, trigger -> function", rec, nimbus["consume"], baseline["consume"]),
        Metric("publish -> handler p50", us, nimbus["latency_p50"], baseline["latency_p50"]),
        Metric("publish -> handler p99", us, nimbus["latency_p99"], baseline["latency_p99"]),
    ]


@contextlib.asynccontextmanager
async def redis_pubsub(args: argparse.Namespace) -> AsyncIterator[RedisPubSub | None]:
    try:
        with redis_database(args.redis_url, args.redis_db) as database:
            channel = f"nimbus-bench-{os.getpid()}"
            with pubsub_peer(database.url, channel) as peer:
                pubsub = RedisPubSub(database.client, channel, peer)
                try:
                    yield pubsub
                finally:
                    database.client.publish(channel, b'{"stop": true}')
            return
    except RedisUnavailable as reason:
        print(f"no Redis ({reason}): the latency baseline is the asyncio.Queue hop", flush=True)
    yield None


async def measure(args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as folder:
        latency_file = Path(folder) / "latency.txt"
        os.environ["BENCH_LATENCY_FILE"] = str(latency_file)  # read when the app is loaded
        raw = RawSqlite(Path(folder) / "raw.db")
        async with running_controller(APP) as controller, redis_pubsub(args) as pubsub:
            with CheckpointWatch(controller.store, f"{CONSUMER}/") as checkpoints:
                nimbus = NimbusSide(controller, checkpoints, latency_file)
                runs = await measure_runs(nimbus, raw, pubsub, args)
        raw.close()
    nimbus_median = median_of_runs(runs["nimbus"])
    baseline_median = median_of_runs(runs["baseline"])
    hop = median_of_runs(runs["asyncio_hop"])
    latency_baseline = "Redis pub/sub to a subscriber process" if pubsub else "asyncio.Queue hop"
    baseline = f"raw sqlite3 (WAL, synchronous=NORMAL); publish latency: {latency_baseline}"
    return Report(
        name=NAME,
        title=TITLE,
        baseline=baseline,
        runs=args.runs,
        parameters={
            "table_ops": args.table_ops,
            "sdk_ops": args.sdk_ops,
            "in_flight": IN_FLIGHT,
            "appends_single": args.appends_single,
            "appends_batched": args.appends_batched,
            "consume": args.consume,
            "stream_batch": STREAM_BATCH,
            "events": args.events,
            "publish_interval_s": args.interval,
        },
        metrics=metrics(nimbus_median, baseline_median),
        details={
            "asyncio.Queue hop in one process, p50 / p99": (
                f"{hop['p50']:.0f} / {hop['p99']:.0f} µs"
            ),
        },
        per_run=runs,
    )


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--table-ops", type=int, default=2000, help="puts (and gets) per phase")
    parser.add_argument("--sdk-ops", type=int, default=1000, help="puts (and gets) via the SDK")
    parser.add_argument("--appends-single", type=int, default=2000, help="one-record appends")
    parser.add_argument("--appends-batched", type=int, default=20_000, help="records, 100/call")
    parser.add_argument("--consume", type=int, default=20_000, help="records consumed per run")
    parser.add_argument("--events", type=int, default=200, help="events published per run")
    parser.add_argument("--interval", type=float, default=0.005, help="s between publishes")
    parser.add_argument("--redis-url", default=DEFAULT_URL, help="Redis for the pub/sub baseline")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_DB, help="an unused database")
    finish(uvloop.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
