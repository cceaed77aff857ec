"""A test app for trace sampling (tests/test_trace_sampling.py): a request relayed through a
queue to a handler that keeps the trace context its message arrived with."""

from __future__ import annotations

from typing import Any

import nimbus

app = nimbus.App("sampling")

relay = app.queue("relay", visibility_timeout=5)
seen = app.table("seen", key="id")


@app.http("POST", "/relay/{id}", uses=[relay])
def send(request: nimbus.Request) -> dict[str, Any]:
    relay.send({"id": request.params["id"]})
    return {"relayed": request.params["id"]}


@app.on_queue(relay, uses=[seen])
def keep(batch: nimbus.QueueBatch) -> None:
    for message in batch.messages:
        seen.put({"id": message.json()["id"], "traceparent": message.traceparent})
