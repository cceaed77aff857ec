"""Streams: partitioned, append-only logs with the semantics of Kinesis Data Streams.

A record goes to the partition its key hashes to (MD5 of the key as a 128-bit integer, over
equal hash ranges, as Kinesis maps partition keys to shards), so one key's records keep their
order. Sequence numbers increase along every partition and are never reused, also after a
restart; a consumer reads *after* a sequence number, so it can replay anything still retained.
Records older than the stream's retention are trimmed. Changing the number of partitions of an
existing stream (resharding) is not supported: it would move keys between partitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from nimbus.errors import InvalidRequest, PayloadTooLarge
from nimbus.spec.resources import StartingPosition, StreamSpec

MAX_KEY_CHARS = 256  # Kinesis: partition keys are 1 to 256 Unicode characters
MAX_BATCH = 10000
MAX_READ = 10000  # Kinesis GetRecords returns at most 10000 records
READ_BYTES = 10 * 1024 * 1024  # and at most 10 MiB: a read returns fewer records past that
HASH_SPACE = 1 << 128

Start = StartingPosition
"""Where a reader starts: "latest", "oldest" or "at_time" (the spec's starting positions)."""

Entry = tuple[str, bytes, str | None]
"""One record to put: partition key, data, W3C traceparent of the producer (or None)."""


class PutResult(msgspec.Struct, kw_only=True, frozen=True):
    partition: int
    sequence: int


class Record(msgspec.Struct, kw_only=True, frozen=True):
    partition: int
    sequence: int
    key: str
    data: bytes
    arrival: float
    """When the stream accepted it (seconds since the epoch); never decreases along sequences."""
    traceparent: str | None = None


class ReadResult(msgspec.Struct, kw_only=True):
    records: list[Record]
    after: int
    """Pass as `after` to read on: the last sequence returned, or where the read started."""
    trimmed: bool
    """Records after the requested position were removed by retention before they were read:
    the read started at the oldest retained record instead."""


class PartitionInfo(msgspec.Struct, kw_only=True):
    partition: int
    first: int | None
    """Sequence of the oldest retained record, None when the partition holds none."""
    last: int | None
    count: int


class StreamInfo(msgspec.Struct, kw_only=True):
    name: str
    retention: float
    max_record_bytes: int
    partitions: list[PartitionInfo]


class Streams(Protocol):
    """Every stream of the platform; each method takes the stream's name first."""

    async def create(self, spec: StreamSpec) -> None:
        """Create, or update retention and size limit; a different partition count is a
        Conflict (resharding is out of scope)."""

    async def delete(self, name: str) -> None:
        """Remove the stream and its records; nothing to do when it does not exist."""

    async def close(self) -> None: ...

    async def put(
        self, name: str, key: str, data: bytes, *, traceparent: str | None = None
    ) -> PutResult:
        """Append one record; committed when this returns."""

    async def put_batch(self, name: str, entries: Sequence[Entry]) -> list[PutResult]:
        """Append up to MAX_BATCH records in one transaction, all or none; results in order."""

    async def read(
        self, name: str, partition: int, *, after: int | None, limit: int = 100
    ) -> ReadResult:
        """Up to `limit` records with sequence > `after` in order (None: from the oldest), and
        no more than READ_BYTES of them (but always one, if there is one)."""

    async def position(
        self, name: str, partition: int, start: Start, at: float | None = None
    ) -> int:
        """The `after` to read from: latest (only records put after this call), oldest, or
        at_time (the first record that arrived at or after `at`)."""

    async def wait(self, name: str, partition: int, after: int, timeout: float) -> bool:
        """Long poll: True once the partition holds a record after `after`, False on timeout."""

    async def info(self, name: str) -> StreamInfo: ...

    async def age(self, name: str, partition: int, after: int | None) -> float:
        """Iterator age: seconds since the oldest record after `after` arrived; 0 if none."""

    async def trim(self, now: float) -> int:
        """Remove the records older than their stream's retention; returns how many."""


# Backend-neutral rules every backend applies the same way.


def partition_for(key: str, partitions: int) -> int:
    """The partition whose hash range holds MD5(key): ranges of 2**128 // partitions hash
    values each, the last one taking the remainder, like the shards of a new Kinesis stream."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return min(int.from_bytes(digest, "big") // (HASH_SPACE // partitions), partitions - 1)


def check_record(spec: StreamSpec, key: str, data: bytes) -> None:
    if not key:
        raise InvalidRequest(f"stream {spec.name!r}: the partition key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"stream {spec.name!r}: partition key of {len(key)} characters is over the limit "
            f"of {MAX_KEY_CHARS}"
        )
    try:
        size = len(data) + len(key.encode())
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"stream {spec.name!r}: the partition key is not valid Unicode"
        ) from None
    if size > spec.max_record_bytes:
        raise PayloadTooLarge(
            f"stream {spec.name!r}: record of {size} bytes (data + key) is over "
            f"max_record_bytes {spec.max_record_bytes}"
        )


def check_batch(spec: StreamSpec, entries: Sequence[Entry]) -> None:
    if len(entries) > MAX_BATCH:
        raise InvalidRequest(
            f"stream {spec.name!r}: batch of {len(entries)} records is over the limit of "
            f"{MAX_BATCH}"
        )
    for index, (key, data, _) in enumerate(entries):
        try:
            check_record(spec, key, data)
        except InvalidRequest as error:
            raise type(error)(f"entry {index}: {error.message}") from None


def check_partition(spec: StreamSpec, partition: int) -> None:
    if not 0 <= partition < spec.partitions:
        raise InvalidRequest(
            f"stream {spec.name!r} has partitions 0 to {spec.partitions - 1}, not {partition}"
        )


def check_after(spec: StreamSpec, after: int | None, last_assigned: int) -> None:
    """A position is a sequence number this platform has handed out (or 0, the start)."""
    if after is not None and not 0 <= after <= last_assigned:
        raise InvalidRequest(
            f"stream {spec.name!r}: sequence number {after} was never assigned "
            f"(the last one is {last_assigned})"
        )


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_READ:
        raise InvalidRequest(f"read limit {limit} is not between 1 and {MAX_READ}")


def check_start(start: Start, at: float | None) -> None:
    if (start == "at_time") != (at is not None):
        raise InvalidRequest("a time `at` is given exactly when start is 'at_time'")


# The operations a function may call through `nimbus.sdk.stream.Stream`.


class Put(msgspec.Struct, tag="stream.put", kw_only=True, frozen=True):
    key: str
    data: bytes
    traceparent: str | None = None


class PutBatch(msgspec.Struct, tag="stream.put_batch", kw_only=True, frozen=True):
    entries: list[tuple[str, bytes]]
    """(partition key, data) pairs."""
    traceparent: str | None = None


class Read(msgspec.Struct, tag="stream.read", kw_only=True, frozen=True):
    """Read after a sequence number, or from a starting position; neither: from the oldest."""

    partition: int
    after: int | None = None
    start: Start | None = None
    at: float | None = None
    limit: int = 100


StreamOp = Put | PutBatch | Read


async def perform(service: Streams, resource: str, op: StreamOp) -> Any:
    match op:
        case Put():
            return await service.put(resource, op.key, op.data, traceparent=op.traceparent)
        case PutBatch():
            entries = [(key, data, op.traceparent) for key, data in op.entries]
            return await service.put_batch(resource, entries)
        case Read():
            return await _read(service, resource, op)


async def _read(service: Streams, resource: str, op: Read) -> ReadResult:
    after = op.after
    if op.start is not None:
        if after is not None:
            raise InvalidRequest("read takes `after` or a starting position, not both")
        after = await service.position(resource, op.partition, op.start, op.at)
    elif op.at is not None:
        raise InvalidRequest("a time `at` needs start='at_time'")
    return await service.read(resource, op.partition, after=after, limit=op.limit)
