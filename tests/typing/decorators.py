"""Type-checked by mypy --strict, never run: the decorators keep each handler's type, and
options are checked. An unneeded `type: ignore` fails the check, so each one proves an error."""

from __future__ import annotations

from typing import assert_type

import nimbus

app = nimbus.App("typed")


@app.http("GET", "/orders/{id}", timeout=5)
def get_order(request: nimbus.Request, context: nimbus.Context) -> dict[str, str]:
    return {"id": request.params["id"], "by": context.function_name}


@app.function(concurrency=8, failure=nimbus.FailurePolicy(retries=0))
async def notify(event: dict[str, int]) -> int:
    return event["n"]


async def call(request: nimbus.Request, context: nimbus.Context) -> None:
    assert_type(get_order(request, context), dict[str, str])
    assert_type(await notify({"n": 1}), int)


app.function(timeout="3")  # type: ignore[arg-type]
app.function(tiemout=3)  # type: ignore[call-arg]
app.http("GET")  # type: ignore[call-arg]

orders = app.queue("orders")
assert_type(orders, nimbus.Queue)
customers = app.table("customers", key="id")


@app.on_queue(orders, batch_size=10, uses=[customers])
def process(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    return nimbus.BatchResult(failed=[m.id for m in batch if not m.body])


@app.on_schedule("rate(5 minutes)", missed="all")
async def tick(event: nimbus.ScheduleTick) -> None:
    assert_type(event.scheduled_at, float)


def call_batch(batch: nimbus.QueueBatch) -> None:
    assert_type(process(batch), nimbus.BatchResult)


@app.on_queue(orders)
def charge(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    result = nimbus.BatchResult(failed=[], reasons={})
    for message in batch:
        result.fail(message.id, "declined" if message.body else None)
    result.fail(42)  # type: ignore[arg-type]
    return result


app.on_schedule("rate(1 minute)", missed="sometimes")  # type: ignore[arg-type]
app.on_queue(orders, batch_sise=10)  # type: ignore[call-arg]
