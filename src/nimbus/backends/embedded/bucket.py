"""Buckets on the embedded backend: an SQLite index (`bucket.db`) and one file per object.

A put streams into a temporary file (hashed and counted on the way, never whole in memory),
renames it into `bucket/objects/` under a fresh internal id, then commits the index row and
the created event in one transaction. The replaced file is listed as garbage in that same
transaction and unlinked afterwards, so a reader that already opened it keeps reading the old
version. Whatever a crash leaves behind (temporary files, renamed but uncommitted files,
unlinked garbage) is removed when the backend opens.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import hashlib
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from nimbus.backends.embedded.keys import prefix_end
from nimbus.errors import ConditionFailed, InvalidRequest, NimbusError, NotFound, PayloadTooLarge
from nimbus.ids import new_id
from nimbus.ops.database import Database
from nimbus.services.bucket import (
    EVENT_RETENTION,
    MAX_EVENTS,
    MAX_LIST,
    MIB,
    UPLOAD_IDLE,
    ByteRange,
    ObjectBody,
    ObjectEvent,
    ObjectInfo,
    Page,
    check_key,
    check_limit,
    check_listing,
    check_metadata,
    content_type_for,
    etag_of,
    resolve_range,
)

if TYPE_CHECKING:
    from nimbus.spec.resources import BucketSpec

CHUNK = MIB
"""Bytes read or written per step: what a put buffers and a get yields at most."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, max_object_bytes INTEGER NOT NULL,
    sequence INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, metadata TEXT NOT NULL,
    last_modified REAL NOT NULL, PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    bucket TEXT NOT NULL, sequence INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, time REAL NOT NULL, traceparent TEXT,
    PRIMARY KEY (bucket, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE TABLE IF NOT EXISTS garbage (blob TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired (name TEXT PRIMARY KEY, sequence INTEGER NOT NULL);
"""
OBJECT_COLUMNS = "key, size, etag, content_type, metadata, last_modified"
TO_GARBAGE = "INSERT OR IGNORE INTO garbage (blob) SELECT blob FROM objects WHERE bucket = ?"
NEXT_SEQUENCE = "UPDATE buckets SET sequence = sequence + 1 WHERE name = ?"
PUT_OBJECT = (
    "INSERT OR REPLACE INTO objects (bucket, key, blob, size, etag, content_type, metadata,"
    " last_modified) SELECT name, ?, ?, ?, ?, ?, ?, ? FROM buckets WHERE name = ?"
)
CREATED_EVENT = (
    "INSERT INTO events (bucket, sequence, kind, key, size, etag, time, traceparent)"
    " SELECT name, sequence, 'created', ?, ?, ?, ?, ? FROM buckets WHERE name = ?"
)
DELETED_EVENT = (
    "INSERT INTO events (bucket, sequence, kind, key, size, etag, time, traceparent)"
    " SELECT b.name, b.sequence, 'deleted', o.key, o.size, o.etag, ?, ?"
    " FROM objects o JOIN buckets b ON b.name = o.bucket WHERE o.bucket = ? AND o.key = ?"
)
RETIRE = "INSERT OR REPLACE INTO retired SELECT name, sequence FROM buckets WHERE name = ?"
"""A deleted bucket's last sequence: one created again under its name goes on from there, so
a consumer's checkpoint never hides the new bucket's first events."""
IF_OBJECT = " AND EXISTS (SELECT 1 FROM objects WHERE bucket = ? AND key = ?)"
_metadata_decoder = msgspec.json.Decoder(dict[str, str])


class EmbeddedBuckets:
    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._objects = data_dir / "bucket" / "objects"
        self._partial = data_dir / "bucket" / "partial"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._clock = clock
        self._db = Database(data_dir / "bucket.db", SCHEMA, fsync=fsync)
        rows = self._db.read_now("SELECT name, max_object_bytes FROM buckets")
        self._limits: dict[str, int] = {row["name"]: row["max_object_bytes"] for row in rows}
        self._uploads: dict[str, _Upload] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self._closed = False
        self._recover()

    def _recover(self) -> None:
        """Remove the files no committed object names: what a crash left behind. Runs before
        any put can be under way (a renamed file is committed a moment later)."""
        for path in self._partial.iterdir():
            path.unlink()
        named = {row["blob"] for row in self._db.read_now("SELECT blob FROM objects")}
        for path in self._objects.iterdir():
            if path.name not in named:
                path.unlink()
        self._db.submit("DELETE FROM garbage")

    # lifecycle

    async def create(self, spec: BucketSpec) -> None:
        await self._db.write(
            "INSERT INTO buckets (name, max_object_bytes, sequence) VALUES"
            " (?, ?, COALESCE((SELECT sequence FROM retired WHERE name = ?), 0))"
            " ON CONFLICT (name) DO UPDATE SET max_object_bytes = excluded.max_object_bytes",
            (spec.name, spec.max_object_bytes, spec.name),
        )
        self._limits[spec.name] = spec.max_object_bytes

    async def delete(self, name: str) -> None:
        for upload_id, upload in list(self._uploads.items()):
            if upload.target.bucket == name:
                await self._abort(upload_id, upload)
        await self._db.transaction(
            [
                (TO_GARBAGE, (name,)),
                ("DELETE FROM objects WHERE bucket = ?", (name,)),
                ("DELETE FROM events WHERE bucket = ?", (name,)),
                (RETIRE, (name,)),
                ("DELETE FROM buckets WHERE name = ?", (name,)),
            ]
        )
        self._limits.pop(name, None)
        self._notify(name)
        await self._collect()

    async def close(self) -> None:
        for upload_id, upload in list(self._uploads.items()):
            await self._abort(upload_id, upload)
        await self._collect()
        self._closed = True
        for name in list(self._signals):
            self._notify(name)
        await asyncio.to_thread(self._db.close)

    # objects

    async def put(
        self,
        name: str,
        key: str,
        body: bytes | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        traceparent: str | None = None,
    ) -> ObjectInfo:
        limit = self._limit(name)
        target = _Target(name, key, content_type, metadata, traceparent)
        writer = _Writer(self._partial, limit, f"object {key!r} in bucket {name!r}")
        try:
            if isinstance(body, bytes):
                await writer.write(body)
            else:
                async for chunk in body:
                    await writer.write(chunk)
        except BaseException:
            await asyncio.to_thread(writer.discard)
            raise
        return await self._store(target, writer)

    async def get(
        self, name: str, key: str, *, range: ByteRange | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, ObjectBody]:
        self._limit(name)
        return await asyncio.to_thread(self._open, name, key, range, if_match)

    async def head(self, name: str, key: str) -> ObjectInfo:
        self._limit(name)
        check_key(key)
        rows = await self._db.read(
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (name, key)
        )
        if not rows:
            raise NotFound(f"bucket {name!r} has no object {key!r}")
        return _info(rows[0])

    async def delete_object(self, name: str, key: str, *, traceparent: str | None = None) -> bool:
        self._limit(name)
        check_key(key)
        counts = await self._db.transaction(
            [
                (NEXT_SEQUENCE + IF_OBJECT, (name, name, key)),
                (DELETED_EVENT, (self._clock(), traceparent, name, key)),
                (TO_GARBAGE + " AND key = ?", (name, key)),
                ("DELETE FROM objects WHERE bucket = ? AND key = ?", (name, key)),
            ]
        )
        if not counts[-1]:
            return False
        self._notify(name)
        await self._collect()
        return True

    async def list(
        self,
        name: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        limit: int = MAX_LIST,
        cursor: str | None = None,
    ) -> Page:
        self._limit(name)
        limit = check_listing(prefix, delimiter, limit)
        start = _decode_cursor(cursor) if cursor is not None else (prefix, True)
        if start[0] < prefix:
            start = (prefix, True)
        listing = _Listing(self._db, name, prefix, delimiter or None, limit)
        return await asyncio.to_thread(listing.page, start)

    # upload sessions

    async def upload_start(
        self,
        name: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        traceparent: str | None = None,
    ) -> str:
        limit = self._limit(name)
        target = _Target(name, key, content_type, metadata, traceparent)
        upload_id = new_id()
        writer = _Writer(self._partial, limit, f"upload {upload_id} of object {key!r}")
        self._uploads[upload_id] = _Upload(target, writer, self._clock())
        return upload_id

    async def upload_part(self, name: str, upload: str, data: bytes) -> int:
        session = self._upload(name, upload)
        async with session.lock:
            self._check_open(upload, session)
            session.touched = self._clock()
            try:
                await session.writer.write(data)
            except PayloadTooLarge:
                await self._end(upload, session)
                raise
            return session.writer.size

    async def upload_complete(self, name: str, upload: str) -> ObjectInfo:
        session = self._upload(name, upload)
        async with session.lock:
            self._check_open(upload, session)
            session.done = True
            del self._uploads[upload]
        return await self._store(session.target, session.writer)

    async def upload_abort(self, name: str, upload: str) -> None:
        await self._abort(upload, self._upload(name, upload))

    # events

    async def events(
        self, name: str, after: int = 0, limit: int = 100
    ) -> builtins.list[ObjectEvent]:
        self._limit(name)
        check_limit(limit, MAX_EVENTS)
        rows = await self._db.read(
            "SELECT sequence, kind, key, size, etag, time, traceparent FROM events"
            " WHERE bucket = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (name, after, limit),
        )
        return [ObjectEvent(**dict(row)) for row in rows]

    async def latest_sequence(self, name: str) -> int:
        self._limit(name)
        rows = await self._db.read("SELECT sequence FROM buckets WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no bucket named {name!r}")
        return int(rows[0]["sequence"])

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        """Set up the signal before looking, so a commit in between is not missed; a close
        ends every wait (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._closed:
            signal = self._signals.setdefault(name, asyncio.Event())
            if await self.latest_sequence(name) > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await signal.wait()
        return False

    async def trim(self, now: float) -> None:
        await self._db.write("DELETE FROM events WHERE time < ?", (now - EVENT_RETENTION,))
        for upload_id, upload in list(self._uploads.items()):
            if upload.touched < now - UPLOAD_IDLE:
                await self._abort(upload_id, upload)

    # internals

    def _limit(self, name: str) -> int:
        """The bucket's max_object_bytes; NotFound if there is no such bucket."""
        try:
            return self._limits[name]
        except KeyError:
            raise NotFound(f"no bucket named {name!r}") from None

    def _notify(self, name: str) -> None:
        """Wake the waiters of the bucket: called after a commit that added an event."""
        signal = self._signals.pop(name, None)
        if signal is not None:
            signal.set()

    async def _store(self, target: _Target, writer: _Writer) -> ObjectInfo:
        """Move the written file into place and commit its index row and created event; on
        failure the file goes (unless the commit may still happen: a cancelled wait)."""
        try:
            etag = await asyncio.to_thread(writer.finish, self._objects, self._fsync)
        except BaseException:
            await asyncio.to_thread(writer.discard)
            raise
        info = ObjectInfo(
            key=target.key,
            size=writer.size,
            etag=etag,
            content_type=target.content_type,
            metadata=target.metadata,
            last_modified=self._clock(),
        )
        placed = self._objects / writer.blob
        try:
            counts = await self._db.transaction(self._put_statements(target, info, writer.blob))
        except Exception:
            await asyncio.to_thread(placed.unlink, missing_ok=True)
            raise
        if not counts[1]:
            await asyncio.to_thread(placed.unlink, missing_ok=True)
            raise NotFound(f"bucket {target.bucket!r} was deleted during the put")
        self._notify(target.bucket)
        if counts[0]:
            await self._collect()
        return info

    @staticmethod
    def _put_statements(
        target: _Target, info: ObjectInfo, blob: str
    ) -> builtins.list[tuple[str, tuple[object, ...]]]:
        name, key = target.bucket, info.key
        row = (key, blob, info.size, info.etag, info.content_type)
        return [
            (TO_GARBAGE + " AND key = ?", (name, key)),
            (PUT_OBJECT, (*row, _encode_metadata(info.metadata), info.last_modified, name)),
            (NEXT_SEQUENCE, (name,)),
            (
                CREATED_EVENT,
                (key, info.size, info.etag, info.last_modified, target.traceparent, name),
            ),
        ]

    async def _collect(self) -> None:
        """Unlink the files of replaced and deleted objects, then forget them (in this order,
        so a crash in between only leaves work for the next collection)."""
        while rows := await self._db.read("SELECT blob FROM garbage LIMIT 1000"):
            blobs = [row["blob"] for row in rows]
            await asyncio.to_thread(self._unlink, blobs)
            await self._db.transaction(
                [("DELETE FROM garbage WHERE blob = ?", (blob,)) for blob in blobs]
            )

    def _unlink(self, blobs: builtins.list[str]) -> None:
        for blob in blobs:
            (self._objects / blob).unlink(missing_ok=True)

    def _open(
        self, name: str, key: str, byte_range: ByteRange | None, if_match: str | None
    ) -> tuple[ObjectInfo, ObjectBody]:
        """Look the object up and open its file (in a worker thread). A file unlinked between
        the two means a newer version committed: look again."""
        check_key(key)
        missing = None
        while True:
            rows = self._db.read_now(
                f"SELECT blob, {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
                (name, key),
            )
            if not rows:
                raise NotFound(f"bucket {name!r} has no object {key!r}")
            blob, info = rows[0]["blob"], _info(rows[0])
            if if_match is not None and info.etag != if_match:
                raise ConditionFailed(
                    f"object {key!r} has ETag {info.etag}, not {if_match}: it was replaced"
                )
            offset, length = resolve_range(byte_range, info.size)
            if blob == missing:
                raise NimbusError(f"the file of object {key!r} in bucket {name!r} is missing")
            try:
                fd = os.open(self._objects / blob, os.O_RDONLY)
            except FileNotFoundError:
                missing = blob
                continue
            return info, _FileBody(fd, offset, length)

    def _upload(self, name: str, upload: str) -> _Upload:
        self._limit(name)
        session = self._uploads.get(upload)
        if session is None or session.target.bucket != name:
            raise NotFound(f"bucket {name!r} has no upload {upload!r} under way")
        return session

    @staticmethod
    def _check_open(upload: str, session: _Upload) -> None:
        """A call that waited for the session's lock may find it ended meanwhile."""
        if session.done:
            raise NotFound(f"upload {upload!r} has ended")

    async def _abort(self, upload_id: str, session: _Upload) -> None:
        async with session.lock:
            await self._end(upload_id, session)

    async def _end(self, upload_id: str, session: _Upload) -> None:
        """End the session and remove its file; the caller holds the session's lock."""
        if session.done:
            return
        session.done = True
        self._uploads.pop(upload_id, None)
        await asyncio.to_thread(session.writer.discard)


class _Target:
    """Where an object goes and what describes it, checked before any byte is written."""

    def __init__(
        self,
        bucket: str,
        key: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        traceparent: str | None,
    ) -> None:
        check_key(key)
        self.bucket = bucket
        self.key = key
        self.content_type = content_type_for(key, content_type)
        self.metadata = check_metadata(metadata)
        self.traceparent = traceparent


@dataclass(eq=False)
class _Upload:
    target: _Target
    writer: _Writer
    touched: float
    done: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Writer:
    """A new object's bytes on their way to disk: counted and hashed as they arrive, buffered
    up to CHUNK, written to a temporary file named by a fresh id (never by the key)."""

    def __init__(self, directory: Path, limit: int, label: str) -> None:
        self.blob = new_id()
        self.size = 0
        self._path = directory / self.blob
        self._limit = limit
        self._label = label
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._pending: builtins.list[bytes] = []
        self._pending_size = 0
        self._fd: int | None = None

    async def write(self, data: bytes) -> None:
        if self.size + len(data) > self._limit:
            raise PayloadTooLarge(
                f"{self._label} is over the bucket's max_object_bytes of {self._limit}"
            )
        self.size += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= CHUNK:
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        pending, self._pending, self._pending_size = self._pending, [], 0
        for data in pending:
            self._md5.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def finish(self, directory: Path, fsync: bool) -> str:
        """Write the rest, close, and rename into `directory`; returns the ETag."""
        self._flush()
        assert self._fd is not None
        if fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.rename(self._path, directory / self.blob)
        if fsync:
            _fsync_directory(directory)
        return etag_of(self._md5.hexdigest())

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileBody:
    """Reads an open object file in chunks with positional reads: the file handle keeps the
    version it opened readable even after a newer one replaced it."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._offset = offset
        self._remaining = length

    def __aiter__(self) -> _FileBody:
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0:
            self._close()
            raise StopAsyncIteration
        data = await asyncio.to_thread(
            os.pread, self._fd, min(CHUNK, self._remaining), self._offset
        )
        if not data:
            self._close()
            raise StopAsyncIteration
        self._offset += len(data)
        self._remaining -= len(data)
        return data

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        self._remaining = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self._close()


Position = tuple[str, bool]
"""Where a listing goes on: a key, and whether that key itself is included."""
ROLL_UP_BATCH = 16
"""Rows read at first after a common prefix: the next one may well be another prefix."""


class _Listing:
    """One ListObjectsV2 page, read in a worker thread: objects and common prefixes merged in
    key order, skipping past each common prefix with one index seek instead of reading its
    keys."""

    def __init__(
        self, db: Database, bucket: str, prefix: str, delimiter: str | None, limit: int
    ) -> None:
        self._db = db
        self._bucket = bucket
        self._prefix = prefix
        self._upper = prefix_end(prefix) if prefix else None
        self._delimiter = delimiter
        self._limit = limit

    def page(self, start: Position) -> Page:
        entries = list(itertools.islice(self._entries(start), self._limit + 1))
        shown = entries[: self._limit]
        cursor = None
        if len(entries) > self._limit:
            after = shown[-1][2]
            assert after is not None  # an entry came after it
            cursor = _encode_cursor(after)
        return Page(
            objects=[info for _, info, _ in shown if info is not None],
            common_prefixes=[text for text, info, _ in shown if info is None],
            cursor=cursor,
        )

    def _entries(
        self, position: Position
    ) -> Iterator[tuple[str, ObjectInfo | None, Position | None]]:
        """(key or common prefix, its info or None for a prefix, where to go on after it)."""
        batch = self._limit + 1 if self._delimiter is None else ROLL_UP_BATCH
        while True:
            rows = self._read(position, batch)
            for row in rows:
                rolled = self._roll_up(row["key"])
                if rolled is None:
                    position = (row["key"], False)
                    yield row["key"], _info(row), position
                    continue
                after = prefix_end(rolled)
                yield rolled, None, None if after is None else (after, True)
                if after is None:
                    return
                position, batch = (after, True), ROLL_UP_BATCH
                break
            else:
                if len(rows) < batch:
                    return
                batch = min(batch * 2, self._limit + 1)

    def _read(self, position: Position, batch: int) -> builtins.list[sqlite3.Row]:
        """Keys from `position` on that start with the prefix: those below its successor."""
        key, inclusive = position
        above = ">=" if inclusive else ">"
        sql = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key {above} ?"
        params: builtins.list[object] = [self._bucket, key]
        if self._upper is not None:
            sql += " AND key < ?"
            params.append(self._upper)
        return self._db.read_now(sql + " ORDER BY key LIMIT ?", (*params, batch))

    def _roll_up(self, key: str) -> str | None:
        if self._delimiter is None:
            return None
        found = key.find(self._delimiter, len(self._prefix))
        return None if found < 0 else key[: found + len(self._delimiter)]


def _encode_cursor(position: Position) -> str:
    key, inclusive = position
    raw = (b"i" if inclusive else b"x") + key.encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
        key = raw[1:].decode()
    except ValueError:
        raise InvalidRequest(f"list cursor {cursor!r} is not one a listing returned") from None
    if raw[:1] not in (b"i", b"x"):
        raise InvalidRequest(f"list cursor {cursor!r} is not one a listing returned")
    return key, raw[:1] == b"i"


def _encode_metadata(metadata: dict[str, str]) -> str:
    return msgspec.json.encode(metadata).decode()


def _info(row: sqlite3.Row) -> ObjectInfo:
    return ObjectInfo(
        key=row["key"],
        size=row["size"],
        etag=row["etag"],
        content_type=row["content_type"],
        metadata=_metadata_decoder.decode(row["metadata"]),
        last_modified=row["last_modified"],
    )
