"""Hostile uses of the queue trigger and of dead letters (tests/test_review_triggers.py); see
triggers_common for how handlers report what they saw."""

from __future__ import annotations

import time
from typing import Any

from triggers_common import ENV, healed, record, run_ops

import nimbus

FAST = nimbus.FailurePolicy(retries=2, backoff=0.05)

app = nimbus.App("review-triggers")

manual = app.queue("manual")
last_try = app.queue("last-try")
windowed = app.queue("windowed", visibility_timeout=1)
steady = app.queue("steady")


@app.on_queue(
    manual, batch_size=10, batching_window=1, timeout=60, environment=ENV, failure=FAST,
    uses=[manual],
)  # fmt: skip
def on_manual(batch: nimbus.QueueBatch) -> None:
    """Lambda's pattern from before batch item failures: delete what was processed, then
    raise so that the rest comes back."""
    failed = False
    for message in batch:
        body = message.json()
        record("on_manual", id=body["id"], receive_count=message.receive_count)
        if body["fail"] and not healed(body["id"]):
            failed = True
        else:
            nimbus.Queue("manual").delete(message.receipt)
    if failed:
        raise RuntimeError("some messages failed")


@app.on_queue(
    last_try, batch_size=10, batching_window=1, timeout=60, environment=ENV, uses=[last_try],
    failure=nimbus.FailurePolicy(retries=0),
)  # fmt: skip
def on_last_try(batch: nimbus.QueueBatch) -> None:
    """The same pattern with no retries: what fails is given up at once."""
    for message in batch:
        body = message.json()
        record("on_last_try", id=body["id"])
        if not body["fail"]:
            nimbus.Queue("last-try").delete(message.receipt)
    raise RuntimeError("some messages failed")


@app.on_queue(windowed, batch_size=10, batching_window=15, timeout=0.5, environment=ENV)
def on_windowed(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        record("on_windowed", id=message.json()["id"], receive_count=message.receive_count)


@app.on_queue(steady, batch_size=1, timeout=60, max_instances=1, environment=ENV)
def on_steady(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        record("on_steady", id=message.json()["id"], receive_count=message.receive_count)
        while not healed("steady"):
            time.sleep(0.05)


@app.function(environment=ENV, failure=nimbus.FailurePolicy(retries=0))
def boom(event: Any) -> None:
    raise ValueError("bad [/oops] input [red]seen[/red]")


@app.function(environment=ENV, failure=nimbus.FailurePolicy(retries=0))
def doomed(event: Any) -> None:
    raise ValueError("doomed")


@app.function(uses=[manual, last_try, windowed, steady])
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    return run_ops(event["ops"])
