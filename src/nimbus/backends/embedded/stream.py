"""Streams in one SQLite file: records keyed by one sequence number shared by every stream.

Sequence numbers are assigned on the event loop in the order puts arrive, and the writer thread
commits in that same order, so no record ever appears behind one a reader has already passed:
reading on after the last sequence seen misses nothing. The last assigned number is written with
every put, so none is reused after a restart, even when retention has trimmed every record.
Arrival times never decrease along sequence numbers (a clock stepping back is clamped), so
retention trims a prefix of each partition; `trimmed_through`, the last sequence trimmed from a
partition, tells a reader that records it had not read yet are gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nimbus.errors import Conflict, NotFound, PlatformUnavailable
from nimbus.ops.database import Database, Params, Rows
from nimbus.services.stream import (
    READ_BYTES,
    Entry,
    PartitionInfo,
    PutResult,
    ReadResult,
    Record,
    Start,
    StreamInfo,
    check_after,
    check_batch,
    check_limit,
    check_partition,
    check_record,
    check_start,
    partition_for,
)
from nimbus.spec.resources import StreamSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, retention REAL NOT NULL,
    max_record_bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    stream TEXT NOT NULL, partition INTEGER NOT NULL, trimmed_through INTEGER NOT NULL,
    PRIMARY KEY (stream, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    sequence INTEGER PRIMARY KEY, stream TEXT NOT NULL, partition INTEGER NOT NULL,
    key TEXT NOT NULL, data BLOB NOT NULL, arrival REAL NOT NULL, traceparent TEXT);
CREATE INDEX IF NOT EXISTS records_by_partition ON records (stream, partition, sequence);
CREATE INDEX IF NOT EXISTS records_by_arrival ON records (stream, partition, arrival);
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0), last_sequence INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES (0, 0);
"""

UPSERT_STREAM = """INSERT INTO streams VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE
    SET retention = excluded.retention, max_record_bytes = excluded.max_record_bytes"""
INSERT_PARTITIONS = "INSERT OR IGNORE INTO partitions VALUES"
INSERT_RECORDS = "INSERT INTO records VALUES"
SAVE_SEQUENCE = "UPDATE meta SET last_sequence = ? WHERE id = 0"
# One statement, so the trim mark and the records come from the same snapshot.
READ = """SELECT p.trimmed_through, r.sequence, r.key, r.data, r.arrival, r.traceparent
    FROM partitions p LEFT JOIN records r
        ON r.stream = p.stream AND r.partition = p.partition AND r.sequence > ?
        AND r.sequence <= ?
    WHERE p.stream = ? AND p.partition = ? ORDER BY r.sequence LIMIT ?"""
SIZES = """SELECT sequence, length(data) + length(key) FROM records
    WHERE stream = ? AND partition = ? AND sequence > ? ORDER BY sequence LIMIT ?"""
TRIMMED_THROUGH = "SELECT trimmed_through FROM partitions WHERE stream = ? AND partition = ?"
FIRST_AT = """SELECT sequence FROM records WHERE stream = ? AND partition = ? AND arrival >= ?
    ORDER BY arrival, sequence LIMIT 1"""
FIRST_AFTER = """SELECT arrival FROM records WHERE stream = ? AND partition = ? AND sequence > ?
    ORDER BY sequence LIMIT 1"""
INFO = """SELECT p.partition, MIN(r.sequence), MAX(r.sequence), COUNT(r.sequence)
    FROM partitions p LEFT JOIN records r ON r.stream = p.stream AND r.partition = p.partition
    WHERE p.stream = ? GROUP BY p.partition ORDER BY p.partition"""
PARTITION_MARKS = """SELECT p.stream, p.partition, p.trimmed_through, COALESCE((SELECT
    MAX(r.sequence) FROM records r WHERE r.stream = p.stream AND r.partition = p.partition),
    p.trimmed_through) FROM partitions p"""
MARK_TRIMMED = """UPDATE partitions SET trimmed_through = COALESCE((SELECT r.sequence FROM records r
    WHERE r.stream = partitions.stream AND r.partition = partitions.partition AND r.arrival < ?
    ORDER BY r.arrival DESC, r.sequence DESC LIMIT 1), trimmed_through) WHERE stream = ?"""
DELETE_TRIMMED = """DELETE FROM records WHERE stream = ? AND arrival < ?
    AND partition IN (SELECT partition FROM partitions WHERE stream = ?)"""
DELETE_STREAM = (
    "DELETE FROM records WHERE stream = ?",
    "DELETE FROM partitions WHERE stream = ?",
    "DELETE FROM streams WHERE name = ?",
)


@dataclass(slots=True)
class _Stream:
    """A stream's config, and per partition what long polls compare their position with."""

    spec: StreamSpec
    last: list[int] = field(init=False)
    """The last committed sequence of each partition (0: none yet)."""
    trimmed: list[int] = field(init=False)
    """The last sequence trimmed from each partition (0: none yet)."""
    committed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.last = [0] * self.spec.partitions
        self.trimmed = [0] * self.spec.partitions

    def has_after(self, partition: int, after: int) -> bool:
        """Whether a retained record follows `after` (trimmed ones do not count)."""
        return self.last[partition] > max(after, self.trimmed[partition])

    def notify(self) -> None:
        """Wake every long poll of this stream: they look again at `last`."""
        self.committed.set()
        self.committed = asyncio.Event()


class EmbeddedStreams:
    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = Database(data_dir / "stream.db", SCHEMA, fsync=fsync)
        self._clock = clock
        self._lifecycle = asyncio.Lock()  # create and delete, one at a time
        self._closed = False
        self._streams: dict[str, _Stream] = {}
        self._sequence = 0  # the last sequence number assigned
        self._arrival = 0.0  # the last arrival time given
        self._load()

    def _load(self) -> None:
        """The state a restart resumes from (once, before the platform serves anything)."""
        read = self.db.read_now
        for row in read("SELECT * FROM streams"):
            spec = StreamSpec(**dict(row))
            self._streams[spec.name] = _Stream(spec)
        self._set_marks(read(PARTITION_MARKS))
        self._sequence = read("SELECT last_sequence FROM meta")[0][0]
        newest = read("SELECT arrival FROM records ORDER BY sequence DESC LIMIT 1")
        self._arrival = newest[0][0] if newest else 0.0

    # lifecycle
    async def create(self, spec: StreamSpec) -> None:
        async with self._lifecycle:
            stream = self._open().get(spec.name)
            if stream is not None and stream.spec.partitions != spec.partitions:
                raise Conflict(
                    f"stream {spec.name!r} has {stream.spec.partitions} partitions, not "
                    f"{spec.partitions}: changing the partition count (resharding) is not "
                    "supported; delete the stream and create it again"
                )
            row = (spec.name, spec.partitions, spec.retention, spec.max_record_bytes)
            partitions = [(spec.name, partition, 0) for partition in range(spec.partitions)]
            await self.db.transaction([(UPSERT_STREAM, row), Rows(INSERT_PARTITIONS, partitions)])
            if stream is None:
                self._streams[spec.name] = _Stream(spec)
            else:
                stream.spec = spec

    async def delete(self, name: str) -> None:
        async with self._lifecycle:
            stream = self._open().pop(name, None)
            if stream is None:
                return
            stream.notify()
            await self.db.transaction([(sql, (name,)) for sql in DELETE_STREAM])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self._streams.values():
            stream.notify()
        await asyncio.to_thread(self.db.close)

    # producers
    async def put(
        self, name: str, key: str, data: bytes, *, traceparent: str | None = None
    ) -> PutResult:
        stream = self._stream(name)
        check_record(stream.spec, key, data)
        return (await self._append(stream, [(key, data, traceparent)]))[0]

    async def put_batch(self, name: str, entries: Sequence[Entry]) -> list[PutResult]:
        stream = self._stream(name)
        check_batch(stream.spec, entries)
        return await self._append(stream, entries) if entries else []

    async def _append(self, stream: _Stream, entries: Sequence[Entry]) -> list[PutResult]:
        """Number the records and queue their commit before anything else can run (no await
        in between), so commits follow sequence order. A caller cancelled while it waits
        wakes no long poll: its records are found by the next put's wake-up or poll timeout."""
        name, partitions = stream.spec.name, stream.spec.partitions
        arrival = self._arrival = max(self._clock(), self._arrival)
        first = self._sequence + 1
        last = self._sequence = self._sequence + len(entries)
        results = [
            PutResult(partition=partition_for(key, partitions), sequence=sequence)
            for sequence, (key, _, _) in enumerate(entries, start=first)
        ]
        rows = [
            (result.sequence, name, result.partition, key, data, arrival, traceparent)
            for result, (key, data, traceparent) in zip(results, entries, strict=True)
        ]
        await self.db.transaction([Rows(INSERT_RECORDS, rows), (SAVE_SEQUENCE, (last,))])
        for result in results:
            stream.last[result.partition] = max(stream.last[result.partition], result.sequence)
        stream.notify()
        return results

    # consumers
    async def read(
        self, name: str, partition: int, *, after: int | None, limit: int = 100
    ) -> ReadResult:
        stream = self._partition(name, partition)
        check_after(stream.spec, after, self._sequence)
        check_limit(limit)
        sizes = await self.db.read(SIZES, (name, partition, after or 0, limit))
        last = _last_within(sizes, READ_BYTES)
        rows = await self.db.read(READ, (after or 0, last, name, partition, limit))
        if not rows:
            raise _deleted(name)
        trimmed_through: int = rows[0][0]
        records = [_record(partition, row) for row in rows if row[1] is not None]
        return ReadResult(
            records=records,
            after=records[-1].sequence if records else max(after or 0, trimmed_through),
            trimmed=after is not None and after < trimmed_through,
        )

    async def position(
        self, name: str, partition: int, start: Start, at: float | None = None
    ) -> int:
        self._partition(name, partition)
        check_start(start, at)
        latest = self._sequence
        if start == "latest":
            return latest
        if start == "oldest":
            rows = await self.db.read(TRIMMED_THROUGH, (name, partition))
            if not rows:
                raise _deleted(name)
            return int(rows[0][0])
        rows = await self.db.read(FIRST_AT, (name, partition, at))
        return int(rows[0][0]) - 1 if rows else latest

    async def wait(self, name: str, partition: int, after: int, timeout: float) -> bool:
        stream = self._partition(name, partition)
        check_after(stream.spec, after, self._sequence)
        try:
            async with asyncio.timeout(timeout):
                while not stream.has_after(partition, after):
                    await stream.committed.wait()
                    if self._closed:
                        return False
                    stream = self._partition(name, partition)
        except TimeoutError:
            return False
        return True

    async def info(self, name: str) -> StreamInfo:
        spec = self._stream(name).spec
        rows = await self.db.read(INFO, (name,))
        partitions = [
            PartitionInfo(partition=row[0], first=row[1], last=row[2], count=row[3]) for row in rows
        ]
        return StreamInfo(
            name=name,
            retention=spec.retention,
            max_record_bytes=spec.max_record_bytes,
            partitions=partitions,
        )

    async def age(self, name: str, partition: int, after: int | None) -> float:
        stream = self._partition(name, partition)
        check_after(stream.spec, after, self._sequence)
        rows = await self.db.read(FIRST_AFTER, (name, partition, after or 0))
        return max(0.0, self._clock() - rows[0][0]) if rows else 0.0

    # retention
    async def trim(self, now: float) -> int:
        statements: list[tuple[str, Params]] = []
        for name, stream in self._open().items():
            cutoff = now - stream.spec.retention
            statements.append((MARK_TRIMMED, (cutoff, name)))
            statements.append((DELETE_TRIMMED, (name, cutoff, name)))
        if not statements:
            return 0
        changed = await self.db.transaction(statements)
        self._set_marks(await self.db.read(PARTITION_MARKS))
        return sum(changed[1::2])

    def _set_marks(self, rows: list[sqlite3.Row]) -> None:
        for name, partition, trimmed, last in rows:
            stream = self._streams.get(name)
            if stream is not None and partition < stream.spec.partitions:
                stream.trimmed[partition] = trimmed
                stream.last[partition] = max(stream.last[partition], last)

    # lookups
    def _open(self) -> dict[str, _Stream]:
        if self._closed:
            raise PlatformUnavailable("the stream service is closed")
        return self._streams

    def _stream(self, name: str) -> _Stream:
        stream = self._open().get(name)
        if stream is None:
            raise NotFound(f"stream {name!r} does not exist")
        return stream

    def _partition(self, name: str, partition: int) -> _Stream:
        stream = self._stream(name)
        check_partition(stream.spec, partition)
        return stream


def _deleted(name: str) -> NotFound:
    return NotFound(f"stream {name!r} was deleted while it was read")


def _last_within(sizes: list[sqlite3.Row], budget: int) -> int:
    """The last sequence a read returns so that its records stay within `budget` bytes (at
    least one record, however big): a read never holds more than that in memory."""
    if not sizes:
        return 2**63 - 1  # no record to read: no bound
    total = 0
    last: int = sizes[0][0]
    for sequence, size in sizes:
        total += size
        if total > budget:
            break
        last = sequence
    return last


def _record(partition: int, row: sqlite3.Row) -> Record:
    _, sequence, key, data, arrival, traceparent = row
    return Record(
        partition=partition,
        sequence=sequence,
        key=key,
        data=data,
        arrival=arrival,
        traceparent=traceparent,
    )
