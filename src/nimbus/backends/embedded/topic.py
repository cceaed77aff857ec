"""Topics in SQLite: one log table of events and one table of consumers' cursors.

Sequences are handed out here, in the controller, and the single writer thread commits writes
in the order they were queued, so readers see each topic's events in sequence order (a failed
write leaves a gap, never a reordering). Each topic's last sequence is stored with it, so that
sequences keep growing after every event was trimmed. The topics, their last sequences and the
cursors are also held in memory (this process is the only writer); memory changes only after
the commit that it reflects.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from nimbus.errors import InvalidRequest, NimbusError, NotFound
from nimbus.ids import new_id
from nimbus.ops.database import Database, Params
from nimbus.services.topic import (
    DEFAULT_TYPE,
    MAX_BATCH,
    MAX_READ,
    RETENTION,
    PublishEntry,
    PublishResult,
    StartPosition,
    TopicEvent,
    check_spec,
    encode_entry,
)
from nimbus.spec.resources import TopicSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, last_sequence INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    topic TEXT NOT NULL, sequence INTEGER NOT NULL, id TEXT NOT NULL, time REAL NOT NULL,
    type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, attributes BLOB NOT NULL,
    data BLOB NOT NULL, traceparent TEXT, PRIMARY KEY (topic, sequence));
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE TABLE IF NOT EXISTS consumers (
    topic TEXT NOT NULL, consumer TEXT NOT NULL, cursor INTEGER NOT NULL,
    PRIMARY KEY (topic, consumer));
"""
# Inserts check that the topic still exists, so a publish racing a delete leaves no orphan.
INSERT_EVENT = """
INSERT INTO events (topic, sequence, id, time, type, source, subject, attributes, data,
    traceparent)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM topics WHERE name = ?)
"""
READ_EVENTS = """
SELECT sequence, id, time, type, source, subject, attributes, data, traceparent FROM events
WHERE topic = ? AND sequence > ? ORDER BY sequence LIMIT ?
"""
MAX_CONSUMER_NAME = 256
_attributes_decoder = msgspec.json.Decoder(dict[str, str])


@dataclass(slots=True)
class _Topic:
    spec: TopicSpec
    last: int  # the highest sequence handed out
    committed: int  # the highest sequence known to be committed
    cursors: dict[str, int]
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def published(self, sequence: int) -> None:
        self.committed = max(self.committed, sequence)
        self.wake()

    def wake(self) -> None:
        """Wake every waiter; later waiters wait on a fresh event."""
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass(slots=True, frozen=True)
class _Row:
    """A checked entry, ready to be given a sequence and inserted."""

    id: str
    time: float
    entry: PublishEntry
    data: bytes

    def params(self, topic: str, sequence: int) -> Params:
        attributes = msgspec.json.encode(self.entry.attributes)
        entry = self.entry
        return (topic, sequence, self.id, self.time, entry.type, entry.source, entry.subject,
                attributes, self.data, entry.traceparent, topic)  # fmt: skip


class EmbeddedTopics:
    """The `Topics` interface on one SQLite file, `data_dir / "topic.db"`."""

    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = Database(data_dir / "topic.db", SCHEMA, fsync=fsync)
        self._clock = clock
        self._closed = False
        self._topics: dict[str, _Topic] = {}
        for row in self._db.read_now("SELECT name, spec, last_sequence FROM topics"):
            spec = TopicSpec.model_validate_json(row["spec"])
            last = int(row["last_sequence"])
            self._topics[row["name"]] = _Topic(spec, last, last, {})
        for row in self._db.read_now("SELECT topic, consumer, cursor FROM consumers"):
            self._topics[row["topic"]].cursors[row["consumer"]] = int(row["cursor"])

    async def create(self, spec: TopicSpec) -> None:
        check_spec(spec)
        state = self._topics.get(spec.name)
        if state is not None and state.spec == spec:
            return
        await self._db.write(
            "INSERT INTO topics (name, spec, last_sequence) VALUES (?, ?, 0) "
            "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
            (spec.name, spec.model_dump_json()),
        )
        self._topics.setdefault(spec.name, _Topic(spec, 0, 0, {})).spec = spec

    async def delete(self, name: str) -> None:
        if name not in self._topics:
            return
        await self._db.transaction(
            [
                ("DELETE FROM events WHERE topic = ?", (name,)),
                ("DELETE FROM consumers WHERE topic = ?", (name,)),
                ("DELETE FROM topics WHERE name = ?", (name,)),
            ]
        )
        state = self._topics.pop(name, None)
        if state is not None:
            state.wake()

    async def close(self) -> None:
        self._closed = True
        for state in self._topics.values():
            state.wake()
        await asyncio.to_thread(self._db.close)

    async def publish(
        self,
        name: str,
        data: Any,
        *,
        type: str = DEFAULT_TYPE,
        source: str = "",
        subject: str | None = None,
        attributes: dict[str, str] | None = None,
        traceparent: str | None = None,
    ) -> str:
        state = self._topic(name)
        entry = PublishEntry(
            data=data,
            type=type,
            source=source,
            subject=subject,
            attributes=attributes or {},
            traceparent=traceparent,
        )
        row = self._check(name, state, entry)
        await self._append(name, state, [row])
        return row.id

    async def publish_batch(
        self, name: str, entries: Sequence[PublishEntry]
    ) -> list[PublishResult]:
        state = self._topic(name)
        if not 0 < len(entries) <= MAX_BATCH:
            raise InvalidRequest(f"a batch has 1 to {MAX_BATCH} entries, not {len(entries)}")
        results: list[PublishResult] = []
        rows: list[_Row] = []
        for entry in entries:
            try:
                row = self._check(name, state, entry)
            except NimbusError as error:
                results.append(PublishResult(error_type=type(error).__name__, error=error.message))
            else:
                rows.append(row)
                results.append(PublishResult(id=row.id))
        if rows:
            await self._append(name, state, rows)
        return results

    def _check(self, name: str, state: _Topic, entry: PublishEntry) -> _Row:
        data = encode_entry(name, entry, state.spec.max_message_bytes)
        return _Row(new_id(), self._clock(), entry, data)

    async def _append(self, name: str, state: _Topic, rows: list[_Row]) -> None:
        """Insert the rows with the next sequences and the topic's new last sequence, in one
        transaction; then wake the topic's waiters."""
        first = state.last + 1
        state.last += len(rows)
        statements: list[tuple[str, Params]] = [
            (INSERT_EVENT, row.params(name, first + offset)) for offset, row in enumerate(rows)
        ]
        statements.append(
            (
                "UPDATE topics SET last_sequence = max(last_sequence, ?) WHERE name = ?",
                (state.last, name),
            )
        )
        # The commit goes on if the publisher is cancelled; the topic must then still learn
        # of the events, or consumers could neither be woken for them nor commit past them.
        commit = asyncio.ensure_future(self._db.transaction(statements))
        commit.add_done_callback(functools.partial(_published, state, first + len(rows) - 1))
        if not all(await asyncio.shield(commit)):
            raise NotFound(f"topic {name!r} was deleted while publishing")

    async def register(self, name: str, consumer: str, start: StartPosition = "latest") -> None:
        state = self._topic(name)
        if not isinstance(consumer, str) or not 0 < len(consumer) <= MAX_CONSUMER_NAME:
            raise InvalidRequest(
                f"a consumer's name is a string of 1 to {MAX_CONSUMER_NAME} characters"
            )
        if start not in ("latest", "oldest"):
            raise InvalidRequest(f"start is 'latest' or 'oldest', not {start!r}")
        if consumer in state.cursors:
            return
        cursor = state.committed if start == "latest" else 0
        count = await self._db.write(
            "INSERT OR IGNORE INTO consumers (topic, consumer, cursor) SELECT ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM topics WHERE name = ?)",
            (name, consumer, cursor, name),
        )
        if count:
            state.cursors.setdefault(consumer, cursor)

    async def unregister(self, name: str, consumer: str) -> None:
        state = self._topic(name)
        if consumer not in state.cursors:
            return
        await self._db.write(
            "DELETE FROM consumers WHERE topic = ? AND consumer = ?", (name, consumer)
        )
        state.cursors.pop(consumer, None)

    async def cursor(self, name: str, consumer: str) -> int:
        return self._cursor(name, consumer)

    async def read(self, name: str, consumer: str, limit: int = 100) -> list[TopicEvent]:
        cursor = self._cursor(name, consumer)
        if not 0 < limit <= MAX_READ:
            raise InvalidRequest(f"limit is 1 to {MAX_READ}, not {limit}")
        rows = await self._db.read(READ_EVENTS, (name, cursor, limit))
        return [_event(row) for row in rows]

    async def commit(self, name: str, consumer: str, sequence: int) -> None:
        current = self._cursor(name, consumer)
        state = self._topics[name]
        if not isinstance(sequence, int) or not 0 <= sequence <= state.committed:
            raise InvalidRequest(
                f"sequence {sequence!r} is not in topic {name!r}'s log (0 to {state.committed})"
            )
        if sequence <= current:
            return
        await self._db.write(
            "UPDATE consumers SET cursor = max(cursor, ?) WHERE topic = ? AND consumer = ?",
            (sequence, name, consumer),
        )
        if consumer in state.cursors:
            state.cursors[consumer] = max(state.cursors[consumer], sequence)

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = self._topic(name)
            if state.committed > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                return False
            try:
                await asyncio.wait_for(state.changed.wait(), remaining)
            except TimeoutError:
                return False

    async def trim(self, now: float | None = None) -> int:
        cutoff = (self._clock() if now is None else now) - RETENTION
        statements: list[tuple[str, Params]] = [("DELETE FROM events WHERE time < ?", (cutoff,))]
        for name, state in self._topics.items():
            if state.cursors:
                done = min(state.cursors.values())
                statements.append(
                    ("DELETE FROM events WHERE topic = ? AND sequence <= ?", (name, done))
                )
        return sum(await self._db.transaction(statements))

    def _topic(self, name: str) -> _Topic:
        state = self._topics.get(name)
        if state is None:
            raise NotFound(f"topic {name!r} does not exist")
        return state

    def _cursor(self, name: str, consumer: str) -> int:
        cursor = self._topic(name).cursors.get(consumer)
        if cursor is None:
            raise NotFound(f"consumer {consumer!r} is not registered on topic {name!r}")
        return cursor


def _published(state: _Topic, last: int, commit: asyncio.Future[list[int]]) -> None:
    """Once a publish's transaction settled: if every event went in, they are committed."""
    if not commit.cancelled() and commit.exception() is None and all(commit.result()):
        state.published(last)


def _event(row: sqlite3.Row) -> TopicEvent:
    return TopicEvent(
        sequence=row["sequence"],
        id=row["id"],
        time=row["time"],
        type=row["type"],
        source=row["source"],
        subject=row["subject"],
        attributes=_attributes_decoder.decode(row["attributes"]),
        data=row["data"],
        traceparent=row["traceparent"],
    )
