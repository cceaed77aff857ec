"""A test app for kill -9 of the platform (tests/test_guarantees.py): one consumer per source,
recording the ids it processed, and three schedules that differ only in what happens to ticks
missed while the platform is down."""

from __future__ import annotations

import time
from typing import Any

from triggers_common import ENV, record, run_ops

import nimbus

app = nimbus.App("restart")

inbox = app.queue("inbox", visibility_timeout=1)
news_copy = app.queue("news_copy", visibility_timeout=1)
news = app.topic("news", subscriptions=[nimbus.QueueSubscription(queue="news_copy")])
ledger = app.stream("ledger", partitions=2)
accounts = app.table("accounts", key="id")
files = app.bucket("files")

# timeout=1: a message in flight when the platform dies is visible again soon after
# (the queue trigger keeps a message invisible for the function's timeout + 5 s).
TICKS: dict[str, Any] = {"timeout": 1, "environment": ENV}
# one slow instance each: most acknowledged writes are still unprocessed at the crash
OPTIONS: dict[str, Any] = {**TICKS, "max_instances": 1}
PACE = 0.05  # seconds per event


def processed(function: str, **fields: Any) -> None:
    time.sleep(PACE)
    record(function, **fields)


@app.on_queue(inbox, batch_size=5, **OPTIONS)
def on_inbox(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        processed("on_inbox", id=message.json()["id"])


@app.on_topic(news, **OPTIONS)
def on_news(event: nimbus.TopicEvent) -> None:
    processed("on_news", id=event.data["id"])


@app.on_queue(news_copy, batch_size=5, **OPTIONS)
def on_news_copy(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        processed("on_news_copy", id=message.json()["data"]["id"])


@app.on_stream(ledger, start="oldest", batch_size=5, **OPTIONS)
def on_ledger(batch: nimbus.StreamBatch) -> None:
    for item in batch:
        processed(
            "on_ledger", id=item.json()["id"], partition=item.partition, sequence=item.sequence
        )


@app.on_table(accounts, start="oldest", batch_size=5, **OPTIONS)
def on_accounts(batch: nimbus.TableBatch) -> None:
    for change in batch:
        processed("on_accounts", id=change.key["id"], kind=change.kind, sequence=change.sequence)


@app.on_bucket(files, **OPTIONS)
def on_files(event: nimbus.ObjectEvent) -> None:
    processed("on_files", id=event.key)


@app.on_schedule("rate(1 second)", missed="once", **TICKS)
def tick_once(tick: nimbus.ScheduleTick) -> None:
    record("tick_once", at=tick.scheduled_at, id=tick.id)


@app.on_schedule("rate(1 second)", missed="skip", **TICKS)
def tick_skip(tick: nimbus.ScheduleTick) -> None:
    record("tick_skip", at=tick.scheduled_at, id=tick.id)


@app.on_schedule("rate(1 second)", missed="all", **TICKS)
def tick_all(tick: nimbus.ScheduleTick) -> None:
    record("tick_all", at=tick.scheduled_at, id=tick.id)


@app.function(uses=[inbox, news, ledger, accounts, files], timeout=60)
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    return run_ops(event["ops"])
