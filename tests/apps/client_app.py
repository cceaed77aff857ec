"""An app for the client SDK and CLI tests: resources that outside systems reach, functions
that succeed, fail and hold an instance, and one that reads back what the queue got."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("clients")

orders = app.queue("orders")
audit = app.queue("audit")
payments = app.queue("payments", fifo=True, content_dedup=True)
events = app.topic("events", subscriptions=[nimbus.QueueSubscription(queue="audit")])
customers = app.table("customers", key="id", indexes={"by_email": nimbus.IndexSpec(key="email")})
visits = app.table("visits", key="user", sort_key="at")
uploads = app.bucket("uploads")
small = app.bucket("small", max_object_bytes=1024)
clicks = app.stream("clicks", partitions=2)


@app.function()
def add(event: dict[str, int]) -> int:
    return event["a"] + event["b"]


@app.function(failure=nimbus.FailurePolicy(retries=0))
def broken(event: Any) -> None:
    raise ValueError(f"cannot handle {event!r}")


@app.function(max_instances=1, timeout=120)
def hold(event: dict[str, str]) -> str:
    """Keep its only instance busy until the file `event["until"]` exists."""
    gate = Path(event["until"])
    deadline = time.monotonic() + 100
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@app.function(uses=[orders, audit, payments])
def drain(event: dict[str, str]) -> list[dict[str, Any]]:
    """Receive (and delete) what queue `event["queue"]` holds, as functions see it."""
    queue = nimbus.Queue(event["queue"])
    received = queue.receive(10, wait=1)
    for message in received:
        queue.delete(message.receipt)
    return [{"body": m.body, "attributes": m.attributes, "group": m.group} for m in received]


@app.function(uses=[uploads])
def read_object(event: dict[str, str]) -> dict[str, Any]:
    info = uploads.head(event["key"])
    return {
        "size": info.size,
        "etag": info.etag,
        "text": uploads.get(event["key"])[:20].decode(errors="replace"),
    }


@app.http("GET", "/ping")
def ping(request: nimbus.Request) -> str:
    return "pong"


@app.http("POST", "/echo")
def echo(request: nimbus.Request) -> Any:
    """The JSON body back: a malformed one answers 400 by itself."""
    return request.json()
