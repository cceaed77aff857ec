"""Every dead letter of the platform in one list: events the failure policy gave up on (kept in
the platform's store, any source), and messages queues dead-lettered themselves (`max_receives`):
in the queue's own area, or moved to its dead-letter queue.

A queue's dead letter has the id `queue:NAME:MESSAGE_ID` (NAME: where it sits now); re-driving
it puts the message back into the queue it failed in. Any other dead letter re-drives as a new
asynchronous invocation of its function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import NotFound
from nimbus.ops.store import DeadLetter, Store
from nimbus.services import queue
from nimbus.services.queue import Queues

QUEUE_PREFIX = "queue:"


class DeadLetterView(msgspec.Struct, kw_only=True):
    """One dead letter, whatever its source, as the API and `nimbus dlq` show it."""

    id: str
    source: str
    function: str
    payload: str
    error: ErrorInfo | None
    attempts: int
    created_at: float
    failed_at: float
    attributes: dict[str, str] = {}
    job_id: str = ""
    """The asynchronous invocation that gave up, if one did."""


class DeadLetters:
    def __init__(
        self,
        store: Store,
        jobs: AsyncInvoker,
        queues: Queues,
        queue_names: Callable[[], Iterable[str]],
        dead_letter_queues: Callable[[], Iterable[str]],
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._queues = queues
        self._queue_names = queue_names  # the declared queues, now
        self._dead_letter_queues = dead_letter_queues  # those that other queues dead-letter to

    async def latest(self, function: str | None, limit: int) -> list[DeadLetterView]:
        stored = await self._store.dead_letters(function, limit)
        letters = [_from_store(letter) for letter in stored]
        if function is None:
            for name in self._queue_names():
                messages = await self._queue_letters(name, limit)
                letters += [_from_queue(name, message) for message in messages]
        letters.sort(key=lambda letter: letter.failed_at)
        return letters[-limit:]  # the latest, oldest first

    async def show(self, letter_id: str) -> DeadLetterView:
        if letter_id.startswith(QUEUE_PREFIX):
            name, message_id = _queue_letter(letter_id)
            for message in await self._queue_letters(name, queue.MAX_RECEIVE):
                if message.id == message_id:
                    return _from_queue(name, message)
            raise NotFound(f"no dead letter {letter_id!r}")
        letter = await self._store.dead_letter(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id!r}")
        return _from_store(letter)

    async def redrive(self, letter_id: str) -> dict[str, str]:
        """Send it again: back into its queue, or as a new asynchronous invocation."""
        if letter_id.startswith(QUEUE_PREFIX):
            name, message_id = _queue_letter(letter_id)
            if name in self._dead_letter_queues():
                moved = await self._queues.redrive_to_source(name, [message_id])
            else:
                moved = await self._queues.redrive(name, [message_id])
            if moved != 1:
                raise NotFound(f"no dead letter {letter_id!r}")
            return {"id": message_id, "status": "queued", "queue": name}
        job = await self._jobs.redrive(letter_id)
        return {"id": job.id, "status": job.status}

    async def redrive_queue(self, name: str) -> int:
        """Move every message of dead-letter queue `name` back to the queue it came from
        (SQS's redrive to source); returns how many moved."""
        if name not in self._queue_names():
            raise NotFound(f"no queue named {name!r}")
        return await self._queues.redrive_to_source(name)

    async def _queue_letters(self, name: str, limit: int) -> list[queue.DeadLetter]:
        letters = await self._queues.dead_letters(name, limit)
        if name in self._dead_letter_queues():
            letters += await self._queues.moved_here(name, limit)
        return letters


def _queue_letter(letter_id: str) -> tuple[str, str]:
    name, _, message_id = letter_id.removeprefix(QUEUE_PREFIX).partition(":")
    if not name or not message_id:
        raise NotFound(f"no dead letter {letter_id!r}")
    return name, message_id


def _from_store(letter: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=letter.id, source=letter.source, function=letter.function,
        payload=letter.payload.decode("utf-8", errors="replace"), error=letter.error,
        attempts=letter.attempts, created_at=letter.created_at, failed_at=letter.failed_at,
        job_id=letter.job_id,
    )  # fmt: skip


def _from_queue(name: str, message: queue.DeadLetter) -> DeadLetterView:
    error = None
    if message.last_error is not None:
        kind, _, text = message.last_error.partition(": ")
        error = ErrorInfo("Handler", kind if text else "Error", text or kind)
    return DeadLetterView(
        id=f"{QUEUE_PREFIX}{name}:{message.id}", source=f"{QUEUE_PREFIX}{message.source}",
        function="",
        payload=message.body, error=error, attempts=message.receive_count,
        created_at=message.sent_at, failed_at=message.dead_at, attributes=message.attributes,
    )  # fmt: skip
