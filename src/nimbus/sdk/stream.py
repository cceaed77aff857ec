"""The handle function code uses to put records into a stream and read them back."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from nimbus.sdk.client import call
from nimbus.services.stream import (
    Put,
    PutBatch,
    PutResult,
    Read,
    ReadResult,
    Start,
)


def _encode(data: object) -> bytes:
    """bytes as they are, str as UTF-8, anything else as JSON."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return msgspec.json.encode(data)


class Stream:
    """A stream the function declares in `uses`: `Stream("clicks").put({...}, key=user)`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, data: object, *, key: str) -> tuple[int, int]:
        """Append one record to the partition of `key`; returns (partition, sequence)."""
        result = call(self.name, Put(key=key, data=_encode(data)), PutResult)
        return result.partition, result.sequence

    def put_batch(self, records: Iterable[tuple[str, object]]) -> list[tuple[int, int]]:
        """Append (key, data) pairs all or none; returns (partition, sequence) of each."""
        op = PutBatch(entries=[(key, _encode(data)) for key, data in records])
        return [(r.partition, r.sequence) for r in call(self.name, op, list[PutResult])]

    def read(
        self,
        partition: int,
        *,
        after: int | None = None,
        start: Start | None = None,
        at: float | None = None,
        limit: int = 100,
    ) -> ReadResult:
        """Records of `partition` after the sequence `after`, or from `start` ("latest",
        "oldest", or "at_time" with `at`); neither: from the oldest. Read on with `.after`."""
        op = Read(partition=partition, after=after, start=start, at=at, limit=limit)
        return call(self.name, op, ReadResult)
