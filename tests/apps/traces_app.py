"""A test app for traces (tests/test_traces.py): an order goes from an HTTP request through a
queue, a table and the table's change feed to a second table, three hops later."""

from __future__ import annotations

from typing import Any

import nimbus

app = nimbus.App("traces")

orders = app.queue("orders", visibility_timeout=5)
order_table = app.table("order_table", key="id")
shipments = app.table("shipments", key="id")


@app.http("POST", "/orders", uses=[orders])
def place_order(request: nimbus.Request) -> dict[str, Any]:
    order = request.json()
    orders.send(order)
    return {"accepted": order["id"]}


@app.on_queue(orders, uses=[order_table])
def store_order(batch: nimbus.QueueBatch) -> None:
    for message in batch.messages:
        order_table.put(message.json())


@app.on_table(order_table, uses=[shipments])
def ship_order(batch: nimbus.TableBatch) -> None:
    for change in batch.changes:
        if change.new is not None:
            shipments.put({"id": change.new["id"], "status": "shipped"})


@app.http("GET", "/fail")
def fail(request: nimbus.Request) -> None:
    raise RuntimeError("the warehouse is on fire")
