"""The app of tests/test_usage.py: a function that uses one resource of each kind (so that its
calls are metered), a subscriber of the topic (deliveries), and functions of known memory."""

from __future__ import annotations

from typing import Any

import nimbus

app = nimbus.App("metered")

orders = app.queue("orders")
jobs = app.queue("jobs", fifo=True)
events = app.topic("events")
clicks = app.stream("clicks", partitions=1)
carts = app.table("carts", key="id")
files = app.bucket("files")
inbox = app.queue("inbox")

BIG_BODY = "x" * (70 * 1024)  # two 64 KiB chunks: SQS bills it as two requests
CLICK = b"c" * 1500  # rounded up to 2 KiB of Kinesis data-in
OBJECT = b"o" * 5000


@app.function(memory_mb=256, uses=[orders, jobs, events, clicks, carts, files])
def work(event: Any) -> dict[str, Any]:
    """One of each metered operation."""
    orders.send("small")
    orders.send(BIG_BODY)
    received = orders.receive(max_messages=10)
    jobs.send("job", group="g1", dedup_id="d1")
    events.publish({"n": 1}, type="demo.created")
    clicks.put(CLICK, key="k")
    carts.put({"id": "c1", "items": [1, 2]})
    carts.get({"id": "c1"})
    files.put("report.txt", OBJECT)
    return {"received": len(received)}


@app.function(memory_mb=512)
def compute(event: Any) -> int:
    return sum(range(int(event or 0)))


@app.on_queue(inbox)
def on_inbox(batch: nimbus.QueueBatch) -> None:
    print(len(batch.messages))


@app.on_topic(events)
def on_event(event: nimbus.TopicEvent) -> None:
    print(event.type)
