"""The app of tests/test_metrics.py: one function per outcome the metrics count, and sources
whose levels they read (a queue nobody consumes, a stream whose consumer is held up)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("metrics")

backlog = app.queue("backlog")  # nothing consumes it: its depth shows
brittle = app.queue("brittle", visibility_timeout=1, max_receives=1)  # its own dead letters
clicks = app.stream("clicks", partitions=2)


def _wait_for(path: str, limit: float = 25.0) -> None:
    deadline = time.monotonic() + limit
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@app.http("GET", "/ok/{id}")
def ok(request: nimbus.Request) -> dict[str, str]:
    return {"id": request.params["id"]}


@app.function()
def fail(event: Any) -> None:
    raise ValueError("the handler broke")


@app.function(timeout=0.5)
def slow(event: Any) -> None:
    time.sleep(30)


@app.function(memory_mb=128)
def hog(event: int) -> int:
    return len(bytearray(event * 1024 * 1024))


@app.function()
def crash(event: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.http("GET", "/busy", max_instances=1, timeout=30)
def busy(request: nimbus.Request) -> str:
    _wait_for(request.query["until"])
    return "done"


@app.function(failure=nimbus.FailurePolicy(retries=0))
def doomed(event: Any) -> None:
    raise RuntimeError("doomed")


@app.on_queue(brittle, batch_size=1, failure=nimbus.FailurePolicy(backoff=0.05))
def on_brittle(batch: nimbus.QueueBatch) -> None:
    raise ValueError("brittle")


@app.function(uses=["clicks"])
def produce(event: dict[str, Any]) -> list[int]:
    """Puts one record per key; each record names the file its consumer waits for."""
    stream = nimbus.Stream("clicks")
    return [stream.put({"gate": event["gate"]}, key=key)[0] for key in event["keys"]]


@app.on_stream(clicks, start="oldest", batch_size=1, timeout=30)
def on_clicks(batch: nimbus.StreamBatch) -> None:
    for record in batch.records:
        _wait_for(record.json()["gate"])


@app.on_schedule("rate(1 second)")
def tick(event: Any) -> None:
    return None
