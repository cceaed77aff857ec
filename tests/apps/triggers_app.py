"""A test app with one trigger per behaviour of the event services (tests/test_triggers.py);
see triggers_common for how handlers report what they saw."""

from __future__ import annotations

import os
import signal
from typing import Any

import msgspec
from triggers_common import ENV, healed, record, run_ops

import nimbus

FAST = {"retries": 2, "backoff": 0.05}

app = nimbus.App("triggers")

jobs = app.queue("jobs", visibility_timeout=5)
errors = app.queue("errors", visibility_timeout=5)
poison_dlq = app.queue("poison_dlq")
poison = app.queue("poison", visibility_timeout=1, max_receives=3, dead_letter="poison_dlq")
brittle = app.queue("brittle", visibility_timeout=1, max_receives=2)  # its own dead letters
sick_dlq = app.queue("sick_dlq")
sick = app.queue("sick", visibility_timeout=1, max_receives=2, dead_letter="sick_dlq")
fragile = app.queue("fragile", visibility_timeout=1)
manual = app.queue("manual", visibility_timeout=1)
audit = app.queue("audit", max_message_bytes=1024)
failed_clicks = app.queue("failed_clicks")
outcomes = app.queue("outcomes")
paid = app.queue("paid")
receipts = app.queue("receipts")
small = app.queue("small", max_message_bytes=64)
sequenced = app.queue("sequenced", fifo=True, content_dedup=True, visibility_timeout=5)
graveyard = app.queue("graveyard")
stale = app.queue("stale")
secret = app.queue("secret")
events = app.topic(
    "events",
    subscriptions=[
        nimbus.QueueSubscription(queue="audit", pattern={"attributes": {"region": ["eu"]}})
    ],
)
clicks = app.stream("clicks", partitions=2, max_record_bytes=1024)
tuned = app.stream("tuned", partitions=1)
customers = app.table("customers", key="id", max_item_bytes=1024)
uploads = app.bucket("uploads")

EVERYTHING_BUT_SECRET = [
    jobs, errors, poison, poison_dlq, sick, sick_dlq, brittle, fragile, manual, audit,
    failed_clicks, outcomes, paid, receipts, small, sequenced, graveyard, stale, events, clicks,
    tuned, customers, uploads,
]  # fmt: skip


# queue triggers


@app.on_queue(jobs, environment=ENV, failure=nimbus.FailurePolicy(retries=3, backoff=0.05))
def on_jobs(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    """Fails each message `fail_times` times (as a batch item failure), then succeeds."""
    failed = []
    for message in batch:
        body = message.json()
        ok = message.receive_count > body.get("fail_times", 0)
        record(
            "on_jobs", id=body["id"], receive_count=message.receive_count, ok=ok,
            first_received_at=message.first_received_at,
        )  # fmt: skip
        if not ok:
            failed.append(message.id)
    return nimbus.BatchResult(failed=failed)


@app.on_queue(errors, environment=ENV, failure=nimbus.FailurePolicy(**FAST))
def on_errors(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        body = message.json()
        record("on_errors", id=body["id"], receive_count=message.receive_count)
        if not healed(body["id"]):
            raise RuntimeError(f"cannot process {body['id']}")


@app.on_queue(poison, batch_size=1, environment=ENV, failure=nimbus.FailurePolicy(backoff=0.05))
def on_poison(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        record("on_poison", id=message.json()["id"], receive_count=message.receive_count)
        raise ValueError(f"poison {message.json()['id']}")


@app.on_queue(sick, batch_size=1, environment=ENV, failure=nimbus.FailurePolicy(backoff=0.05))
def on_sick(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        key = message.json()["id"]
        record("on_sick", id=key, receive_count=message.receive_count, ok=healed(key))
        if not healed(key):
            raise ValueError(f"sick {key}")


@app.on_queue(brittle, batch_size=1, environment=ENV, failure=nimbus.FailurePolicy(backoff=0.05))
def on_brittle(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        key = message.json()["id"]
        record("on_brittle", id=key, receive_count=message.receive_count, ok=healed(key))
        if not healed(key):
            raise ValueError(f"brittle {key}")


@app.on_queue(fragile, batch_size=1, environment=ENV, failure=nimbus.FailurePolicy(**FAST))
def on_fragile(batch: nimbus.QueueBatch) -> None:
    """The instance dies (SIGKILL) on a message's first delivery."""
    for message in batch:
        if message.receive_count == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        record("on_fragile", id=message.json()["id"], receive_count=message.receive_count)


@app.on_queue(paid, failure=nimbus.FailurePolicy(on_success="receipts", **FAST))
def on_paid(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    return nimbus.BatchResult()  # none failed


@app.on_queue(
    sequenced, batch_size=4, environment=ENV, failure=nimbus.FailurePolicy(retries=3, backoff=0.05)
)
def on_sequenced(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    """As Lambda asks of a FIFO handler: after a failed message, the rest of its group in the
    batch fails too (they must not overtake it)."""
    failed: list[str] = []
    broken: set[str | None] = set()
    for message in batch:
        body = message.json()
        if message.group in broken or (body.get("fail_once") and message.receive_count == 1):
            broken.add(message.group)
            failed.append(message.id)
            continue
        record("on_sequenced", group=message.group, n=body["n"], count=message.receive_count)
    return nimbus.BatchResult(failed=failed)


@app.on_queue(stale, environment=ENV, failure=nimbus.FailurePolicy(max_event_age=1, backoff=0.05))
def on_stale(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        record("on_stale", id=message.json()["id"])


@app.function(failure=nimbus.FailurePolicy(retries=1, backoff=0.05, dead_letter="graveyard"))
def doomed(event: dict[str, Any]) -> None:
    raise RuntimeError(f"doomed {event['tag']}")


@app.function(uses=[manual], timeout=30)
def consume_manual(event: dict[str, Any]) -> Any:
    """Polls `manual` itself; dies (SIGKILL) holding a message on its first receive."""
    [message] = manual.receive(1, visibility_timeout=1, wait=event.get("wait", 10))
    if message.receive_count == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    manual.delete(message.receipt)
    return {"body": message.body, "receive_count": message.receive_count}


# topics, streams, tables, buckets


@app.on_topic(
    events,
    pattern={"type": ["order.created"], "data": {"amount": [{"numeric": [">=", 100]}]}},
    max_instances=1,
    environment=ENV,
    failure=nimbus.FailurePolicy(**FAST),
)
def on_big_orders(event: nimbus.TopicEvent) -> None:
    record("on_big_orders", id=event.data["id"], type=event.type, event_id=event.id)


@app.on_stream(
    clicks,
    batch_size=4,
    start="oldest",
    environment=ENV,
    failure=nimbus.FailurePolicy(retries=1, backoff=0.05, on_failure="failed_clicks"),
)
def on_clicks(batch: nimbus.StreamBatch) -> None:
    """All or nothing: a batch with a bad record fails before anything is recorded."""
    for item in batch:
        if item.json().get("bad"):
            raise ValueError(f"bad record {item.sequence}")
    for item in batch:
        data = item.json()
        record(
            "on_clicks", partition=item.partition, sequence=item.sequence, key=item.key, n=data["n"]
        )


@app.on_stream(tuned, batch_size=2, start="oldest", environment=ENV)
def on_tuned(batch: nimbus.StreamBatch) -> None:
    for item in batch:
        record("on_tuned", sequence=item.sequence, n=item.json()["n"])


@app.on_table(customers, start="oldest", batch_size=3, environment=ENV)
def on_customers(batch: nimbus.TableBatch) -> None:
    for change in batch:
        record(
            "on_customers", kind=change.kind, key=change.key, old=change.old, new=change.new,
            sequence=change.sequence,
        )  # fmt: skip


@app.on_bucket(
    uploads,
    events=("created", "deleted"),
    prefix="in/",
    suffix=".txt",
    max_instances=1,
    environment=ENV,
    failure=nimbus.FailurePolicy(**FAST),
)
def on_uploads(event: nimbus.ObjectEvent) -> None:
    record("on_uploads", key=event.key, kind=event.kind, size=event.size)


# destinations of an asynchronous invocation


@app.function(
    failure=nimbus.FailurePolicy(
        retries=1, backoff=0.05, on_success="outcomes", on_failure="outcomes"
    )
)
def deliver(event: dict[str, Any]) -> dict[str, Any]:
    if event["fail"]:
        raise RuntimeError(f"failed {event['tag']}")
    return {"done": event["tag"]}


# permissions


@app.function(uses=[jobs])
def intruder(event: dict[str, Any]) -> list[dict[str, str]]:
    """Calls resources it did not declare; reports what each call raised."""
    attempts = {
        "send": lambda: nimbus.Queue("secret").send("stolen"),
        "receive": lambda: nimbus.Queue("outcomes").receive(10),
        "put": lambda: nimbus.Table("customers").put({"id": "intruder"}),
        "publish": lambda: nimbus.Topic("events").publish({"id": "intruder"}),
        "object": lambda: nimbus.Bucket("uploads").put("in/intruder.txt", "x"),
        "unknown": lambda: nimbus.Queue("no_such_queue").send("x"),
    }
    found = []
    for what, attempt in attempts.items():
        try:
            attempt()
            found.append({"call": what, "error": ""})
        except nimbus.NimbusError as error:
            found.append({"call": what, "error": type(error).__name__, "message": error.message})
    return found


@app.function(uses=[secret])
def keeper(event: Any) -> Any:
    return msgspec.to_builtins(secret.stats())


# the test's hand inside the platform


@app.function(uses=EVERYTHING_BUT_SECRET, timeout=30)
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `event["ops"]` in order; each gives {"ok": result} or {"error": type, "message"}."""
    return run_ops(event["ops"])
