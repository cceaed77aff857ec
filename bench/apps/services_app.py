"""The app of bench/services_ops.py: a table used through the SDK, a stream consumed by a
trigger, and a topic whose subscribed function notes how long each event took to reach it."""

from __future__ import annotations

import os
import time
from typing import Any

from event_work import work

import nimbus

LATENCY_FILE = os.environ.get("BENCH_LATENCY_FILE", os.devnull)
"""Where `on_event` appends its measurements; set by the benchmark before it loads the app."""
STREAM_BATCH = 100

app = nimbus.App("bench-services")
items = app.table("items", key="id")
records = app.stream("records", partitions=4)
appends = app.stream("appends", partitions=4)  # no consumer: appends measured alone
events = app.topic("events")


def item(number: int) -> dict[str, Any]:
    """The document of item `number` (a small record, as tables usually hold)."""
    return {"id": f"item-{number}", "n": number, "name": f"name {number}", "tags": ["a", "b"]}


@app.function(uses=[items], timeout=300)
def table_ops(event: dict[str, Any]) -> dict[str, float]:
    """Put items `first` .. `first + count - 1` one call after another, then get each back;
    returns how long each phase took on this function's own clock."""
    numbers = range(event["first"], event["first"] + event["count"])
    start = time.perf_counter()
    for number in numbers:
        items.put(item(number))
    put_done = time.perf_counter()
    for number in numbers:
        if items.get(id=f"item-{number}") is None:
            raise RuntimeError(f"item-{number} is missing")
    return {"put_s": put_done - start, "get_s": time.perf_counter() - put_done}


@app.on_stream(records, batch_size=STREAM_BATCH, start="oldest")
def consume_records(batch: nimbus.StreamBatch) -> None:
    """Parse every record of the batch (the same work as the queue benchmark's)."""
    for record in batch.records:
        work(record.text())


@app.on_topic(events, environment={"BENCH_LATENCY_FILE": LATENCY_FILE})
def on_event(event: nimbus.TopicEvent) -> None:
    """Note the time from the publisher's timestamp (in the event) to now, on this clock."""
    latency = time.time() - event.data["t"]
    with open(os.environ["BENCH_LATENCY_FILE"], "a") as output:
        output.write(f"{event.data['run']} {event.data['i']} {latency}\n")
