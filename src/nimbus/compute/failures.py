"""The one failure policy's last steps, for every asynchronous source: on-success / on-failure
destinations and dead-letter targets (each a queue, topic or function of the app), or else the
platform's own dead letters, which `nimbus dlq` lists and re-drives.

Records follow the shape AWS Lambda documents for destinations (requestContext, requestPayload,
responseContext, responsePayload), so a consumer written for Lambda reads them unchanged.

A dead-letter target gets the failed event with Lambda's error attributes; but a queue message a
queue trigger gave up reaches a dead-letter queue or topic as it was sent (its body and
attributes, as SQS's redrive moves it), not inside the trigger's event: a dead-letter queue can
re-drive it to its source.

What goes to a destination or dead-letter target carries the trace context of the invocation
that succeeded or failed (or, for an event given up without it, the event's own), so that it
continues that trace.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import NimbusError, NotFound
from nimbus.events import trace
from nimbus.events.cloudevents import format_time
from nimbus.ids import new_id
from nimbus.ops.logs import LogSink
from nimbus.ops.store import DeadLetter, Store
from nimbus.services.catalog import ServiceSet
from nimbus.services.queue import ERROR_ATTRIBUTES, Message, dead_letter_attributes
from nimbus.spec.model import AppSpec, FailurePolicy
from nimbus.spec.resources import QueueSpec

Condition = Literal["Success", "RetriesExhausted", "EventAgeExceeded"]


class SubmitJob(Protocol):
    def __call__(
        self, function: str, payload: bytes, trigger: str, *, traceparent: str | None
    ) -> Awaitable[object]:
        """Accept an asynchronous invocation of `function` continuing trace `traceparent`."""
        ...


DeadLettered = Callable[["FailedEvent", str | None], None]
"""Told of each event given up to a dead-letter target (None: the platform's dead letters)."""


class Destinations:
    def __init__(
        self, services: ServiceSet, spec: Callable[[], AppSpec | None], submit: SubmitJob
    ) -> None:
        self._services = services
        self._spec = spec
        self._submit = submit

    async def send(
        self, target: str, payload: bytes, *, attributes: dict[str, str], traceparent: str | None,
        origin: QueueOrigin | None = None,
    ) -> None:  # fmt: skip
        """Deliver `payload` (JSON) to the queue, topic or function named `target`, continuing
        trace `traceparent` (if valid: a record's own context may come from outside); committed
        before it returns. A dead letter's `origin` goes to a queue or topic instead of the
        event: its body, with its attributes and then `attributes` (a queue also gets where
        it came from, to re-drive it there; a topic's event is not re-driven)."""
        traceparent = traceparent if trace.parse(traceparent) is not None else None
        spec = self._spec()
        if spec is None:
            raise NotFound(f"no app is deployed, so {target!r} does not exist")
        if target in spec.queues:
            await self._enqueue(spec.queues[target], payload, attributes, traceparent, origin)
        elif target in spec.topics:
            if origin is None:
                data = msgspec.json.decode(payload)
            else:
                data, attributes = origin.message.body, {**origin.message.attributes, **attributes}
            await self._services.topics.publish(
                target, data, type="nimbus.destination", attributes=attributes,
                traceparent=traceparent,
            )  # fmt: skip
        elif target in spec.functions:
            await self._submit(target, payload, f"destination:{target}", traceparent=traceparent)
        else:
            raise NotFound(f"the destination {target!r} is not a queue, topic or function")

    async def _enqueue(
        self, queue: QueueSpec, payload: bytes, attributes: dict[str, str],
        traceparent: str | None, origin: QueueOrigin | None,
    ) -> None:  # fmt: skip
        if origin is None:
            await self._services.queues.send(
                queue.name, payload.decode(), attributes=attributes, traceparent=traceparent
            )
            return
        message = origin.message
        await self._services.queues.send(
            queue.name, message.body,
            attributes=dead_letter_attributes(message.attributes, origin.queue, attributes),
            group=message.group,  # re-driven to a FIFO source, it goes back into its group
            # never deduplicated: a re-driven message may fail and come back within the window
            dedup_id=new_id() if queue.fifo else None, traceparent=traceparent,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueueOrigin:
    """The message of queue `queue` that a queue trigger's failed event was made of."""

    queue: str
    message: Message


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event its function could not process, whatever its source."""

    function: str
    source: str  # the trigger label: async, queue:NAME, stream:NAME, ...
    payload: bytes  # the event as the function received it (JSON)
    error: ErrorInfo
    attempts: int
    condition: Condition
    first_seen: float
    request_id: str = ""
    job_id: str = ""
    traceparent: str | None = None
    """The trace context its destination continues: its last invocation's, or the event's."""
    origin: QueueOrigin | None = None
    """A queue trigger's: the message the event was made of, for a dead-letter queue or topic."""


class FailureRouter:
    """Sends outcomes where the policy says, falling back to the platform's dead letters when
    a target cannot take them: an event is never dropped silently."""

    def __init__(
        self, destinations: Destinations, store: Store, logs: LogSink,
        dead_lettered: DeadLettered | None = None,
    ) -> None:  # fmt: skip
        self.destinations = destinations
        self._store = store
        self._logs = logs
        self._dead_lettered = dead_lettered or _unobserved

    async def succeeded(
        self, policy: FailurePolicy, *, function: str, request_id: str, payload: bytes,
        result: bytes, attempts: int, traceparent: str | None = None,
    ) -> None:  # fmt: skip
        """Send the outcome to the on-success destination, if any, continuing `traceparent`
        (the trace context of the invocation that succeeded)."""
        if policy.on_success is None:
            return
        record = destination_record(
            function=function, request_id=request_id, condition="Success", attempts=attempts,
            payload=payload, result=result, error=None,
        )  # fmt: skip
        await self._deliver(function, policy.on_success, record, {}, traceparent)

    async def failed(self, policy: FailurePolicy, event: FailedEvent) -> None:
        """Route a failed event: to the on-failure destination (its record holds the event)
        and the dead-letter target; to the platform's dead letters if neither took it."""
        taken = False
        if policy.on_failure is not None:
            record = destination_record(
                function=event.function, request_id=event.request_id,
                condition=event.condition, attempts=event.attempts, payload=event.payload,
                result=None, error=event.error,
            )  # fmt: skip
            taken = await self._deliver(
                event.function, policy.on_failure, record, {}, event.traceparent
            )
        if policy.dead_letter is not None:
            attributes = error_attributes(event.error, event.request_id)
            if await self._deliver(
                event.function, policy.dead_letter, event.payload, attributes, event.traceparent,
                event.origin,
            ):  # fmt: skip
                self._dead_lettered(event, policy.dead_letter)
                return
        if taken:
            return
        await self._store.add_dead_letter(
            DeadLetter(
                id=new_id(), function=event.function, payload=event.payload, error=event.error,
                attempts=event.attempts, job_id=event.job_id, created_at=event.first_seen,
                failed_at=time.time(), source=event.source,
            )
        )  # fmt: skip
        self._dead_lettered(event, None)

    async def _deliver(
        self, function: str, target: str, payload: bytes, attributes: dict[str, str],
        traceparent: str | None, origin: QueueOrigin | None = None,
    ) -> bool:  # fmt: skip
        try:
            await self.destinations.send(
                target, payload, attributes=attributes, traceparent=traceparent, origin=origin
            )
            return True
        except NimbusError as error:
            self._logs.platform(
                f"an event of {function!r} could not be delivered to {target!r}: {error.message}"
            )
            return False


def _unobserved(event: FailedEvent, target: str | None) -> None:
    """No one listens for dead letters."""


def destination_record(
    *,
    function: str,
    request_id: str,
    condition: Condition,
    attempts: int,
    payload: bytes,
    result: bytes | None,
    error: ErrorInfo | None,
) -> bytes:
    """The record an on-success / on-failure destination receives (AWS Lambda's shape)."""
    response: Any
    if error is not None:
        response = {"errorType": error.type, "errorMessage": error.message}
        response["stackTrace"] = error.traceback
    else:
        response = msgspec.json.decode(result) if result else None
    context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if error is not None:
        context["functionError"] = "Unhandled"
    record = {
        "version": "1.0",
        "timestamp": format_time(time.time(), 3),  # as Lambda's: 2019-11-24T23:08:25.651Z
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"nimbus:function:{function}",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": msgspec.json.decode(payload),
        "responseContext": context,
        "responsePayload": response,
    }
    return msgspec.json.encode(record)


def too_old(max_event_age: float, what: str = "the event is") -> ErrorInfo:
    """Why an event was given up without running: it outlived the policy's max_event_age."""
    message = f"{what} older than max_event_age ({max_event_age:g} s)"
    return ErrorInfo("Timeout", "EventTooOld", message)


def error_attributes(error: ErrorInfo, request_id: str) -> dict[str, str]:
    """What Lambda attaches to an event it sends to a dead-letter queue."""
    values = (request_id, error.type, error.message[:1024])
    return dict(zip(ERROR_ATTRIBUTES, values, strict=True))
