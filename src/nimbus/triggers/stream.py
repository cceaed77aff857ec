"""Stream trigger: one ordered consumer per partition (Kinesis event source mapping)."""

from __future__ import annotations

import msgspec

from nimbus.events import aws
from nimbus.events.types import StreamBatch, StreamRecord
from nimbus.services.stream import Record
from nimbus.spec.resources import StreamTrigger
from nimbus.triggers.ordered import OrderedConsumer


class StreamConsumer(OrderedConsumer[Record]):
    trigger: StreamTrigger

    async def partitions(self) -> list[str]:
        info = await self.platform.services.streams.info(self.trigger.stream)
        return [str(p.partition) for p in info.partitions]

    async def start_position(self, partition: str) -> int:
        trigger = self.trigger
        return await self.platform.services.streams.position(
            trigger.stream, int(partition), trigger.start, trigger.start_time
        )

    async def read(self, partition: str, after: int, limit: int) -> list[Record]:
        streams = self.platform.services.streams
        result = await streams.read(self.trigger.stream, int(partition), after=after, limit=limit)
        if result.trimmed:
            self.platform.logs.platform(
                f"{self.name!r}: records of {self.trigger.label} partition {partition} after "
                f"{after} expired (retention) before they were read; reading on from the oldest",
                "WARNING",
            )
        return result.records

    async def wait(self, partition: str, after: int, timeout: float) -> None:
        await self.platform.services.streams.wait(
            self.trigger.stream, int(partition), after, timeout
        )

    def position(self, record: Record) -> int:
        return record.sequence

    def arrival(self, record: Record) -> float:
        return record.arrival

    def traceparent(self, record: Record) -> str | None:
        return record.traceparent

    def item_id(self, record: Record) -> str:
        return str(record.sequence)  # the typed record's id, and Lambda's itemIdentifier

    def event(self, partition: str, records: list[Record]) -> bytes:
        typed = [_typed(self.trigger.stream, record) for record in records]
        if self.style == "aws":
            return msgspec.json.encode(aws.kinesis_event(typed, self.trigger.stream))
        return msgspec.json.encode(StreamBatch(records=typed))


def _typed(stream: str, record: Record) -> StreamRecord:
    return StreamRecord(
        id=str(record.sequence), source=f"nimbus:stream:{stream}",
        type="nimbus.stream.record", time=record.arrival, traceparent=record.traceparent,
        partition=record.partition, sequence=record.sequence, key=record.key, data=record.data,
        arrival=record.arrival,
    )  # fmt: skip
