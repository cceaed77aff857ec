"""The set of services one platform runs on: one implementation of each interface."""

from __future__ import annotations

from dataclasses import dataclass

from nimbus.services.bucket import Buckets
from nimbus.services.queue import Queues
from nimbus.services.schedule import Schedules
from nimbus.services.stream import Streams
from nimbus.services.table import Tables
from nimbus.services.topic import Topics
from nimbus.services.websockets import Connections


@dataclass(frozen=True, slots=True)
class ServiceSet:
    queues: Queues
    topics: Topics
    streams: Streams
    tables: Tables
    buckets: Buckets
    schedules: Schedules
    websockets: Connections

    async def close(self) -> None:
        for service in (self.queues, self.topics, self.streams, self.tables, self.buckets):
            await service.close()
        await self.schedules.close()
        await self.websockets.close()
