"""The Celery baseline of bench/queue_throughput.py: one task doing the same per-message work
as the nimbus consumers. The broker URL comes from BENCH_CELERY_BROKER (a Redis database of
its own). Run by the benchmark as

    celery -A celery_app worker --pool prefork --concurrency 2 -Q bench-queue ...

Settings chosen to match nimbus's queue semantics, not to slow Celery down: `acks_late`
(a message is acknowledged after the task ran, as nimbus deletes a message only after its
handler succeeded) and no result backend (nimbus's consumers return nothing either).
"""

from __future__ import annotations

import os

from celery import Celery
from event_work import work

QUEUE = "bench-queue"

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/13"))
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.process")
def process(text: str) -> int:
    return work(text)
