"""Queues in one SQLite file: every queue's messages in one table, ordered by sequence number.

Sequence numbers are assigned on the event loop and never reused (AUTOINCREMENT keeps the high
mark across restarts). A receipt is `seq:token`, the token shared by the messages of one
receive; a message row keeps the token of its latest receive, so older receipts are stale.

Receives of one queue take turns (a lock per queue): each reads the candidates, decides in
Python, then claims them in one transaction whose statements are guarded (still visible, still
the same receipt), so a concurrent delete, release or purge is never overwritten. FIFO queues
keep `fifo_groups`, each group's head sequence, so a receive visits only the oldest free groups
instead of scanning messages of blocked ones. Every statement takes all the messages of a call
(multi-row VALUES, `IN` lists): a batch of any size costs a constant number of statements.
Statements that pick messages by sequence number write `+queue_id` and `+visible_at`, so that
SQLite looks them up by primary key and never walks the queue's visibility index instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec

from nimbus.errors import (
    Conflict,
    InvalidRequest,
    NimbusError,
    NotFound,
    PlatformUnavailable,
)
from nimbus.ids import new_id
from nimbus.ops.database import Database, Params
from nimbus.services.queue import (
    ERROR_ATTRIBUTES,
    MAX_BATCH,
    MAX_ERROR_CHARS,
    MAX_RECEIVE,
    MAX_VISIBILITY,
    SOURCE_ATTRIBUTE,
    DeadLetter,
    DeleteBatchResult,
    EntryError,
    Message,
    QueueDeadLettered,
    QueueStats,
    SendBatchResult,
    SendEntry,
    SendResult,
    check_count,
    check_entry,
    check_receive,
    check_seconds,
)
from nimbus.spec.resources import QueueSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue_id INTEGER NOT NULL, id TEXT NOT NULL,
    body TEXT NOT NULL, attributes TEXT, grp TEXT, dedup_id TEXT, traceparent TEXT,
    source TEXT, last_error TEXT, sent_at REAL NOT NULL, visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0, first_received_at REAL, receipt TEXT,
    dead_receives INTEGER);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue_id, visible_at);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue_id, grp) WHERE grp IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_received ON messages (queue_id, grp, visible_at)
    WHERE receive_count > 0 AND grp IS NOT NULL;
CREATE TABLE IF NOT EXISTS fifo_groups (
    queue_id INTEGER NOT NULL, grp TEXT NOT NULL, head_seq INTEGER,
    PRIMARY KEY (queue_id, grp)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fifo_groups_head ON fifo_groups (queue_id, head_seq);
CREATE TABLE IF NOT EXISTS dedup (
    queue_id INTEGER NOT NULL, dedup_id TEXT NOT NULL, message_id TEXT NOT NULL,
    seq INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    dead_seq INTEGER PRIMARY KEY AUTOINCREMENT, queue_id INTEGER NOT NULL, id TEXT NOT NULL,
    body TEXT NOT NULL, attributes TEXT, grp TEXT, dedup_id TEXT, traceparent TEXT,
    source TEXT NOT NULL, last_error TEXT, sent_at REAL NOT NULL,
    receive_count INTEGER NOT NULL, dead_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters (queue_id, id);
"""

CANDIDATE = """seq, id, body, attributes, grp, dedup_id, traceparent, source, last_error,
    sent_at, visible_at, receive_count, first_received_at"""
UPSERT_QUEUE = """INSERT INTO queues (name, spec) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET spec = excluded.spec"""
NEW_COLUMNS = "seq, queue_id, id, body, attributes, grp, dedup_id, traceparent, sent_at, visible_at"
INSERT_MESSAGES = f"INSERT INTO messages ({NEW_COLUMNS}) VALUES"
# FIFO: a message is stored only if its dedup id is now its own (no live duplicate).
UPSERT_DEDUP = """INSERT INTO dedup (queue_id, dedup_id, message_id, seq, expires_at) VALUES {}
    ON CONFLICT (queue_id, dedup_id) DO UPDATE SET message_id = excluded.message_id,
        seq = excluded.seq, expires_at = excluded.expires_at WHERE dedup.expires_at <= ?"""
# (No leading WITH: Python's sqlite3 reports no rowcount for statements starting with one.)
INSERT_DEDUPLICATED = f"""INSERT INTO messages ({NEW_COLUMNS}) SELECT * FROM (VALUES {{}}) v
    WHERE EXISTS (SELECT 1 FROM dedup d WHERE d.queue_id = v.column2
        AND d.dedup_id = v.column7 AND d.message_id = v.column3)"""
GROUPS_ADDED = """INSERT INTO fifo_groups (queue_id, grp, head_seq)
    SELECT queue_id, grp, min(seq) FROM messages WHERE seq BETWEEN ? AND ? AND +queue_id = ?
    GROUP BY grp ON CONFLICT (queue_id, grp) DO UPDATE SET head_seq = min(head_seq,
    excluded.head_seq)"""
HEADS_REMOVED = """UPDATE fifo_groups SET head_seq = (SELECT min(m.seq) FROM messages m
    WHERE m.queue_id = fifo_groups.queue_id AND m.grp = fifo_groups.grp)
    WHERE queue_id = ? AND head_seq IN ({})"""
HEADS_REFRESHED = """UPDATE fifo_groups SET head_seq = (SELECT min(m.seq) FROM messages m
    WHERE m.queue_id = fifo_groups.queue_id AND m.grp = fifo_groups.grp) WHERE queue_id = ?"""
EMPTY_GROUPS = "DELETE FROM fifo_groups WHERE queue_id = ? AND head_seq IS NULL"
STANDARD_FIRST = f"""SELECT {CANDIDATE} FROM messages WHERE queue_id = ? AND visible_at <= ?
    ORDER BY visible_at, seq LIMIT ?"""
STANDARD_NEXT = f"""SELECT {CANDIDATE} FROM messages WHERE queue_id = ? AND visible_at <= ?
    AND (visible_at, seq) > (?, ?) ORDER BY visible_at, seq LIMIT ?"""
FREE_GROUPS = """SELECT g.grp, g.head_seq FROM fifo_groups g
    WHERE g.queue_id = ? AND g.head_seq > ? AND NOT EXISTS (SELECT 1 FROM messages f
        WHERE f.queue_id = g.queue_id AND f.grp = g.grp AND f.receive_count > 0
        AND f.visible_at > ?)
    ORDER BY g.head_seq LIMIT ?"""
GROUP_ROWS = f"""SELECT * FROM (SELECT {CANDIDATE} FROM messages
    WHERE queue_id = ? AND grp = ? AND seq > ? ORDER BY seq LIMIT ?)"""
CLAIM = """UPDATE messages SET receipt = ?, visible_at = ?, receive_count = receive_count + 1,
    first_received_at = coalesce(first_received_at, ?)
    WHERE +queue_id = ? AND seq IN ({}) AND +visible_at <= ?"""
CLAIMED = "SELECT seq FROM messages WHERE receipt = ? AND seq IN ({})"
DROP_EXPIRED = "DELETE FROM messages WHERE +queue_id = ? AND seq IN ({}) AND sent_at <= ?"
EXHAUSTED = "+queue_id = ? AND seq IN ({}) AND receive_count >= ? AND +visible_at <= ?"
TO_DEAD_LETTER_QUEUE = f"""INSERT INTO messages ({NEW_COLUMNS}, source, last_error,
        dead_receives)
    SELECT ? + row_number() OVER (ORDER BY seq), ?, id, body, attributes, grp, dedup_id,
        traceparent, sent_at, ?, ?, last_error, receive_count FROM messages WHERE {EXHAUSTED}"""
TO_DEAD_LETTERS = f"""INSERT INTO dead_letters (queue_id, id, body, attributes, grp, dedup_id,
        traceparent, source, last_error, sent_at, receive_count, dead_at)
    SELECT queue_id, id, body, attributes, grp, dedup_id, traceparent, ?, last_error, sent_at,
        receive_count, ? FROM messages WHERE {EXHAUSTED}"""
DROP_EXHAUSTED = f"DELETE FROM messages WHERE {EXHAUSTED}"
DELETE_RECEIPTS = """DELETE FROM messages WHERE seq IN ({}) AND +queue_id = ?
    AND (seq, receipt) IN (VALUES {}) AND +visible_at > ?"""
RECEIPT_STATE = "SELECT seq, receipt, visible_at FROM messages WHERE +queue_id = ? AND seq IN ({})"
CHANGE_VISIBILITY = """UPDATE messages SET visible_at = ?
    WHERE seq = ? AND +queue_id = ? AND receipt = ? AND +visible_at > ?"""
RELEASE = """UPDATE messages SET visible_at = ?, last_error = coalesce(?, last_error)
    WHERE seq = ? AND +queue_id = ? AND receipt = ?"""
NEXT_VISIBLE = "SELECT min(visible_at) FROM messages WHERE queue_id = ? AND visible_at > ?"
STATS = """SELECT coalesce(sum(visible_at <= ?1), 0),
        coalesce(sum(visible_at > ?1 AND receive_count > 0), 0),
        coalesce(sum(visible_at > ?1 AND receive_count = 0), 0),
        min(CASE WHEN visible_at <= ?1 THEN sent_at END),
        (SELECT count(*) FROM dead_letters WHERE queue_id = ?2)
    FROM messages WHERE queue_id = ?2"""
DEAD_LETTERS = """SELECT id, body, attributes, grp, dedup_id, traceparent, source, last_error,
    sent_at, receive_count, dead_at FROM dead_letters WHERE queue_id = ? ORDER BY dead_seq
    LIMIT ?"""
REDRIVE = f"""INSERT INTO messages ({NEW_COLUMNS})
    SELECT ? + row_number() OVER (ORDER BY dead_seq), queue_id, id, body, attributes, grp,
        dedup_id, traceparent, ?, ? FROM dead_letters WHERE queue_id = ? AND {{}}"""
DROP_REDRIVEN = "DELETE FROM dead_letters WHERE queue_id = ? AND {}"
NOT_IN_FLIGHT = "NOT (receive_count > 0 AND +visible_at > ?)"
# Where a message of a dead-letter queue goes back to: the queue that moved it here, or the one a
# trigger dead-lettered it from (its SOURCE_ATTRIBUTE); then without the attributes that added.
ADDED = [f"'$.\"{name}\"'" for name in (SOURCE_ATTRIBUTE, *ERROR_ATTRIBUTES)]  # JSON paths
ORIGIN = f"coalesce(source, json_extract(attributes, {ADDED[0]}))"
AS_SENT = f"""CASE WHEN source IS NULL
    THEN nullif(json_remove(attributes, {", ".join(ADDED)}), json_object()) ELSE attributes END"""
MOVABLE = f"""SELECT seq, id, {ORIGIN} AS source FROM messages WHERE queue_id = ?
    AND {ORIGIN} IS NOT NULL AND {NOT_IN_FLIGHT}"""
# (dead_receives is null in a message moved by an earlier version, which did not keep it)
MOVED_HERE = f"""SELECT id, body, attributes, grp, dedup_id, traceparent, source, last_error,
    sent_at, coalesce(dead_receives, receive_count) AS receive_count, visible_at AS dead_at
    FROM messages
    WHERE queue_id = ? AND source IS NOT NULL AND {NOT_IN_FLIGHT} ORDER BY seq LIMIT ?"""
TO_SOURCE = f"""INSERT INTO messages ({NEW_COLUMNS})
    SELECT ? + row_number() OVER (ORDER BY seq), ?, id, body, {AS_SENT}, grp, dedup_id,
        traceparent, ?, ? FROM messages WHERE +queue_id = ? AND seq IN ({{}}) AND {NOT_IN_FLIGHT}"""
DROP_MOVED = f"DELETE FROM messages WHERE +queue_id = ? AND seq IN ({{}}) AND {NOT_IN_FLIGHT}"
PURGE = ("DELETE FROM messages WHERE queue_id = ?", "DELETE FROM fifo_groups WHERE queue_id = ?")
DROP_QUEUE = (
    *PURGE,
    "DELETE FROM dead_letters WHERE queue_id = ?",
    "DELETE FROM dedup WHERE queue_id = ?",
    "DELETE FROM queues WHERE id = ?",
)

MIN_NAP = 0.01  # s: a long poll never sleeps less while waiting for a message to turn visible
MAX_GROUP_PAGE = 128  # FIFO groups read at once (SQLite allows 500 terms in a UNION ALL)

_attributes = msgspec.json.Decoder(dict[str, str])
_RECEIPT = re.compile(r"([0-9]{1,19}):([0-9a-f]{16})")
Step = tuple[str, Params]


def _marks(count: int, width: int = 1) -> str:
    """`?, ?, ?` (or `(?, ?), (?, ?)` when width > 1) for `count` values or rows."""
    if width == 1:
        return ", ".join("?" * count)
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


def _encode_attributes(attributes: Mapping[str, str]) -> str | None:
    return msgspec.json.encode(attributes).decode() if attributes else None


def _decode_attributes(text: str | None) -> dict[str, str]:
    return _attributes.decode(text) if text else {}


def _dead_letters(rows: list[sqlite3.Row]) -> list[DeadLetter]:
    return [
        DeadLetter(
            id=row["id"], body=row["body"], attributes=_decode_attributes(row["attributes"]),
            receive_count=row["receive_count"], sent_at=row["sent_at"],
            dead_at=row["dead_at"], source=row["source"], group=row["grp"],
            dedup_id=row["dedup_id"], traceparent=row["traceparent"],
            last_error=row["last_error"],
        )
        for row in rows
    ]  # fmt: skip


class _New(NamedTuple):
    """A new message's columns, in NEW_COLUMNS order."""

    seq: int
    queue_id: int
    id: str
    body: str
    attributes: str | None
    grp: str | None
    dedup_id: str | None
    traceparent: str | None
    sent_at: float
    visible_at: float


@dataclass(slots=True)
class _Queue:
    id: int
    spec: QueueSpec


@dataclass(slots=True)
class _Plan:
    """One receive's decisions, candidate by candidate in delivery order."""

    wanted: int
    now: float
    expired_before: float
    max_receives: int | None
    take: list[sqlite3.Row] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    dead_rows: list[sqlite3.Row] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return len(self.take) >= self.wanted

    @property
    def missing(self) -> int:
        return self.wanted - len(self.take)

    def offer(self, row: sqlite3.Row) -> bool:
        """Take, drop or dead-letter the next candidate; False when it is not visible yet (a
        FIFO group stops there)."""
        if row["sent_at"] <= self.expired_before:
            self.expired.append(row["seq"])
        elif row["visible_at"] > self.now:
            return False
        elif self.max_receives is not None and row["receive_count"] >= self.max_receives:
            self.dead.append(row["seq"])
            self.dead_rows.append(row)
        else:
            self.take.append(row)
        return True


@dataclass(slots=True)
class _Receipt:
    index: int
    seq: int
    token: str


class EmbeddedQueues:
    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = Database(data_dir / "queue.db", SCHEMA, fsync=fsync)
        columns = {row["name"] for row in self._db.read_now("PRAGMA table_info(messages)")}
        if "dead_receives" not in columns:  # a data dir of an earlier version
            self._db.submit("ALTER TABLE messages ADD COLUMN dead_receives INTEGER")
            self._db.flush()
        self._clock = clock
        self._queues = {
            row["name"]: _Queue(row["id"], QueueSpec.model_validate_json(row["spec"]))
            for row in self._db.read_now("SELECT id, name, spec FROM queues")
        }
        last = self._db.read_now("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        self._last_seq: int = last[0]["seq"] if last else 0
        self._locks: dict[str, asyncio.Lock] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self._closed = False
        self._dead_letter_listeners: list[Callable[[QueueDeadLettered], None]] = []

    # Lifecycle

    async def create(self, spec: QueueSpec) -> None:
        self._check_open()
        existing = self._queues.get(spec.name)
        if existing is not None and existing.spec.fifo != spec.fifo:
            raise Conflict(f"queue {spec.name!r} exists as a {_kind(existing.spec)} queue")
        self._check_dead_letter_kinds(spec)
        await self._db.write(UPSERT_QUEUE, (spec.name, spec.model_dump_json()))
        rows = await self._db.read("SELECT id FROM queues WHERE name = ?", (spec.name,))
        self._queues[spec.name] = _Queue(rows[0]["id"], spec)

    def _check_dead_letter_kinds(self, spec: QueueSpec) -> None:
        """SQS: a FIFO queue's dead-letter queue is FIFO, a standard one's is standard."""
        pairs = [(q.spec, spec) for q in self._queues.values() if q.spec.dead_letter == spec.name]
        target = self._queues.get(spec.dead_letter) if spec.dead_letter else None
        if target is not None:
            pairs.append((spec, target.spec))
        for source, dead in pairs:
            if source.fifo != dead.fifo:
                raise InvalidRequest(
                    f"queue {source.name!r} is {_kind(source)}, its dead-letter queue "
                    f"{dead.name!r} is {_kind(dead)}: both must be of the same kind"
                )

    async def delete(self, name: str) -> None:
        self._check_open()
        queue = self._queues.pop(name, None)
        if queue is None:
            return
        await self._db.transaction([(sql, (queue.id,)) for sql in DROP_QUEUE])
        self._notify(name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in list(self._signals):
            self._notify(name)
        await asyncio.to_thread(self._db.close)

    def _check_open(self) -> None:
        if self._closed:
            raise PlatformUnavailable("the queue service is closed")

    def _queue(self, name: str) -> _Queue:
        self._check_open()
        queue = self._queues.get(name)
        if queue is None:
            raise NotFound(f"no queue named {name!r}")
        return queue

    def _reserve(self, count: int) -> int:
        """Hand out `count` sequence numbers; returns the one before the first. Assigned on
        the event loop just before the write is queued, so they commit in order."""
        base = self._last_seq
        self._last_seq += count
        return base

    # Sending

    async def send(
        self,
        name: str,
        body: str,
        *,
        delay: float | None = None,
        attributes: Mapping[str, str] | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
        traceparent: str | None = None,
    ) -> SendResult:
        entry = SendEntry(
            body=body, delay=delay, attributes=dict(attributes or {}), group=group,
            dedup_id=dedup_id, traceparent=traceparent,
        )  # fmt: skip
        queue = self._queue(name)
        row = self._row(queue, entry, self._clock())
        return (await self._insert(queue, [row]))[0]

    async def send_batch(self, name: str, entries: Sequence[SendEntry]) -> SendBatchResult:
        queue = self._queue(name)
        check_count("entries", len(entries), MAX_BATCH)
        now = self._clock()
        rows: list[_New] = []
        good: list[int] = []
        failed: list[EntryError] = []
        for index, entry in enumerate(entries):
            try:
                rows.append(self._row(queue, entry, now))
            except NimbusError as error:
                failed.append(_entry_error(index, error))
            else:
                good.append(index)
        sent: list[SendResult | None] = [None] * len(entries)
        for index, result in zip(good, await self._insert(queue, rows), strict=True):
            sent[index] = result
        return SendBatchResult(sent=sent, failed=failed)

    def _row(self, queue: _Queue, entry: SendEntry, now: float) -> _New:
        delay, dedup_id = check_entry(queue.spec, entry)
        attributes = _encode_attributes(entry.attributes)
        return _New(
            0, queue.id, new_id(), entry.body, attributes, entry.group, dedup_id,
            entry.traceparent, now, now + delay,
        )  # fmt: skip

    async def _insert(self, queue: _Queue, rows: list[_New]) -> list[SendResult]:
        if not rows:
            return []
        base = self._reserve(len(rows))
        rows = [row._replace(seq=base + n) for n, row in enumerate(rows, 1)]
        values = [value for row in rows for value in row]
        marks = _marks(len(rows), len(_New._fields))
        if not queue.spec.fifo:
            await self._db.write(f"{INSERT_MESSAGES} {marks}", values)
            self._notify(queue.spec.name)
            return [SendResult(id=row.id) for row in rows]
        stored = await self._insert_fifo(queue, rows, values, marks)
        results = [SendResult(id=row.id, sequence=row.seq) for row in rows]
        if stored == len(rows):
            return results
        originals = await self._originals(queue, {str(row.dedup_id) for row in rows})
        return [
            originals.get(str(row.dedup_id), result)
            for row, result in zip(rows, results, strict=True)
        ]

    async def _insert_fifo(
        self, queue: _Queue, rows: list[_New], values: Params, marks: str
    ) -> int:
        """Store the messages whose dedup id has no live earlier message; returns how many."""
        now = rows[0].sent_at
        expires = now + queue.spec.dedup_window
        dedup = [v for row in rows for v in (queue.id, row.dedup_id, row.id, row.seq, expires)]
        steps: list[Step] = [
            (UPSERT_DEDUP.format(_marks(len(rows), 5)), [*dedup, now]),
            (INSERT_DEDUPLICATED.format(marks), values),
            (GROUPS_ADDED, (rows[0].seq, rows[-1].seq, queue.id)),
        ]
        stored = (await self._db.transaction(steps))[1]
        self._notify(queue.spec.name)
        return stored

    async def _originals(self, queue: _Queue, dedup_ids: set[str]) -> dict[str, SendResult]:
        """The message each dedup id stands for now (a duplicate answers with it)."""
        rows = await self._db.read(
            f"SELECT dedup_id, message_id, seq FROM dedup WHERE queue_id = ? "
            f"AND dedup_id IN ({_marks(len(dedup_ids))})",
            [queue.id, *dedup_ids],
        )
        return {r["dedup_id"]: SendResult(id=r["message_id"], sequence=r["seq"]) for r in rows}

    # Receiving

    async def receive(
        self,
        name: str,
        max_messages: int = 1,
        *,
        visibility_timeout: float | None = None,
        wait: float = 0.0,
    ) -> list[Message]:
        self._queue(name)
        check_receive(max_messages, visibility_timeout, wait)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            signal = self._signal(name)  # before reading: a send after the read sets it
            messages = await self._receive_now(name, max_messages, visibility_timeout)
            left = deadline - loop.time()
            if messages or left <= 0:
                return messages
            await self._nap(name, signal, left)

    async def _nap(self, name: str, signal: asyncio.Event, left: float) -> None:
        """Until something may have turned visible: a signal (send, release, redrive ...), or
        the moment the next delayed or in-flight message turns visible; at most `left` s."""
        queue = self._queue(name)
        now = self._clock()
        due = (await self._db.read(NEXT_VISIBLE, (queue.id, now)))[0][0]
        if due is not None:
            left = min(left, max(due - now, MIN_NAP))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), left)

    def _signal(self, name: str) -> asyncio.Event:
        signal = self._signals.get(name)
        if signal is None:
            signal = self._signals[name] = asyncio.Event()
        return signal

    def _notify(self, name: str) -> None:
        """Wake the long polls of queue `name`; called after the commit."""
        signal = self._signals.pop(name, None)
        if signal is not None:
            signal.set()

    async def _receive_now(
        self, name: str, wanted: int, visibility_timeout: float | None
    ) -> list[Message]:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            queue = self._queue(name)
            spec = queue.spec
            now = self._clock()
            plan = _Plan(wanted, now, now - spec.retention, spec.max_receives)
            if spec.fifo:
                await self._plan_fifo(queue, plan)
            else:
                await self._plan_standard(queue, plan)
            timeout = spec.visibility_timeout if visibility_timeout is None else visibility_timeout
            return await self._claim(queue, plan, now + timeout)

    async def _plan_standard(self, queue: _Queue, plan: _Plan) -> None:
        limit = plan.wanted
        rows = await self._db.read(STANDARD_FIRST, (queue.id, plan.now, limit))
        while True:
            for row in rows:
                plan.offer(row)
            if plan.full or len(rows) < limit:
                return
            limit, last = plan.missing, rows[-1]
            after = (queue.id, plan.now, last["visible_at"], last["seq"], limit)
            rows = await self._db.read(STANDARD_NEXT, after)

    async def _plan_fifo(self, queue: _Queue, plan: _Plan) -> None:
        """Free groups (none of their messages in flight), oldest head first, each walked in
        order until a message is not visible yet. Pages of groups grow: one big group usually
        fills a receive, many small ones take a few pages."""
        after, page = 0, 1
        while not plan.full:
            groups = await self._db.read(FREE_GROUPS, (queue.id, after, plan.now, page))
            await self._walk_groups(queue, plan, [(g["grp"], g["head_seq"]) for g in groups])
            if len(groups) < page:
                return
            after, page = groups[-1]["head_seq"], min(2 * page, MAX_GROUP_PAGE)

    async def _walk_groups(self, queue: _Queue, plan: _Plan, groups: list[tuple[str, int]]) -> None:
        if not groups:
            return
        page_limit = min(plan.missing, max(1, MAX_RECEIVE // len(groups)))  # rows at most
        fetched = await self._group_rows(
            queue, [(grp, head - 1) for grp, head in groups], page_limit
        )
        for grp, _ in groups:
            rows, limit = fetched.get(grp, []), page_limit
            while _walk_group(plan, rows) and len(rows) == limit:
                limit = plan.missing
                more = await self._group_rows(queue, [(grp, rows[-1]["seq"])], limit)
                rows = more.get(grp, [])
            if plan.full:
                return

    async def _group_rows(
        self, queue: _Queue, groups: list[tuple[str, int]], limit: int
    ) -> dict[str, list[sqlite3.Row]]:
        """Up to `limit` messages of each group after its sequence number, in order."""
        sql = " UNION ALL ".join([GROUP_ROWS] * len(groups))
        params = [v for grp, after in groups for v in (queue.id, grp, after, limit)]
        by_group: dict[str, list[sqlite3.Row]] = {}
        for row in await self._db.read(sql, params):
            by_group.setdefault(row["grp"], []).append(row)
        for rows in by_group.values():
            rows.sort(key=lambda row: int(row["seq"]))
        return by_group

    async def _claim(self, queue: _Queue, plan: _Plan, visible_at: float) -> list[Message]:
        """One transaction: drop the expired, dead-letter the exhausted, take the rest."""
        if not (plan.take or plan.dead or plan.expired):
            return []
        steps: list[Step] = []
        if plan.expired:
            marks = _marks(len(plan.expired))
            steps.append(
                (DROP_EXPIRED.format(marks), [queue.id, *plan.expired, plan.expired_before])
            )
        target = self._dead_letter(queue, plan, steps) if plan.dead else None
        if queue.spec.fifo and (plan.expired or plan.dead):
            steps.extend(_heads_removed(queue.id, plan.expired + plan.dead))
        token = f"{random.getrandbits(64):016x}"
        seqs = [row["seq"] for row in plan.take]
        if seqs:
            params = [token, visible_at, plan.now, queue.id, *seqs, plan.now]
            steps.append((CLAIM.format(_marks(len(seqs))), params))
        counts = await self._db.transaction(steps)
        if target is not None:
            self._notify(target)
        if queue.spec.fifo and (plan.expired or plan.dead):
            self._notify(queue.spec.name)  # their groups' next messages may be ready now
        self._report_dead_letters(queue, target, plan.dead_rows)
        taken = plan.take
        if seqs and counts[-1] < len(seqs):  # some went meanwhile (deleted, released, purged)
            claimed = await self._db.read(CLAIMED.format(_marks(len(seqs))), [token, *seqs])
            still = {row["seq"] for row in claimed}
            taken = [row for row in taken if row["seq"] in still]
        return [_message(row, token, plan.now, queue.spec.fifo) for row in taken]

    def on_dead_letter(self, listener: Callable[[QueueDeadLettered], None]) -> None:
        self._dead_letter_listeners.append(listener)

    def _report_dead_letters(
        self, queue: _Queue, target: str | None, rows: list[sqlite3.Row]
    ) -> None:
        for row in rows:
            moved = QueueDeadLettered(
                queue=queue.spec.name, target=target, id=row["id"],
                receive_count=row["receive_count"], last_error=row["last_error"],
            )  # fmt: skip
            for listener in self._dead_letter_listeners:
                listener(moved)

    def _dead_letter(self, queue: _Queue, plan: _Plan, steps: list[Step]) -> str | None:
        """Add the steps moving the exhausted messages to the dead-letter queue, or to the
        queue's own area when it has none (or it does not exist); returns the queue's name."""
        spec = queue.spec
        marks = _marks(len(plan.dead))
        guard = [queue.id, *plan.dead, spec.max_receives, plan.now]
        target = self._queues.get(spec.dead_letter) if spec.dead_letter else None
        if target is None:
            steps.append((TO_DEAD_LETTERS.format(marks), [spec.name, plan.now, *guard]))
            steps.append((DROP_EXHAUSTED.format(marks), guard))
            return None
        base = self._reserve(len(plan.dead))
        moved = [base, target.id, plan.now, spec.name, *guard]
        steps.append((TO_DEAD_LETTER_QUEUE.format(marks), moved))
        if target.spec.fifo:
            steps.append((GROUPS_ADDED, (base + 1, base + len(plan.dead), target.id)))
        steps.append((DROP_EXHAUSTED.format(marks), guard))
        return target.spec.name

    # Acknowledging

    async def delete_message(self, name: str, receipt: str) -> None:
        errors = await self._delete(self._queue(name), [receipt])
        if errors:
            raise errors[0]

    async def delete_batch(self, name: str, receipts: Sequence[str]) -> DeleteBatchResult:
        queue = self._queue(name)
        check_count("receipts", len(receipts), MAX_RECEIVE)
        errors = await self._delete(queue, receipts)
        return DeleteBatchResult(
            deleted=[index for index in range(len(receipts)) if index not in errors],
            failed=[_entry_error(index, error) for index, error in sorted(errors.items())],
        )

    async def _delete(self, queue: _Queue, receipts: Sequence[str]) -> dict[int, NimbusError]:
        errors: dict[int, NimbusError] = {}
        parsed: list[_Receipt] = []
        for index, receipt in enumerate(receipts):
            try:
                parsed.append(_parse(queue.spec.name, index, receipt))
            except InvalidRequest as error:
                errors[index] = error
        if not parsed:
            return errors
        now = self._clock()
        seqs = [receipt.seq for receipt in parsed]
        pairs = [v for receipt in parsed for v in (receipt.seq, receipt.token)]
        # FIFO: an expired receipt no longer deletes (the group may have moved on), as in SQS
        in_flight_after = now if queue.spec.fifo else -math.inf
        steps: list[Step] = [
            (
                DELETE_RECEIPTS.format(_marks(len(seqs)), _marks(len(parsed), 2)),
                [*seqs, queue.id, *pairs, in_flight_after],
            )
        ]
        if queue.spec.fifo:
            steps.extend(_heads_removed(queue.id, seqs))
        deleted = (await self._db.transaction(steps))[0]
        if queue.spec.fifo and deleted:
            self._notify(queue.spec.name)  # their groups' next messages are ready now
        if deleted < len(parsed):
            errors.update(await self._diagnose(queue, parsed, now))
        return errors

    async def _diagnose(
        self, queue: _Queue, receipts: list[_Receipt], now: float
    ) -> dict[int, NimbusError]:
        """Why receipts did not work: a message gone is fine, one still there is not."""
        seqs = [receipt.seq for receipt in receipts]
        state = await self._db.read(RECEIPT_STATE.format(_marks(len(seqs))), [queue.id, *seqs])
        rows = {row["seq"]: row for row in state}
        return {
            receipt.index: _receipt_error(queue.spec.name, rows[receipt.seq], receipt.token)
            for receipt in receipts
            if receipt.seq in rows
        }

    async def _receipt_problem(self, queue: _Queue, receipt: _Receipt) -> NimbusError:
        rows = await self._db.read(RECEIPT_STATE.format("?"), (queue.id, receipt.seq))
        if not rows:
            return NotFound(f"queue {queue.spec.name!r}: the message of this receipt is gone")
        return _receipt_error(queue.spec.name, rows[0], receipt.token)

    async def change_visibility(self, name: str, receipt: str, timeout: float) -> None:
        queue = self._queue(name)
        check_seconds("timeout", timeout, MAX_VISIBILITY)
        parsed = _parse(name, 0, receipt)
        now = self._clock()
        params = (now + timeout, parsed.seq, queue.id, parsed.token, now)
        if not await self._db.write(CHANGE_VISIBILITY, params):
            raise await self._receipt_problem(queue, parsed)
        self._notify(name)

    async def release(
        self, name: str, receipt: str, *, error: str | None = None, delay: float = 0.0
    ) -> None:
        queue = self._queue(name)
        check_seconds("delay", delay, MAX_VISIBILITY)
        parsed = _parse(name, 0, receipt)
        now = self._clock()
        text = None if error is None else error[:MAX_ERROR_CHARS]
        params = (now + delay, text, parsed.seq, queue.id, parsed.token)
        if not await self._db.write(RELEASE, params):
            raise await self._receipt_problem(queue, parsed)
        self._notify(name)

    # Looking, dead letters and housekeeping

    async def stats(self, name: str) -> QueueStats:
        queue = self._queue(name)
        now = self._clock()
        row = (await self._db.read(STATS, (now, queue.id)))[0]
        visible, in_flight, delayed, oldest, dead = row
        age = 0.0 if oldest is None else max(0.0, now - oldest)
        return QueueStats(
            visible=visible, in_flight=in_flight, delayed=delayed, dead_letters=dead,
            oldest_age=age,
        )  # fmt: skip

    async def dead_letters(self, name: str, limit: int = 100) -> list[DeadLetter]:
        queue = self._queue(name)
        check_count("dead letters asked for", limit, MAX_RECEIVE)
        return _dead_letters(await self._db.read(DEAD_LETTERS, (queue.id, limit)))

    async def moved_here(self, name: str, limit: int = 100) -> list[DeadLetter]:
        queue = self._queue(name)
        check_count("messages asked for", limit, MAX_RECEIVE)
        return _dead_letters(await self._db.read(MOVED_HERE, (queue.id, self._clock(), limit)))

    async def redrive(self, name: str, ids: Sequence[str] | None = None) -> int:
        queue = self._queue(name)
        if ids is None:
            bounds = "SELECT count(*), max(dead_seq) FROM dead_letters WHERE queue_id = ?"
            count, last = (await self._db.read(bounds, (queue.id,)))[0]
            where, params = "dead_seq <= ?", [last]
        else:
            seqs = await self._dead_seqs(queue, ids)
            count, where, params = len(seqs), f"dead_seq IN ({_marks(len(seqs))})", seqs
        if not count:
            return 0
        now = self._clock()
        base = self._reserve(count)
        steps: list[Step] = [
            (REDRIVE.format(where), [base, now, now + queue.spec.delay, queue.id, *params])
        ]
        if queue.spec.fifo:
            steps.append((GROUPS_ADDED, (base + 1, base + count, queue.id)))
        steps.append((DROP_REDRIVEN.format(where), [queue.id, *params]))
        moved = (await self._db.transaction(steps))[0]
        self._notify(name)
        return moved

    async def _dead_seqs(self, queue: _Queue, ids: Sequence[str]) -> list[int]:
        wanted = list(dict.fromkeys(ids))
        check_count("ids", len(wanted), MAX_RECEIVE)
        rows = await self._db.read(
            f"SELECT id, dead_seq FROM dead_letters WHERE queue_id = ? "
            f"AND id IN ({_marks(len(wanted))})",
            [queue.id, *wanted],
        )
        _check_found(queue.spec.name, wanted, {row["id"] for row in rows}, "dead letter")
        return [row["dead_seq"] for row in rows]

    async def redrive_to_source(self, name: str, ids: Sequence[str] | None = None) -> int:
        queue = self._queue(name)
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            check_count("ids", len(wanted), MAX_RECEIVE)
            where = f"AND id IN ({_marks(len(wanted))})"
            rows = await self._db.read(f"{MOVABLE} {where}", [queue.id, self._clock(), *wanted])
            found = {row["id"] for row in rows}
            _check_found(name, wanted, found, "dead-lettered message not in flight")
            return await self._move_to_sources(queue, rows)
        moved, after = 0, 0
        page = f"{MOVABLE} AND seq > ? ORDER BY seq LIMIT {MAX_RECEIVE}"
        while True:
            rows = await self._db.read(page, [queue.id, self._clock(), after])
            moved += await self._move_to_sources(queue, rows)
            if len(rows) < MAX_RECEIVE:
                return moved
            after = rows[-1]["seq"]

    async def _move_to_sources(self, queue: _Queue, rows: list[sqlite3.Row]) -> int:
        """Move these messages to the queues they came from, in one transaction; one whose
        source queue no longer exists stays."""
        by_target: dict[str, list[int]] = {}
        for row in rows:
            if row["source"] in self._queues:
                by_target.setdefault(row["source"], []).append(row["seq"])
        if not by_target:
            return 0
        now = self._clock()
        steps: list[Step] = []
        for target, seqs in by_target.items():
            steps.extend(self._moved_to(self._queues[target], queue, seqs, now))
        seqs = [seq for group in by_target.values() for seq in group]
        dropped = len(steps)
        steps.append((DROP_MOVED.format(_marks(len(seqs))), [queue.id, *seqs, now]))
        if queue.spec.fifo:
            steps.extend(_heads_removed(queue.id, seqs))
        counts = await self._db.transaction(steps)
        for target in [*by_target, *([queue.spec.name] if queue.spec.fifo else [])]:
            self._notify(target)  # and a FIFO source's groups, which the move unblocked
        return counts[dropped]

    def _moved_to(self, target: _Queue, queue: _Queue, seqs: list[int], now: float) -> list[Step]:
        base = self._reserve(len(seqs))
        visible_at = now + target.spec.delay
        params = [base, target.id, now, visible_at, queue.id, *seqs, now]
        steps: list[Step] = [(TO_SOURCE.format(_marks(len(seqs))), params)]
        if target.spec.fifo:
            steps.append((GROUPS_ADDED, (base + 1, base + len(seqs), target.id)))
        return steps

    async def purge(self, name: str) -> None:
        queue = self._queue(name)
        await self._db.transaction([(sql, (queue.id,)) for sql in PURGE])

    async def sweep(self, now: float) -> int:
        self._check_open()
        steps: list[Step] = []
        counted: list[int] = []
        for queue in self._queues.values():
            cutoff = now - queue.spec.retention
            counted += [len(steps), len(steps) + 1]
            steps.append(
                ("DELETE FROM messages WHERE queue_id = ? AND sent_at <= ?", (queue.id, cutoff))
            )
            steps.append(
                ("DELETE FROM dead_letters WHERE queue_id = ? AND dead_at <= ?", (queue.id, cutoff))
            )
            if queue.spec.fifo:
                steps += [(HEADS_REFRESHED, (queue.id,)), (EMPTY_GROUPS, (queue.id,))]
        steps.append(("DELETE FROM dedup WHERE expires_at <= ?", (now,)))
        counts = await self._db.transaction(steps)
        return sum(counts[index] for index in counted)


def _walk_group(plan: _Plan, rows: list[sqlite3.Row]) -> bool:
    """Offer a group's messages in order; True when all were offered and more may follow."""
    for row in rows:
        if plan.full or not plan.offer(row):
            return False
    return not plan.full


def _heads_removed(queue_id: int, seqs: list[int]) -> list[Step]:
    """After messages `seqs` left a FIFO queue: their groups' new heads, empty groups gone."""
    return [
        (HEADS_REMOVED.format(_marks(len(seqs))), [queue_id, *seqs]),
        (EMPTY_GROUPS, (queue_id,)),
    ]


def _message(row: sqlite3.Row, token: str, now: float, fifo: bool) -> Message:
    first = row["first_received_at"]
    return Message(
        id=row["id"], body=row["body"], attributes=_decode_attributes(row["attributes"]),
        receipt=f"{row['seq']}:{token}", receive_count=row["receive_count"] + 1,
        sent_at=row["sent_at"], first_received_at=now if first is None else first,
        group=row["grp"], dedup_id=row["dedup_id"], sequence=row["seq"] if fifo else None,
        traceparent=row["traceparent"], last_error=row["last_error"], source=row["source"],
    )  # fmt: skip


def _parse(queue: str, index: int, receipt: str) -> _Receipt:
    match = _RECEIPT.fullmatch(receipt)
    if match is None or int(match[1]) >= 2**63:  # SQLite's integers are 64-bit
        raise InvalidRequest(f"queue {queue!r}: {receipt!r} is not a receipt of this platform")
    return _Receipt(index, int(match[1]), match[2])


def _receipt_error(queue: str, row: sqlite3.Row, token: str) -> NimbusError:
    if row["receipt"] != token:
        return Conflict(
            f"queue {queue!r}: the receipt is stale: the message was received again since"
        )
    return Conflict(
        f"queue {queue!r}: the receipt has expired: the message's visibility timeout ran out"
    )


def _check_found(queue: str, wanted: Iterable[str], found: set[str], what: str) -> None:
    missing = [item for item in wanted if item not in found]
    if missing:
        shown = ", ".join(repr(item) for item in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(f"queue {queue!r} has no {what} with id {shown}{more}")


def _entry_error(index: int, error: NimbusError) -> EntryError:
    return EntryError(index=index, error=type(error).__name__, message=error.message)


def _kind(spec: QueueSpec) -> str:
    return "FIFO" if spec.fifo else "standard"
