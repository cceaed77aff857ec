"""Object event trigger: created / deleted objects whose key matches the prefix and suffix
invoke the function asynchronously (as S3 event notifications invoke Lambda).

The bucket's event feed is followed after a durable checkpoint; an event's asynchronous
invocation is accepted durably before the checkpoint moves past it. A trigger deployed now sees
objects changed from now on.
"""

from __future__ import annotations

import msgspec

from nimbus.events import aws
from nimbus.events.types import ObjectEvent as TypedObjectEvent
from nimbus.services.bucket import ObjectEvent
from nimbus.spec.resources import BucketTrigger
from nimbus.triggers.base import TriggerRunner

LONG_POLL = 5.0
READ_LIMIT = 100
PARTITION = "events"


class BucketSubscriber(TriggerRunner):
    trigger: BucketTrigger

    async def run(self) -> None:
        buckets, store, bucket = (
            self.platform.services.buckets,
            self.platform.store,
            self.trigger.bucket,
        )
        saved = await store.checkpoints(self.consumer)
        after = saved.get(PARTITION)
        if after is None:
            after = await buckets.latest_sequence(bucket)
            await store.save_checkpoint(self.consumer, PARTITION, after)
        while True:
            events = await buckets.events(bucket, after, READ_LIMIT)
            if not events:
                await buckets.wait(bucket, after, LONG_POLL)
                continue
            for event in events:
                if self._matches(event):
                    payload = self._event(event)
                    await self.platform.jobs.submit(
                        self.name, payload, f"bucket:{bucket}", traceparent=event.traceparent,
                        job_id=self.job_id(event.sequence),
                    )  # fmt: skip
            after = events[-1].sequence
            await store.save_checkpoint(self.consumer, PARTITION, after)

    def _matches(self, event: ObjectEvent) -> bool:
        trigger = self.trigger
        return (
            event.kind in trigger.events
            and event.key.startswith(trigger.prefix)
            and event.key.endswith(trigger.suffix)
        )

    def _event(self, event: ObjectEvent) -> bytes:
        typed = TypedObjectEvent(
            id=f"{self.trigger.bucket}:{event.sequence}",
            source=f"nimbus:bucket:{self.trigger.bucket}",
            type=f"nimbus.object.{event.kind}", time=event.time, traceparent=event.traceparent,
            bucket=self.trigger.bucket, key=event.key, kind=event.kind, size=event.size,
            etag=event.etag, sequence=event.sequence,
        )  # fmt: skip
        if self.style == "aws":
            return msgspec.json.encode(aws.s3_event(typed))
        return msgspec.json.encode(typed)
