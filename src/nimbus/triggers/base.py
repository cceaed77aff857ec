"""What every trigger shares: the platform parts it drives, and a supervised run loop.

A trigger runs while its function is deployed with it. It reads its source through the service
interfaces only (never a backend), invokes through the invoker or the asynchronous invoker, and
applies the function's one FailurePolicy.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from math import inf
from typing import TypeVar

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.failures import FailureRouter
from nimbus.compute.invoker import Invoker
from nimbus.compute.protocol import ErrorInfo
from nimbus.events.outcome import item_failures
from nimbus.ops.logs import LogSink
from nimbus.ops.platform_events import PlatformEvents
from nimbus.ops.store import Store
from nimbus.services.catalog import ServiceSet
from nimbus.spec.model import AppSpec, EventTrigger, FailurePolicy, FunctionSpec, Style
from nimbus.spec.resources import ScheduleTrigger

RESTART_DELAY_LIMIT = 30.0  # seconds between restarts of a trigger whose loop keeps failing
HEALTHY_RUN = 60.0  # seconds a run must last for its failure to start the pauses over
ORDERED_BACKOFF = (
    1.0  # first retry delay of a stream / change-feed batch, unless the policy sets one
)
MAX_BATCH_BYTES = 6 * 1024 * 1024
"""What one polled batch (queue, stream, change feed) may weigh: Lambda's payload limit for a
synchronous invocation, which its event source mappings cut their batches by."""
TUNING = {"batch_size", "batching_window", "concurrency", "bisect_on_error", "missed"}
"""Trigger settings that change how a subscription delivers, not which events it gets."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Platform:
    """The parts of the controller a trigger uses."""

    invoker: Invoker
    jobs: AsyncInvoker
    services: ServiceSet
    store: Store
    logs: LogSink
    failures: FailureRouter
    spec: Callable[[], AppSpec | None]
    events: PlatformEvents | None = None


class TriggerRunner(ABC):
    """One trigger of one function. `run` loops until cancelled; if it fails, it is logged and
    started again with backoff, so a broken source never takes the platform down."""

    def __init__(
        self, platform: Platform, function: FunctionSpec, trigger: EventTrigger | ScheduleTrigger
    ) -> None:
        self.platform = platform
        self.function = function
        self.trigger = trigger
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def policy(self) -> FailurePolicy:
        return self.function.failure

    @property
    def style(self) -> Style:
        return self.function.style

    @property
    def max_age(self) -> float:
        return polled_age_limit(self.policy)

    @property
    def retry_backoff(self) -> float:
        return first_backoff(self.policy, ordered=self.trigger.type in ("stream", "table"))

    def failures(self, result: bytes, ids: list[str]) -> dict[str, str | None]:
        """The batch items the handler reported as failed, each with the reason it gave (see
        `item_failures`)."""
        return item_failures(self.style, result, ids)

    @property
    def consumer(self) -> str:
        """A stable id of this function's subscription to its source, for durable cursors: the
        same function resumes where it stopped, also after a restart, and after a redeploy that
        only tunes the trigger (`TUNING`); another source, starting position, filter or
        schedule is a new subscription."""
        identity = self.trigger.model_dump_json(exclude=TUNING)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return f"{self.function.name}/{self.trigger.type}/{digest}"

    def job_id(self, position: object) -> str:
        """The id of the asynchronous invocation this trigger submits for the event at
        `position` of its source: the same after a crash, so handing it on twice (the cursor
        had not moved yet) runs it once."""
        return hashlib.sha256(f"{self.consumer}@{position!r}".encode()).hexdigest()[:32]

    async def prepare(self) -> None:
        """Runs before `start`, while the spec is applied: what must be in place before the
        deploy returns (a subscription's cursor, so that it sees what is published next)."""
        return  # most triggers need nothing

    @abstractmethod
    async def run(self) -> None:
        """Deliver events from the source until cancelled."""

    def start(self) -> None:
        what = f"the {self.trigger.label} trigger of {self.name!r}"
        self._task = supervise(self.platform.logs, what, self.run)

    async def stop(self) -> None:
        await stop(self._task)


def cut(items: Sequence[T], size: int, max_bytes: int, weight: Callable[[T], int]) -> list[list[T]]:
    """`items` in order as batches of at most `size` items weighing at most `max_bytes`
    together; an item heavier than that by itself is a batch of its own (what becomes of it is
    the caller's decision). No batch is empty."""
    batches: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        heft = weight(item)
        if current and (len(current) == size or used + heft > max_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += heft
    if current:
        batches.append(current)
    return batches


def item_failed(item: str, reason: str | None) -> ErrorInfo:
    """The error of a batch item its handler reported as failed: the reason it gave, else a
    message naming the item."""
    return ErrorInfo(
        "Handler", "BatchItemFailure", reason or f"the handler reported {item} as failed"
    )


def polled_age_limit(policy: FailurePolicy) -> float:
    """How old a polled message or record may be before it is given up unread: only when the
    policy sets max_event_age (Lambda's SQS and stream mappings have no such limit by default;
    a queue's or stream's retention bounds them instead)."""
    return policy.max_event_age if "max_event_age" in policy.model_fields_set else inf


def first_backoff(policy: FailurePolicy, *, ordered: bool) -> float:
    """The first retry's delay: the policy's if it sets one; else, for an ordered source, which
    holds its partition while it waits, ORDERED_BACKOFF."""
    if ordered and "backoff" not in policy.model_fields_set:
        return ORDERED_BACKOFF
    return policy.backoff


def supervise(logs: LogSink, what: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Run `run` in a task; if it fails, log it and run it again, with growing pauses (back to
    the shortest once a run has lasted a while: failures far apart are not a streak)."""

    async def loop() -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if time.monotonic() - started > HEALTHY_RUN:
                    delay = 0.5
                logs.platform(f"{what} failed: {error!r}; it restarts in {delay:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_LIMIT)

    return asyncio.get_running_loop().create_task(loop())


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
