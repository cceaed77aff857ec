"""Every dead letter of the platform in one list: events the failure policy gave up on (kept in
the platform's store, any source), and messages queues dead-lettered themselves (`max_receives`):
in the queue's own area, or moved to its dead-letter queue.

A queue's dead letter has the id `queue:NAME:MESSAGE_ID` (NAME: where it sits now); re-driving
it puts the message back into the queue it failed in. Its attempts are its receives there, and
its function the one whose trigger consumes that queue when exactly one does (the queue service
does not record who received a message), else unknown (None). Any other dead letter re-drives as
a new asynchronous invocation of its function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import NotFound
from nimbus.ops.store import DeadLetter, Store
from nimbus.services import queue
from nimbus.services.queue import Queues
from nimbus.spec.model import AppSpec
from nimbus.spec.resources import QueueTrigger

QUEUE_PREFIX = "queue:"


class DeadLetterView(msgspec.Struct, kw_only=True):
    """One dead letter, whatever its source, as the API and `nimbus dlq` show it."""

    id: str
    source: str
    function: str | None
    """The function that failed it; None: none did (a topic's queue subscription) or it is
    not known (a queue's, when not exactly one function consumes the queue)."""
    payload: str
    error: ErrorInfo | None
    attempts: int
    created_at: float
    failed_at: float
    attributes: dict[str, str] = {}
    job_id: str = ""
    """The asynchronous invocation that gave up, if one did."""


class QueueRedrive(msgspec.Struct, kw_only=True):
    moved: int
    left: int
    """Messages that stayed in the queue: without a known source queue, or in flight."""


class DeadLetters:
    def __init__(
        self, store: Store, jobs: AsyncInvoker, queues: Queues, spec: Callable[[], AppSpec | None]
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._queues = queues
        self._spec = spec  # the app as it runs now

    async def latest(self, function: str | None, limit: int) -> list[DeadLetterView]:
        stored = await self._store.dead_letters(function, limit)
        letters = [_from_store(letter) for letter in stored]
        consumers = self._consumers()
        for name in self._queue_names():
            for message in await self._queue_letters(name, limit):
                letter = _from_queue(name, message, consumers)
                if function is None or letter.function == function:
                    letters.append(letter)
        letters.sort(key=lambda letter: letter.failed_at)
        return letters[-limit:]  # the latest, oldest first

    async def show(self, letter_id: str) -> DeadLetterView:
        if letter_id.startswith(QUEUE_PREFIX):
            name, message_id = _queue_letter(letter_id)
            for message in await self._queue_letters(name, queue.MAX_RECEIVE):
                if message.id == message_id:
                    return _from_queue(name, message, self._consumers())
            raise NotFound(f"no dead letter {letter_id!r}")
        letter = await self._store.dead_letter(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id!r}")
        return _from_store(letter)

    async def redrive(self, letter_id: str) -> dict[str, str]:
        """Send it again: back into its queue, or as a new asynchronous invocation."""
        if letter_id.startswith(QUEUE_PREFIX):
            name, message_id = _queue_letter(letter_id)
            if self._is_dead_letter_queue(name):
                moved = await self._queues.redrive_to_source(name, [message_id])
            else:
                moved = await self._queues.redrive(name, [message_id])
            if moved != 1:
                raise NotFound(f"no dead letter {letter_id!r}")
            return {"id": message_id, "status": "queued", "queue": name}
        job = await self._jobs.redrive(letter_id)
        return {"id": job.id, "status": job.status}

    async def redrive_queue(self, name: str) -> QueueRedrive:
        """Move every message of dead-letter queue `name` back to the queue it came from
        (SQS's redrive to source): those its source queue moved there after `max_receives`
        and those a trigger dead-lettered there; the others stay."""
        if name not in self._queue_names():
            raise NotFound(f"no queue named {name!r}")
        moved = await self._queues.redrive_to_source(name)
        stats = await self._queues.stats(name)
        return QueueRedrive(moved=moved, left=stats.visible + stats.in_flight + stats.delayed)

    def _queue_names(self) -> list[str]:
        spec = self._spec()
        return list(spec.queues) if spec else []

    def _is_dead_letter_queue(self, name: str) -> bool:
        """Whether another queue moves messages to queue `name` after `max_receives`."""
        spec = self._spec()
        return spec is not None and any(q.dead_letter == name for q in spec.queues.values())

    def _consumers(self) -> dict[str, str]:
        """The function consuming each queue that exactly one function's trigger consumes."""
        found: dict[str, set[str]] = {}
        spec = self._spec()
        for function in spec.functions.values() if spec else ():
            for trigger in function.triggers:
                if isinstance(trigger, QueueTrigger):
                    found.setdefault(trigger.queue, set()).add(function.name)
        return {name: functions.pop() for name, functions in found.items() if len(functions) == 1}

    async def _queue_letters(self, name: str, limit: int) -> list[queue.DeadLetter]:
        letters = await self._queues.dead_letters(name, limit)
        if self._is_dead_letter_queue(name):
            letters += await self._queues.moved_here(name, limit)
        return letters


def _queue_letter(letter_id: str) -> tuple[str, str]:
    name, _, message_id = letter_id.removeprefix(QUEUE_PREFIX).partition(":")
    if not name or not message_id:
        raise NotFound(f"no dead letter {letter_id!r}")
    return name, message_id


def _from_store(letter: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=letter.id, source=letter.source, function=letter.function or None,
        payload=letter.payload.decode("utf-8", errors="replace"), error=letter.error,
        attempts=letter.attempts, created_at=letter.created_at, failed_at=letter.failed_at,
        job_id=letter.job_id,
    )  # fmt: skip


def _from_queue(
    name: str, message: queue.DeadLetter, consumers: Mapping[str, str]
) -> DeadLetterView:
    """`name`: the queue it is in now; `consumers`: the function consuming each queue."""
    error = None
    if message.last_error is not None:
        kind, _, text = message.last_error.partition(": ")
        error = ErrorInfo("Handler", kind if text else "Error", text or kind)
    return DeadLetterView(
        id=f"{QUEUE_PREFIX}{name}:{message.id}", source=f"{QUEUE_PREFIX}{message.source}",
        function=consumers.get(message.source),
        payload=message.body, error=error, attempts=message.receive_count,
        created_at=message.sent_at, failed_at=message.dead_at, attributes=message.attributes,
    )  # fmt: skip
