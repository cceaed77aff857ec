"""A test app for batches and destinations in traces (tests/test_trace_links.py): orders, one
HTTP request and one trace each, land together in one batch of a FIFO queue (or of a stream),
whose success goes on to a queue; an alarm whose handler fails goes on to a function.

The batches wait (`batching_window`) until they hold BATCH records, so a test that sends BATCH
orders gets them in one batch however slow the machine is."""

from __future__ import annotations

from typing import Any

import nimbus

app = nimbus.App("links")
BATCH = 3
WAIT = 300  # seconds a batch waits to fill: it is full long before

orders = app.queue("orders", fifo=True, content_dedup=True)
audit_log = app.queue("audit_log")
events = app.stream("events", partitions=1)
alarms = app.topic("alarms")


@app.http("POST", "/orders", uses=[orders])
def place_order(request: nimbus.Request) -> dict[str, Any]:
    order = request.json()
    orders.send(order, group=order["id"])  # a group each: one in flight does not hold the rest
    return {"accepted": order["id"]}


@app.on_queue(
    orders, batch_size=BATCH, batching_window=WAIT,
    failure=nimbus.FailurePolicy(on_success="audit_log"),
)  # fmt: skip
def store_orders(batch: nimbus.QueueBatch) -> None:
    return None


@app.on_queue(audit_log)
def audit(batch: nimbus.QueueBatch) -> None:
    return None


@app.http("POST", "/events", uses=[events])
def put_event(request: nimbus.Request) -> dict[str, Any]:
    events.put(request.json(), key="all")
    return {"accepted": True}


@app.on_stream(events, batch_size=BATCH, batching_window=WAIT, start="oldest")
def take_events(batch: nimbus.StreamBatch) -> None:
    return None


@app.http("POST", "/alarms", uses=[alarms])
def raise_alarm(request: nimbus.Request) -> dict[str, Any]:
    alarms.publish(request.json())
    return {"raised": True}


@app.on_topic(alarms, failure=nimbus.FailurePolicy(retries=0, on_failure="triage"))
def explode(event: Any) -> None:
    raise RuntimeError("the alarm went off")


@app.function()
def triage(record: dict[str, Any]) -> None:
    return None
