"""The usage meter: counts on the event loop, in memory, and moves the counts to the ledger
every FLUSH_INTERVAL; samples what each resource stores every `sample_interval`.

Counting an invocation is a dict look-up and three additions (the hot path: metering must stay
cheap, and `nimbus up --no-metering` leaves it out entirely). Per invocation, as Lambda bills
it: one request, and GB-seconds = billed duration (ms, rounded up) / 1000 * memory (MB) / 1024
(https://aws.amazon.com/lambda/pricing/). Throttled requests are not invocations and cost
nothing. Stored bytes are sampled, not tracked per write: GB-months accrue as the latest
sample times the time since the one before (S3 and DynamoDB bill storage as byte-hours).
A `kill -9` loses at most the last FLUSH_INTERVAL of counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from nimbus.ops.logs import LogSink
from nimbus.ops.store import InvocationRecord
from nimbus.ops.usage.catalog import DELIVERIES, GB_MONTHS, PricedKind
from nimbus.ops.usage.ledger import DAY, Key, Ledger, Row, hour_of
from nimbus.ops.usage.measure import GIB, measure
from nimbus.spec.model import AppSpec

FLUSH_INTERVAL = 2.0  # seconds counts stay in memory before they go to the ledger
MONTH_HOURS = 730  # AWS's month for storage prices


class StoredSizes(Protocol):
    """What a backend stores for each resource, in bytes, keyed by (service kind, name)."""

    async def measure(self) -> dict[tuple[str, str], int]: ...


class UsageMeter:
    def __init__(
        self,
        ledger: Ledger,
        sizes: StoredSizes,
        logs: LogSink,
        *,
        sample_interval: float,
    ) -> None:
        self.ledger = ledger
        self._sizes = sizes
        self._logs = logs
        self._sample_interval = sample_interval
        self._invocations: dict[tuple[int, str], list[float]] = {}
        self._counts: dict[tuple[int, str, str, str], float] = defaultdict(float)
        self._kinds: dict[str, PricedKind] = {}
        self._sources: dict[str, Key] = {}
        self._streams: list[str] = []
        self.stored: dict[Key, int] = {}
        """The latest sample of what each resource stores, in bytes."""
        self._sampled_at: float | None = None
        self._rolled_up_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def deployed(self, spec: AppSpec) -> None:
        """Learn each resource's priced kind (a FIFO queue is priced apart) and which trigger
        labels are deliveries of which resource."""
        kinds: dict[str, PricedKind] = {
            name: "fifo_queue" if queue.fifo else "queue" for name, queue in spec.queues.items()
        }
        kinds |= {name: "topic" for name in spec.topics}
        kinds |= {name: "stream" for name in spec.streams}
        kinds |= {name: "table" for name in spec.tables}
        kinds |= {name: "bucket" for name in spec.buckets}
        kinds |= {name: "websocket" for name in spec.websockets}
        self._kinds = kinds
        self._sources = {f"{_service(kind)}:{name}": (kind, name) for name, kind in kinds.items()}
        self._streams = list(spec.streams)

    # counting, on the event loop
    def invocation(self, record: InvocationRecord) -> None:
        if record.outcome == "throttled":
            return
        hour = hour_of(record.started_at)
        counts = self._invocations.get((hour, record.function))
        if counts is None:
            counts = self._invocations[(hour, record.function)] = [0, 0, 0.0]
        counts[0] += 1
        counts[1] += record.billed_ms
        counts[2] += record.billed_ms * record.memory_mb / 1_024_000
        source = self._sources.get(record.trigger)
        if source is not None:
            self._counts[(hour, *source, DELIVERIES)] += 1

    def service_call(self, resource: str, op: Any, result: Any) -> None:
        """A function's or the platform API's operation on `resource` succeeded."""
        kind = self._kinds.get(resource)
        if kind is None:
            return
        hour = hour_of(time.time())
        for metric, quantity in measure(op, result):
            self._counts[(hour, kind, resource, metric)] += quantity

    def received(self, queue: str, count: int) -> None:
        """A queue trigger's receive handed out `count` messages (an empty long poll is a
        request too: Lambda's pollers are billed the same way)."""
        kind = self._kinds.get(queue)
        if kind is not None:
            hour = hour_of(time.time())
            self._counts[(hour, kind, queue, "requests")] += 1
            self._counts[(hour, kind, queue, "messages_received")] += count

    # moving counts to the ledger
    def start(self, after_flush: Callable[[], Awaitable[None]]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(after_flush))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Add what was counted so far to the ledger (committed when it returns)."""
        rows: list[Row] = [
            (3600, hour, "function", function, metric, quantity)
            for (hour, function), counts in self._invocations.items()
            for metric, quantity in zip(
                ("requests", "billed_ms", "gb_seconds"), counts, strict=True
            )
        ]
        rows += [(3600, *key, quantity) for key, quantity in self._counts.items()]
        self._invocations, self._counts = {}, defaultdict(float)
        await self.ledger.add(rows)

    async def _run(self, after_flush: Callable[[], Awaitable[None]]) -> None:
        next_sample = time.monotonic()
        while True:
            with self._guard("metering"):
                if time.monotonic() >= next_sample:
                    next_sample = time.monotonic() + self._sample_interval
                    await self.sample()
                await self.flush()
                now = time.time()
                if now - self._rolled_up_at >= DAY / 24:
                    self._rolled_up_at = now
                    await self.ledger.roll_up(now)
            with self._guard("the budget check"):
                await after_flush()
            await asyncio.sleep(FLUSH_INTERVAL)

    async def sample(self) -> None:
        """Measure what every resource stores; accrue GB-months (and stream hours) since the
        last sample."""
        sizes = await self._sizes.measure()
        now = time.monotonic()
        hours = 0.0 if self._sampled_at is None else (now - self._sampled_at) / 3600
        self._sampled_at = now
        hour = hour_of(time.time())
        stored: dict[Key, int] = {}
        for (service, name), size in sizes.items():
            kind = self._kinds.get(name) or _priced(service)
            stored[(kind, name)] = size
            if hours > 0 and size > 0:
                self._counts[(hour, kind, name, GB_MONTHS)] += size / GIB * hours / MONTH_HOURS
        if hours > 0:
            for name in self._streams:
                self._counts[(hour, "stream", name, "stream_hours")] += hours
        self.stored = stored

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """A fault in metering is logged, never raised into the platform."""
        try:
            yield
        except Exception as error:
            self._logs.platform(f"{what} failed: {error!r}")


def _service(kind: PricedKind) -> str:
    """The service kind of a priced kind, as trigger labels name it (`queue:orders`)."""
    return "queue" if kind == "fifo_queue" else kind


def _priced(service: str) -> PricedKind:
    """The priced kind of a resource the spec no longer declares (its data is kept)."""
    kinds: dict[str, PricedKind] = {
        "queue": "queue", "topic": "topic", "stream": "stream", "table": "table",
        "bucket": "bucket",
    }  # fmt: skip
    return kinds.get(service, "queue")
