"""Queue trigger: poll the queue, invoke the function with batches, acknowledge what succeeded.

Like Lambda's SQS event source mapping: long polling, batch size and batching window, at most
`concurrency` batches at once. One receiver claims messages for every lane ahead of time (a FIFO
queue's one batch at a time, so that a group is never split over two lanes), lanes invoke, and
one acknowledger deletes finished messages in groups: a message is deleted only after its
invocation succeeded (or the
handler did not list it in its batch item failures); a batch that wholly succeeded goes to the
policy's on-success destination. A failed message becomes visible again after the policy's
backoff, and after `retries` retries (or `max_event_age`) it goes to the policy's dead-letter
target, or else the platform's dead letters. A queue that declares its own
`max_receives` keeps SQS's redrive policy instead: its messages are dead-lettered by the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec

from nimbus.compute.failures import Condition, FailedEvent, QueueOrigin, too_old
from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import Conflict, NimbusError, NotFound
from nimbus.events import aws
from nimbus.events.types import InvalidBatchResponse, QueueBatch, QueueMessage
from nimbus.services.queue import MAX_RECEIVE, Message, Queues
from nimbus.spec.model import FunctionSpec
from nimbus.spec.resources import QueueTrigger
from nimbus.triggers.base import MAX_BATCH_BYTES, Platform, TriggerRunner, cut, item_failed

LONG_POLL = 5.0  # seconds one receive waits for messages before the loop looks around
MAX_VISIBILITY = 43200.0  # SQS's limit on a visibility timeout (12 hours)
MAX_CLAIM = 1000  # messages one receive claims at most, for every lane together
PREFETCH = 4  # batches per lane claimed ahead: a receive's cost is shared by that many
MIN_CLAIM = 32  # messages claimed ahead at least: with small batches and few lanes, receives
# would otherwise cost more than the invocations they feed
ACK_DELAY = 0.005  # seconds finished messages gather before one delete acknowledges them all


class QueuePoller(TriggerRunner):
    trigger: QueueTrigger

    def __init__(self, platform: Platform, function: FunctionSpec, trigger: QueueTrigger) -> None:
        super().__init__(platform, function, trigger)
        self._acks = _Acknowledger(platform.services.queues, trigger.queue)
        self._waiting: set[str] = set()  # receipts claimed, not yet handed to a lane

    @property
    def source(self) -> str:
        return f"queue:{self.trigger.queue}"

    async def run(self) -> None:
        lanes = self.trigger.concurrency or self.function.max_instances
        claim = self._claim_size(lanes)
        ahead = max(lanes * PREFETCH, -(-claim // self.trigger.batch_size))
        batches: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=ahead)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._receive(batches, claim, -(-ahead // lanes)))
                group.create_task(self._acks.run())
                for _ in range(lanes):
                    group.create_task(self._work(batches))
        finally:  # stopped (a redeploy, a shutdown) or failed
            with contextlib.suppress(NimbusError):  # not deleted: delivered again, at least once
                await self._acks.flush()
            await self._hand_back()

    async def _hand_back(self) -> None:
        """Make the messages claimed ahead that no handler has seen visible again now, rather
        than after their claim's long visibility timeout."""
        queues, name = self.platform.services.queues, self.trigger.queue
        waiting, self._waiting = self._waiting, set()
        for receipt in waiting:
            with contextlib.suppress(NimbusError):  # gone, or claimed again: nothing to hand back
                await queues.change_visibility(name, receipt, 0)

    @property
    def _fifo(self) -> bool:
        spec = self.platform.spec()
        return spec is not None and spec.queues[self.trigger.queue].fifo

    def _claim_size(self, lanes: int) -> int:
        """Messages one receive claims: a FIFO queue's one batch, else PREFETCH batches per
        lane, and at least MIN_CLAIM messages."""
        size = self.trigger.batch_size
        if self._fifo:
            return size
        return min(MAX_CLAIM, max(size * lanes * PREFETCH, MIN_CLAIM))

    async def _receive(
        self, batches: asyncio.Queue[list[Message]], claim: int, per_lane: int
    ) -> None:
        """Claim messages and queue them as batches; `per_lane`: batches per lane that the
        queue holds at most (a claim waits behind them)."""
        size = self.trigger.batch_size
        fifo = self._fifo
        while True:
            messages = await self._collect(claim, self._visibility(per_lane))
            if (meter := self.platform.invoker.usage) is not None:
                meter.received(self.trigger.queue, len(messages))
            if fifo:  # one batch: split over two lanes, a group could run out of order
                ready = [messages] if messages else []
            else:
                ready = cut(messages, size, MAX_BATCH_BYTES, body_bytes)
            for batch in ready:
                await batches.put(batch)

    async def _work(self, batches: asyncio.Queue[list[Message]]) -> None:
        while True:
            batch = await batches.get()
            for message in batch:
                self._waiting.discard(message.receipt)
            await self._process(batch)

    async def _collect(self, size: int, visibility: float) -> list[Message]:
        """Up to `size` messages, waiting up to batching_window to fill them."""
        queues, name = self.platform.services.queues, self.trigger.queue
        batch = await queues.receive(
            name, max_messages=size, visibility_timeout=visibility, wait=LONG_POLL
        )
        self._waiting.update(message.receipt for message in batch)
        window_ends = time.monotonic() + self.trigger.batching_window
        while batch and len(batch) < size and (left := window_ends - time.monotonic()) > 0:
            more = await queues.receive(
                name, max_messages=size - len(batch), visibility_timeout=visibility, wait=left
            )
            self._waiting.update(message.receipt for message in more)
            batch.extend(more)
        return batch

    def _visibility(self, per_lane: int) -> float:
        """Long enough that a message is not delivered again while its batch fills (the
        batching window), waits for a lane (behind the batches claimed ahead of it, at most
        2 * `per_lane` invocations of each lane) and runs: like AWS's advice of at least six
        times the function's timeout."""
        spec = self.platform.spec()
        declared = spec.queues[self.trigger.queue].visibility_timeout if spec else 30.0
        running = (2 * per_lane + 1) * self.function.timeout + 5.0
        needed = self.trigger.batching_window + running
        return min(MAX_VISIBILITY, max(declared, needed))

    async def _process(self, batch: list[Message]) -> None:
        oldest = time.time() - self.max_age
        expired = [m for m in batch if m.sent_at < oldest]
        fresh = [m for m in batch if m.sent_at >= oldest]
        for message in expired:
            await self._give_up(
                message, too_old(self.max_age, "the message is"), "EventAgeExceeded"
            )
        if fresh:
            await self._invoke(fresh)

    async def _invoke(self, batch: list[Message]) -> None:
        """Run the handler on `batch` and settle each message. A batch whose event turns out
        over the payload limit (its bodies are under it, but escaping and the envelope add to
        them) runs as two halves, one after the other in this lane, so a FIFO group keeps its
        order."""
        payload = self._event(batch)
        if len(payload) > MAX_BATCH_BYTES and len(batch) > 1:
            await self._invoke(batch[: len(batch) // 2])
            await self._invoke(batch[len(batch) // 2 :])
            return
        contexts = [m.traceparent for m in batch if m.traceparent]
        invocation = await self.platform.invoker.invoke(
            self.name, trigger=self.source, payload=payload, wait=True,
            traceparent=contexts[0] if contexts else None, links=contexts,
        )  # fmt: skip
        error = invocation.error
        failed: dict[str, str | None] = dict.fromkeys(m.id for m in batch)
        if error is None:
            try:
                failed = self.failures(invocation.result.value, [m.id for m in batch])
            except InvalidBatchResponse as malformed:  # the whole batch failed
                error = ErrorInfo("Handler", "InvalidBatchResponse", malformed.message)
        self._acks.add([m.receipt for m in batch if m.id not in failed])
        for message in (m for m in batch if m.id in failed):
            reason = error or item_failed("this message", failed[message.id])
            await self._retry(message, reason, invocation.record.id)
        if not failed and self.policy.on_success is not None:
            await self.platform.failures.succeeded(
                self.policy, function=self.name, request_id=invocation.record.id,
                payload=payload, result=invocation.result.value,
                attempts=max(m.receive_count for m in batch), traceparent=invocation.traceparent,
            )  # fmt: skip

    async def _retry(self, message: Message, error: ErrorInfo, request_id: str) -> None:
        """After invocation `request_id` failed `message`: release it for a retry, or give it up."""
        queues, spec = self.platform.services.queues, self.platform.spec()
        own_redrive = spec is not None and spec.queues[self.trigger.queue].max_receives is not None
        if not own_redrive and message.receive_count > self.policy.retries:
            if await self._still_held(message):
                await self._give_up(message, error, "RetriesExhausted", request_id)
            return
        delay = min(MAX_VISIBILITY, self.retry_backoff * 2 ** (message.receive_count - 1))
        # the handler may have deleted it itself (or it was received again): nothing to retry
        with contextlib.suppress(NotFound, Conflict):
            await queues.release(
                self.trigger.queue, message.receipt, error=f"{error.type}: {error.message}",
                delay=delay,
            )  # fmt: skip

    async def _still_held(self, message: Message) -> bool:
        """Whether the message is still this trigger's to give up: the handler may have
        deleted it itself (processed it) before its batch failed. Holding it a while longer
        also keeps it from turning visible while it is dead-lettered."""
        spec = self.platform.spec()
        hold = spec.queues[self.trigger.queue].visibility_timeout if spec else 30.0
        try:
            await self.platform.services.queues.change_visibility(
                self.trigger.queue, message.receipt, hold
            )
        except (NotFound, Conflict):
            return False
        return True

    async def _give_up(
        self, message: Message, error: ErrorInfo, condition: Condition, request_id: str = ""
    ) -> None:
        """Dead-letter one message, then delete it from the queue (in that order: a crash in
        between delivers it once more rather than losing it). `request_id`: the invocation
        that failed it last (none: given up before running)."""
        event = FailedEvent(
            function=self.name, source=self.source, payload=self._event([message]),
            error=error, attempts=message.receive_count, condition=condition,
            first_seen=message.sent_at, request_id=request_id, traceparent=message.traceparent,
            origin=QueueOrigin(self.trigger.queue, message),
        )  # fmt: skip
        await self.platform.failures.failed(self.policy, event)
        await self.platform.services.queues.delete_batch(self.trigger.queue, [message.receipt])

    def _event(self, messages: list[Message]) -> bytes:
        typed = [_typed(self.trigger.queue, m) for m in messages]
        if self.style == "aws":
            return msgspec.json.encode(aws.sqs_event(typed, self.trigger.queue))
        return msgspec.json.encode(QueueBatch(messages=typed))


def body_bytes(message: Message) -> int:
    """What a message weighs in a batch: its body's UTF-8 bytes (at most 1 MiB, so that a
    message is never too big for a batch by itself)."""
    body = message.body
    return len(body) if body.isascii() else len(body.encode())


class _Acknowledger:
    """Deletes finished messages in groups: what finishes while a delete is under way goes in
    the next one. A crash before the delete delivers a message again (at least once)."""

    def __init__(self, queues: Queues, queue: str) -> None:
        self._queues = queues
        self._queue = queue
        self._receipts: list[str] = []
        self._ready = asyncio.Event()

    def add(self, receipts: list[str]) -> None:
        if receipts:
            self._receipts += receipts
            self._ready.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            await asyncio.sleep(ACK_DELAY)  # what finishes meanwhile shares the delete
            await self.flush()

    async def flush(self) -> None:
        """Delete what has finished so far."""
        self._ready.clear()
        receipts, self._receipts = self._receipts, []
        for start in range(0, len(receipts), MAX_RECEIVE):
            await self._queues.delete_batch(self._queue, receipts[start : start + MAX_RECEIVE])


def _typed(queue: str, message: Message) -> QueueMessage:
    return QueueMessage(
        id=message.id, source=f"nimbus:queue:{queue}", type="nimbus.queue.message",
        time=message.sent_at, traceparent=message.traceparent, body=message.body,
        attributes=message.attributes, receive_count=message.receive_count,
        sent_at=message.sent_at, first_received_at=message.first_received_at,
        group=message.group, dedup_id=message.dedup_id, sequence=message.sequence,
        receipt=message.receipt,
    )  # fmt: skip
