"""Queue trigger: poll the queue, invoke the function with batches, acknowledge what succeeded.

Like Lambda's SQS event source mapping: long polling, batch size and batching window, at most
`concurrency` batches at once; a message is deleted only after its invocation succeeded (or the
handler did not list it in its batch item failures); a batch that wholly succeeded goes to the
policy's on-success destination. A failed message becomes visible again after the policy's
backoff, and after `retries` retries (or `max_event_age`) it goes to the policy's dead-letter
target, or else the platform's dead letters. A queue that declares its own
`max_receives` keeps SQS's redrive policy instead: its messages are dead-lettered by the queue.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from nimbus.compute.failures import Condition, FailedEvent
from nimbus.compute.protocol import ErrorInfo
from nimbus.events import aws
from nimbus.events.types import InvalidBatchResponse, QueueBatch, QueueMessage
from nimbus.services.queue import Message
from nimbus.spec.resources import QueueTrigger
from nimbus.triggers.base import TriggerRunner

LONG_POLL = 5.0  # seconds one receive waits for messages before the loop looks around
MAX_VISIBILITY = 43200.0  # SQS's limit on a visibility timeout (12 hours)


class QueuePoller(TriggerRunner):
    trigger: QueueTrigger

    @property
    def source(self) -> str:
        return f"queue:{self.trigger.queue}"

    async def run(self) -> None:
        pollers = self.trigger.concurrency or self.function.max_instances
        async with asyncio.TaskGroup() as group:
            for _ in range(pollers):
                group.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                await self._process(batch)

    async def _collect(self) -> list[Message]:
        """One batch: up to batch_size messages, waiting up to batching_window to fill it."""
        queues, name, size = (
            self.platform.services.queues,
            self.trigger.queue,
            self.trigger.batch_size,
        )
        visibility = self._visibility()
        batch = await queues.receive(
            name, max_messages=size, visibility_timeout=visibility, wait=LONG_POLL
        )
        window_ends = time.monotonic() + self.trigger.batching_window
        while batch and len(batch) < size and (left := window_ends - time.monotonic()) > 0:
            more = await queues.receive(
                name, max_messages=size - len(batch), visibility_timeout=visibility, wait=left
            )
            batch.extend(more)
        return batch

    def _visibility(self) -> float:
        """Long enough that a message is not delivered again while its invocation runs."""
        spec = self.platform.spec()
        declared = spec.queues[self.trigger.queue].visibility_timeout if spec else 30.0
        return min(MAX_VISIBILITY, max(declared, self.function.timeout + 5.0))

    async def _process(self, batch: list[Message]) -> None:
        now = time.time()
        too_old = [m for m in batch if now - m.sent_at > self.policy.max_event_age]
        fresh = [m for m in batch if now - m.sent_at <= self.policy.max_event_age]
        for message in too_old:
            await self._give_up(message, _too_old(self.policy.max_event_age), "EventAgeExceeded")
        if not fresh:
            return
        invocation = await self.platform.invoker.invoke(
            self.name, trigger=self.source, payload=self._event(fresh), wait=True,
            traceparent=next((m.traceparent for m in fresh if m.traceparent), None),
        )  # fmt: skip
        error = invocation.error
        failed: set[str] = {m.id for m in fresh}
        if error is None:
            try:
                failed = set(self.failed_ids(invocation.result.value, [m.id for m in fresh]))
            except InvalidBatchResponse as malformed:  # the whole batch failed
                error = ErrorInfo("Handler", "InvalidBatchResponse", malformed.message)
        done = [m.receipt for m in fresh if m.id not in failed]
        if done:
            await self.platform.services.queues.delete_batch(self.trigger.queue, done)
        for message in (m for m in fresh if m.id in failed):
            await self._retry(message, error or _item_failed())
        if not failed and self.policy.on_success is not None:
            await self.platform.failures.succeeded(
                self.policy, function=self.name, request_id=invocation.record.id,
                payload=self._event(fresh), result=invocation.result.value,
                attempts=max(m.receive_count for m in fresh),
            )  # fmt: skip

    async def _retry(self, message: Message, error: ErrorInfo) -> None:
        queues, spec = self.platform.services.queues, self.platform.spec()
        own_redrive = spec is not None and spec.queues[self.trigger.queue].max_receives is not None
        if not own_redrive and message.receive_count > self.policy.retries:
            await self._give_up(message, error, "RetriesExhausted")
            return
        delay = min(MAX_VISIBILITY, self.policy.backoff * 2 ** (message.receive_count - 1))
        await queues.release(
            self.trigger.queue, message.receipt, error=f"{error.type}: {error.message}", delay=delay
        )

    async def _give_up(self, message: Message, error: ErrorInfo, condition: Condition) -> None:
        """Dead-letter one message, then delete it from the queue (in that order: a crash in
        between delivers it once more rather than losing it)."""
        event = FailedEvent(
            function=self.name, source=self.source, payload=self._event([message]),
            error=error, attempts=message.receive_count, condition=condition,
            first_seen=message.sent_at,
        )  # fmt: skip
        await self.platform.failures.failed(self.policy, event)
        await self.platform.services.queues.delete_batch(self.trigger.queue, [message.receipt])

    def _event(self, messages: list[Message]) -> bytes:
        typed = [_typed(self.trigger.queue, m) for m in messages]
        if self.style == "aws":
            return msgspec.json.encode(aws.sqs_event(typed, self.trigger.queue))
        return msgspec.json.encode(QueueBatch(messages=typed))


def _typed(queue: str, message: Message) -> QueueMessage:
    return QueueMessage(
        id=message.id, source=f"nimbus:queue:{queue}", type="nimbus.queue.message",
        time=message.sent_at, traceparent=message.traceparent, body=message.body,
        attributes=message.attributes, receive_count=message.receive_count,
        sent_at=message.sent_at, group=message.group, receipt=message.receipt,
    )  # fmt: skip


def _too_old(max_event_age: float) -> ErrorInfo:
    return ErrorInfo(
        "Timeout", "EventTooOld", f"the message is older than max_event_age ({max_event_age:g} s)"
    )


def _item_failed() -> ErrorInfo:
    return ErrorInfo("Handler", "BatchItemFailure", "the handler reported this message as failed")
