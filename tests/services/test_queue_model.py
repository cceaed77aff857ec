"""Property: a queue behaves like a small in-memory model of SQS, step for step.

A hypothesis state machine sends, receives, deletes, releases, changes visibility, re-drives
and moves the clock, on a standard and on a FIFO queue (with max_receives and deduplication),
and compares every answer and the queue's counts with the model. The machine is synchronous;
each backend call runs on one asyncio.Runner per example.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
)

from conftest import Clock
from nimbus.backends.embedded.queue import EmbeddedQueues
from nimbus.errors import Conflict, NotFound
from nimbus.services.queue import Message, Queues, SendEntry, SendResult
from nimbus.spec.resources import QueueSpec

T = TypeVar("T")
T0 = 1_700_000_000.0
MAX_RECEIVES = 3
VISIBILITY = 10.0
DEDUP_WINDOW = 300.0

groups = st.sampled_from(["a", "b", "c"])
dedup_ids = st.sampled_from(["d1", "d2", "d3", "d4", "d5", "d6"])
bodies = st.text(alphabet="xyz", min_size=1, max_size=3)


@dataclass
class Modelled:
    id: str
    body: str
    group: str | None
    order: int
    visible_at: float
    receive_count: int = 0
    receipt: str | None = None
    last_error: str | None = None

    def in_flight(self, now: float) -> bool:
        return self.receive_count > 0 and self.visible_at > now


@dataclass
class Model:
    """The queue as SQS documents it, kept in dicts and lists."""

    fifo: bool
    messages: dict[str, Modelled] = field(default_factory=dict)
    dead: list[Modelled] = field(default_factory=list)
    dedup: dict[str, tuple[SendResult, float]] = field(default_factory=dict)
    receipts: dict[str, Modelled] = field(default_factory=dict)  # every receipt handed out
    sent: int = 0

    def add(self, result: SendResult, body: str, group: str | None, visible_at: float) -> None:
        self.sent += 1
        self.messages[result.id] = Modelled(result.id, body, group, self.sent, visible_at)

    def duplicate_of(self, dedup_id: str | None, now: float) -> SendResult | None:
        if dedup_id is None or dedup_id not in self.dedup:
            return None
        original, expires = self.dedup[dedup_id]
        return original if expires > now else None

    def candidates(self, now: float) -> list[list[Modelled]]:
        """Runs of messages in delivery order; a run stops at its first invisible message."""
        if not self.fifo:
            visible = [m for m in self.messages.values() if m.visible_at <= now]
            return [sorted(visible, key=lambda m: (m.visible_at, m.order))]
        by_group: dict[str | None, list[Modelled]] = {}
        for message in sorted(self.messages.values(), key=lambda m: m.order):
            by_group.setdefault(message.group, []).append(message)
        free = [g for g in by_group.values() if not any(m.in_flight(now) for m in g)]
        return sorted(free, key=lambda group: group[0].order)

    def receive(self, now: float, wanted: int) -> tuple[list[Modelled], list[Modelled]]:
        """What a receive takes and what it dead-letters on the way."""
        taken: list[Modelled] = []
        dead: list[Modelled] = []
        for run in self.candidates(now):
            for message in run:
                if len(taken) == wanted or message.visible_at > now:
                    break
                if message.receive_count >= MAX_RECEIVES:
                    dead.append(message)
                else:
                    taken.append(message)
        return taken, dead

    def by_receipt(self, receipt: str) -> Modelled | None:
        """The message the receipt was for, if it is still in the queue (a re-driven message
        is a new one)."""
        modelled = self.receipts[receipt]
        return modelled if self.messages.get(modelled.id) is modelled else None


class QueueMachine(RuleBasedStateMachine):
    fifo = False
    receipts = Bundle("receipts")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.directory = tempfile.mkdtemp()
        self.clock = Clock(T0)
        self.queues: Queues = EmbeddedQueues(Path(self.directory), clock=self.clock)
        spec = QueueSpec(
            name="q", fifo=self.fifo, max_receives=MAX_RECEIVES, visibility_timeout=VISIBILITY,
            dedup_window=DEDUP_WINDOW,
        )  # fmt: skip
        self.run(self.queues.create(spec))
        self.model = Model(self.fifo)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def teardown(self) -> None:
        self.run(self.queues.close())
        self.runner.close()
        shutil.rmtree(self.directory)

    @property
    def now(self) -> float:
        return self.clock.now

    def entry(self, body: str, group: str, dedup_id: str, delay: float | None) -> SendEntry:
        if self.fifo:
            return SendEntry(body=body, group=group, dedup_id=dedup_id)
        return SendEntry(body=body, group=group, delay=delay)

    def expect_sent(self, entry: SendEntry, result: SendResult) -> None:
        original = self.model.duplicate_of(entry.dedup_id, self.now)
        if original is not None:
            assert result == original
            return
        if self.fifo:
            assert result.sequence is not None
            assert entry.dedup_id is not None
            self.model.dedup[entry.dedup_id] = (result, self.now + DEDUP_WINDOW)
        self.model.add(result, entry.body, entry.group, self.now + (entry.delay or 0))

    @rule(body=bodies, group=groups, dedup_id=dedup_ids, delay=st.sampled_from([None, 0.0, 5.0]))
    def send(self, body: str, group: str, dedup_id: str, delay: float | None) -> None:
        entry = self.entry(body, group, dedup_id, delay)
        result = self.run(
            self.queues.send(
                "q", entry.body, delay=entry.delay, group=entry.group, dedup_id=entry.dedup_id
            )
        )
        self.expect_sent(entry, result)

    @rule(
        batch=st.lists(
            st.tuples(bodies, groups, dedup_ids, st.sampled_from([None, 2.0])),
            min_size=1,
            max_size=5,
        )
    )
    def send_batch(self, batch: list[tuple[str, str, str, float | None]]) -> None:
        entries = [self.entry(*fields) for fields in batch]
        result = self.run(self.queues.send_batch("q", entries))
        assert result.failed == []
        for entry, sent in zip(entries, result.sent, strict=True):
            assert sent is not None
            self.expect_sent(entry, sent)

    @rule(
        target=receipts,
        wanted=st.integers(1, 4),
        visibility=st.sampled_from([None, 0.0, 5.0, 10.0]),
    )
    def receive(self, wanted: int, visibility: float | None) -> MultipleResults[str]:
        taken, dead = self.model.receive(self.now, wanted)
        received = self.run(self.queues.receive("q", wanted, visibility_timeout=visibility))
        assert [m.id for m in received] == [m.id for m in taken]
        for message, modelled in zip(received, taken, strict=True):
            self.expect_received(message, modelled, visibility)
        for modelled in dead:
            del self.model.messages[modelled.id]
            self.model.dead.append(modelled)
        return multiple(*(m.receipt for m in received))

    def expect_received(
        self, message: Message, modelled: Modelled, visibility: float | None
    ) -> None:
        modelled.receive_count += 1
        modelled.receipt = message.receipt
        modelled.visible_at = self.now + (VISIBILITY if visibility is None else visibility)
        self.model.receipts[message.receipt] = modelled
        assert (message.body, message.group) == (modelled.body, modelled.group)
        assert (message.receive_count, message.last_error) == (
            modelled.receive_count,
            modelled.last_error,
        )

    @rule(receipt=receipts)
    def delete(self, receipt: str) -> None:
        modelled = self.model.by_receipt(receipt)
        stale = modelled is not None and modelled.receipt != receipt
        expired = self.fifo and modelled is not None and not modelled.in_flight(self.now)
        if modelled is not None and (stale or expired):
            with pytest.raises(Conflict):
                self.run(self.queues.delete_message("q", receipt))
            return
        self.run(self.queues.delete_message("q", receipt))
        if modelled is not None:
            del self.model.messages[modelled.id]

    @rule(
        receipt=receipts,
        delay=st.sampled_from([0.0, 3.0, 20.0]),
        error=st.sampled_from([None, "e1", "e2"]),
    )
    def release(self, receipt: str, delay: float, error: str | None) -> None:
        modelled = self.model.by_receipt(receipt)
        if modelled is None or modelled.receipt != receipt:
            with pytest.raises(NotFound if modelled is None else Conflict):
                self.run(self.queues.release("q", receipt, error=error, delay=delay))
            return
        self.run(self.queues.release("q", receipt, error=error, delay=delay))
        modelled.visible_at = self.now + delay
        modelled.last_error = error or modelled.last_error

    @rule(receipt=receipts, timeout=st.sampled_from([0.0, 4.0, 15.0]))
    def change_visibility(self, receipt: str, timeout: float) -> None:
        modelled = self.model.by_receipt(receipt)
        if modelled is None:
            with pytest.raises(NotFound):
                self.run(self.queues.change_visibility("q", receipt, timeout))
            return
        if modelled.receipt != receipt or not modelled.in_flight(self.now):
            with pytest.raises(Conflict):
                self.run(self.queues.change_visibility("q", receipt, timeout))
            return
        self.run(self.queues.change_visibility("q", receipt, timeout))
        modelled.visible_at = self.now + timeout

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 5.0, 10.0, 400.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def redrive(self) -> None:
        dead = [d.body for d in self.run(self.queues.dead_letters("q", 1000))]
        assert dead == [m.body for m in self.model.dead]
        assert self.run(self.queues.redrive("q")) == len(self.model.dead)
        for modelled in self.model.dead:
            result = SendResult(id=modelled.id)
            self.model.add(result, modelled.body, modelled.group, self.now)
        self.model.dead.clear()

    @invariant()
    def counts_match(self) -> None:
        stats = self.run(self.queues.stats("q"))
        now, messages = self.now, list(self.model.messages.values())
        assert stats.visible == sum(m.visible_at <= now for m in messages)
        assert stats.in_flight == sum(m.in_flight(now) for m in messages)
        assert stats.delayed == sum(m.receive_count == 0 and m.visible_at > now for m in messages)
        assert stats.dead_letters == len(self.model.dead)


class FifoQueueMachine(QueueMachine):
    fifo = True


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStandardQueue = QueueMachine.TestCase
TestStandardQueue.settings = SETTINGS
TestFifoQueue = FifoQueueMachine.TestCase
TestFifoQueue.settings = SETTINGS
