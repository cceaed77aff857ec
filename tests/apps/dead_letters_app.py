"""Where queue and stream triggers' dead letters go, and how they come back
(tests/test_dlq_redrive.py); see triggers_common for how handlers report what they saw."""

from __future__ import annotations

from typing import Any

from triggers_common import ENV, healed, record, run_ops

import nimbus

app = nimbus.App("dead-letters")

orders = app.queue("orders", visibility_timeout=5)
orders_dlq = app.queue("orders_dlq")
notes = app.queue("notes", visibility_timeout=5)
dead_notes_q = app.queue("dead_notes_q")
dead_notes = app.topic("dead_notes", subscriptions=[nimbus.QueueSubscription(queue="dead_notes_q")])
rq = app.queue("rq", visibility_timeout=1, max_receives=2, dead_letter="rq_dlq")
rq_dlq = app.queue("rq_dlq")
unread = app.queue("unread", max_receives=1)  # no trigger: no function is known to consume it
ticks = app.stream("ticks", partitions=1)
ticks_dlq = app.queue("ticks_dlq")


@app.on_queue(
    orders, environment=ENV,
    failure=nimbus.FailurePolicy(retries=1, backoff=0.05, dead_letter="orders_dlq"),
)  # fmt: skip
def on_orders(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    """Fails an order that says so until the test heals it."""
    result = nimbus.BatchResult()
    for message in batch:
        order = message.json()
        ok = not order.get("fail") or healed(order["id"])
        record(
            "on_orders", id=order["id"], body=message.body, attributes=message.attributes,
            receive_count=message.receive_count, ok=ok,
        )  # fmt: skip
        if not ok:
            result.fail(message.id, f"cannot ship {order['id']}")
    return result


@app.on_queue(
    notes, environment=ENV, failure=nimbus.FailurePolicy(retries=0, dead_letter="dead_notes")
)
def on_notes(batch: nimbus.QueueBatch) -> None:
    raise RuntimeError(f"cannot file {batch.messages[0].json()['id']}")


@app.on_queue(rq, environment=ENV, failure=nimbus.FailurePolicy(backoff=0.05))
def on_rq(batch: nimbus.QueueBatch) -> None:
    """Always fails: the queue's max_receives moves the message to rq_dlq."""
    raise ValueError(f"cannot handle {batch.messages[0].json()['id']}")


@app.on_stream(
    ticks, start="oldest", bisect_on_error=False, environment=ENV,
    failure=nimbus.FailurePolicy(retries=0, dead_letter="ticks_dlq"),
)  # fmt: skip
def on_ticks(batch: nimbus.StreamBatch) -> None:
    raise RuntimeError("cannot count ticks")


@app.function(uses=[orders, orders_dlq, notes, dead_notes_q, rq, rq_dlq, unread, ticks, ticks_dlq])
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    return run_ops(event["ops"])
