"""Ordered consumers (stream partitions, table change feeds): batches in order, checkpoints.

As Lambda's Kinesis / DynamoDB Streams event source mappings: a partition's next batch waits
until the current one is done, and a batch holds at most `batch_size` records and only as many
as keep its event under Lambda's payload limit (a record over it by itself is given up). A failing
batch is retried with the policy's backoff; then, with `bisect_on_error`, split in halves to
isolate the bad record; what still fails goes to the on-failure destination / dead-letter
target (or the platform's dead letters) and the partition moves on. A handler may report the
first failed record (`batchItemFailures`): what came before it is checkpointed and the batch is
retried from it. A bad record never blocks its partition forever and is never skipped
silently. Checkpoints are durable: after a crash, a partition resumes after its last checkpoint
(at least once).
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from nimbus.compute.failures import Condition, FailedEvent, too_old
from nimbus.compute.protocol import ErrorInfo
from nimbus.events.types import InvalidBatchResponse
from nimbus.spec.resources import StreamTrigger, TableTrigger
from nimbus.triggers.base import MAX_BATCH_BYTES, TriggerRunner, cut, item_failed

R = TypeVar("R")
LONG_POLL = 5.0  # seconds a consumer waits for new records before it looks around


@dataclass(slots=True)
class _Pending(Generic[R]):
    records: list[R]
    attempts: int = 0


class OrderedConsumer(TriggerRunner, Generic[R]):
    """Subclasses say how to read one partition and how its records look to the handler."""

    trigger: StreamTrigger | TableTrigger

    @property
    def batch_size(self) -> int:
        return self.trigger.batch_size

    @property
    def batching_window(self) -> float:
        return self.trigger.batching_window

    @property
    def bisect(self) -> bool:
        return self.trigger.bisect_on_error

    @abstractmethod
    async def partitions(self) -> list[str]: ...

    @abstractmethod
    async def start_position(self, partition: str) -> int:
        """Where a partition without checkpoint starts (the trigger's starting position)."""

    @abstractmethod
    async def read(self, partition: str, after: int, limit: int) -> list[R]: ...

    @abstractmethod
    async def wait(self, partition: str, after: int, timeout: float) -> None: ...

    @abstractmethod
    def position(self, record: R) -> int: ...

    @abstractmethod
    def arrival(self, record: R) -> float: ...

    @abstractmethod
    def traceparent(self, record: R) -> str | None: ...

    @abstractmethod
    def item_id(self, record: R) -> str:
        """How `batchItemFailures` names the record (Lambda: its sequence number)."""

    @abstractmethod
    def event(self, partition: str, records: list[R]) -> bytes: ...

    @property
    def source(self) -> str:
        return f"{self.trigger.type}:{self.trigger.source}"

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for partition in await self.partitions():
                group.create_task(self._consume(partition))

    async def _consume(self, partition: str) -> None:
        saved = await self.platform.store.checkpoints(self.consumer)
        after = saved[partition] if partition in saved else await self._first_start(partition)
        while True:
            records = await self._batch(partition, after)
            if not records:
                continue
            await self._deliver_cut(partition, records)
            after = self.position(records[-1])

    async def _first_start(self, partition: str) -> int:
        """Decided once and saved, so that 'latest' means the moment the trigger was deployed,
        not whenever the platform happens to restart."""
        after = await self.start_position(partition)
        await self.platform.store.save_checkpoint(self.consumer, partition, after)
        return after

    async def _batch(self, partition: str, after: int) -> list[R]:
        records = await self.read(partition, after, self.batch_size)
        if not records:
            await self.wait(partition, after, LONG_POLL)
            return []
        window_ends = time.monotonic() + self.batching_window
        while len(records) < self.batch_size and (left := window_ends - time.monotonic()) > 0:
            await self.wait(partition, self.position(records[-1]), left)
            more = await self.read(partition, self.position(records[-1]), self.batch_size)
            records.extend(more[: self.batch_size - len(records)])
        return records

    async def _deliver_cut(self, partition: str, records: list[R]) -> None:
        """Deliver `records` in order as batches whose event weighs at most MAX_BATCH_BYTES
        (a record weighs its event alone: a batch's event weighs less than its records').

        A record too big by itself is given up without running, as PayloadTooLarge: Lambda
        could not invoke a function with it and would retry it until it expired, blocking its
        shard; here it goes to the on-failure destination / dead letters at once (from where
        `nimbus dlq redrive` can still run it) and the partition moves on. Records are weighed
        one by one only when the whole batch is over the limit, which is rare."""
        if len(self.event(partition, records)) <= MAX_BATCH_BYTES:
            await self._deliver(partition, records)
            return
        sizes = {self.position(record): len(self.event(partition, [record])) for record in records}

        def weight(record: R) -> int:
            return sizes[self.position(record)]

        for batch in cut(records, self.batch_size, MAX_BATCH_BYTES, weight):
            if (size := weight(batch[0])) > MAX_BATCH_BYTES:  # alone in its batch (see cut)
                await self._give_up(partition, batch, _too_big(size), 0, "RetriesExhausted")
            else:
                await self._deliver(partition, batch)

    async def _deliver(self, partition: str, records: list[R]) -> None:
        """Process `records` until each has succeeded or been routed to failure."""
        pending: deque[_Pending[R]] = deque([_Pending(records)])
        while pending:
            item = pending.popleft()
            item.records = await self._drop_expired(partition, item.records)
            if not item.records:
                continue
            error, done, request_id = await self._invoke(partition, item.records)
            if done:
                await self._checkpoint(partition, item.records[done - 1])
                item.records = item.records[done:]
            if error is None:
                continue
            item.attempts += 1
            if item.attempts <= self.policy.retries:
                await asyncio.sleep(self.retry_backoff * 2 ** (item.attempts - 1))
                pending.appendleft(item)
            elif self.bisect and len(item.records) > 1:
                half = len(item.records) // 2
                pending.extendleft([_Pending(item.records[half:]), _Pending(item.records[:half])])
            else:
                await self._give_up(
                    partition, item.records, error, item.attempts, "RetriesExhausted", request_id
                )

    async def _invoke(self, partition: str, records: list[R]) -> tuple[ErrorInfo | None, int, str]:
        """Run the handler; returns the error (None: all succeeded), how many records at the
        front of the batch are done, and the invocation's request id."""
        contexts = [*filter(None, map(self.traceparent, records))]
        invocation = await self.platform.invoker.invoke(
            self.name, trigger=self.source, payload=self.event(partition, records), wait=True,
            traceparent=contexts[0] if contexts else None, links=contexts,
        )  # fmt: skip
        request_id = invocation.record.id
        if invocation.error is not None:
            return invocation.error, 0, request_id
        ids = [self.item_id(record) for record in records]
        try:
            failed = self.failures(invocation.result.value, ids)
        except InvalidBatchResponse as malformed:  # the whole batch failed
            return ErrorInfo("Handler", "InvalidBatchResponse", malformed.message), 0, request_id
        if not failed:
            if self.policy.on_success is not None:
                await self.platform.failures.succeeded(
                    self.policy, function=self.name, request_id=request_id,
                    payload=self.event(partition, records), result=invocation.result.value,
                    attempts=1, traceparent=invocation.traceparent,
                )  # fmt: skip
            return None, len(records), request_id
        first = min((ids.index(f) for f in failed if f in ids), default=0)
        return item_failed(f"record {ids[first]}", failed.get(ids[first])), first, request_id

    async def _drop_expired(self, partition: str, records: list[R]) -> list[R]:
        now = time.time()
        limit = self.max_age
        expired = [r for r in records if now - self.arrival(r) > limit]
        if expired:
            error = too_old(limit, "the records are")
            await self._give_up(partition, expired, error, 0, "EventAgeExceeded")
        return records[len(expired) :] if expired else records

    async def _give_up(
        self, partition: str, records: list[R], error: ErrorInfo, attempts: int,
        condition: Condition, request_id: str = "",
    ) -> None:  # fmt: skip
        """Route `records` to failure and move on; `request_id`: the invocation that failed
        them last (none: given up before running)."""
        event = FailedEvent(
            function=self.name, source=self.source, payload=self.event(partition, records),
            error=error, attempts=attempts, condition=condition,
            first_seen=self.arrival(records[0]), request_id=request_id,
            traceparent=next(filter(None, map(self.traceparent, records)), None),
        )  # fmt: skip
        await self.platform.failures.failed(self.policy, event)
        await self._checkpoint(partition, records[-1])

    async def _checkpoint(self, partition: str, record: R) -> None:
        await self.platform.store.save_checkpoint(self.consumer, partition, self.position(record))


def _too_big(size: int) -> ErrorInfo:
    """Why a record was given up unread: its event alone is `size` bytes, over the limit."""
    message = (
        f"the record's event is {size} bytes, over the {MAX_BATCH_BYTES} bytes one invocation "
        "carries (Lambda's payload limit): given up without running"
    )
    return ErrorInfo("Handler", "PayloadTooLarge", message)
