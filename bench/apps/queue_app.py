"""The app of bench/queue_throughput.py: two queues, a consumer of each (batch size 1 and 100),
and the producer function that fills them the way user code would, with `send_batch`."""

from __future__ import annotations

from typing import Any

from event_work import body, work

import nimbus

BATCH_SIZES = (1, 100)
CONSUMER_INSTANCES = 2  # as many worker processes as the Celery baseline's (prefork, 2)
SEND_CHUNK = 1000  # messages per send_batch (the most one call takes)

app = nimbus.App("bench-queue")
queues = {size: app.queue(f"q{size}") for size in BATCH_SIZES}


def queue_name(batch_size: int) -> str:
    return queues[batch_size].name


def consumer_name(batch_size: int) -> str:
    return f"consume{batch_size}"


@app.function(uses=list(queues.values()), timeout=120)
def produce(event: dict[str, Any]) -> int:
    """Send messages `first` .. `first + count - 1` to the queue of batch size `batch`."""
    queue = queues[event["batch"]]
    first, end = event["first"], event["first"] + event["count"]
    for start in range(first, end, SEND_CHUNK):
        result = queue.send_batch([body(n) for n in range(start, min(start + SEND_CHUNK, end))])
        if result.failed:
            raise RuntimeError(f"send_batch refused {len(result.failed)}: {result.failed[0]}")
    return end - first


def _consume(batch: nimbus.QueueBatch) -> None:
    """Process every message of the batch; returning normally acknowledges them all."""
    for message in batch.messages:
        work(message.body)


@app.on_queue(queues[1], batch_size=1, max_instances=CONSUMER_INSTANCES)
def consume1(batch: nimbus.QueueBatch) -> None:
    _consume(batch)


@app.on_queue(queues[100], batch_size=100, max_instances=CONSUMER_INSTANCES)
def consume100(batch: nimbus.QueueBatch) -> None:
    _consume(batch)
