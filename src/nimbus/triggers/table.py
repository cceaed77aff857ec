"""Table change feed trigger: batches of a table's committed changes, in commit order (so in
order per key), as DynamoDB Streams feed Lambda. The whole feed is one ordered partition."""

from __future__ import annotations

import msgspec

from nimbus.events import aws
from nimbus.events.types import TableBatch, TableChange
from nimbus.services.table import Change
from nimbus.spec.resources import TableTrigger
from nimbus.triggers.ordered import OrderedConsumer

PARTITION = "changes"


class ChangeFeedConsumer(OrderedConsumer[Change]):
    trigger: TableTrigger

    async def partitions(self) -> list[str]:
        return [PARTITION]

    async def start_position(self, partition: str) -> int:
        if self.trigger.start == "oldest":
            return 0
        return await self.platform.services.tables.latest_sequence(self.trigger.table)

    async def read(self, partition: str, after: int, limit: int) -> list[Change]:
        return await self.platform.services.tables.changes(self.trigger.table, after, limit)

    async def wait(self, partition: str, after: int, timeout: float) -> None:
        await self.platform.services.tables.wait(self.trigger.table, after, timeout)

    def position(self, record: Change) -> int:
        return record.sequence

    def arrival(self, record: Change) -> float:
        return record.time

    def traceparent(self, record: Change) -> str | None:
        return record.traceparent

    def item_id(self, record: Change) -> str:
        return str(record.sequence)  # the typed change's id, and Lambda's itemIdentifier

    def event(self, partition: str, records: list[Change]) -> bytes:
        typed = [_typed(change) for change in records]
        if self.style == "aws":
            return msgspec.json.encode(aws.dynamodb_event(typed, self.trigger.table))
        return msgspec.json.encode(TableBatch(changes=typed))


def _typed(change: Change) -> TableChange:
    return TableChange(
        id=str(change.sequence), source=f"nimbus:table:{change.table}",
        type="nimbus.table.change", time=change.time, traceparent=change.traceparent,
        kind=change.kind, key=change.key, old=change.old, new=change.new,
        sequence=change.sequence, expired=change.expired,
    )  # fmt: skip
