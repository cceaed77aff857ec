"""Retail orders: accepted over HTTP, queued, priced in batches, stored in a table.

    nimbus up examples/retail-orders

POST /orders checks the shape of an order and queues it (202); `process_orders` takes the
queue's messages in batches, prices each order from the catalog and stores it in the `orders`
table, whose `by_customer` index answers GET /customers/{id}/orders. An order that cannot be
priced is reported failed with `BatchResult`: only it is retried, and after the retries it
goes to the dead letters (`nimbus dlq ls`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import nimbus

app = nimbus.App("retail-orders")

incoming = app.queue("incoming-orders")
orders = app.table(
    "orders",
    key="id",
    indexes={"by_customer": nimbus.IndexSpec(key="customer", sort_key="created_at")},
)

CATALOG = {"apple": 50, "bread": 250, "cheese": 725, "coffee": 1199, "milk": 129}
"""Prices in cents, by SKU. Only the processor reads it: accepting an order never waits on it."""
CUSTOMER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_LINES = 50
MAX_QUANTITY = 1000


class InvalidOrder(ValueError):
    """The order cannot be accepted (HTTP 400) or priced (the message fails)."""


def parse_order(body: Any) -> tuple[str, list[dict[str, Any]]]:
    """The customer and the lines of an order body; InvalidOrder says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidOrder("the body must be a JSON object")
    unknown = sorted(set(body) - {"customer", "lines"})
    if unknown:
        raise InvalidOrder(f"unknown fields: {', '.join(unknown)}")
    customer, lines = body.get("customer"), body.get("lines")
    if not isinstance(customer, str) or not CUSTOMER_ID.fullmatch(customer):
        raise InvalidOrder("'customer' must be 1-64 letters, digits, '-' or '_'")
    if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_LINES:
        raise InvalidOrder(f"'lines' must be a list of 1 to {MAX_LINES} order lines")
    for number, line in enumerate(lines):
        if not isinstance(line, dict) or set(line) != {"sku", "quantity"}:
            raise InvalidOrder(f"lines[{number}] must be an object with 'sku' and 'quantity'")
        if not isinstance(line["sku"], str) or not line["sku"]:
            raise InvalidOrder(f"lines[{number}].sku must be a non-empty string")
        quantity = line["quantity"]
        if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidOrder(f"lines[{number}].quantity must be a whole number 1-{MAX_QUANTITY}")
    return customer, lines


@app.http("POST", "/orders", uses=[incoming])
def accept_order(request: nimbus.Request) -> nimbus.Response:
    """Check the order's shape, give it an id and queue it; nothing is queued when it is bad."""
    try:
        customer, lines = parse_order(request.json())
    except InvalidOrder as error:
        raise nimbus.BadRequest(str(error)) from None
    order_id = uuid.uuid4().hex
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    order = {"id": order_id, "customer": customer, "lines": lines, "created_at": created_at}
    incoming.send(order)
    return nimbus.Response(
        {"id": order_id, "status": "accepted"},
        status=202,
        headers={"location": f"/orders/{order_id}"},
    )


def price(order: Any) -> dict[str, Any]:
    """The order as stored: each line with its unit price and amount, and the total, in cents.
    Other senders than `accept_order` may use the queue, so the message is checked again."""
    if not isinstance(order, dict) or not {"id", "created_at"} <= order.keys():
        raise InvalidOrder("the message is not an order")
    parse_order({"customer": order.get("customer"), "lines": order.get("lines")})
    priced = []
    for line in order["lines"]:
        if line["sku"] not in CATALOG:
            raise InvalidOrder(f"unknown sku {line['sku']!r}")
        unit = CATALOG[line["sku"]]
        priced.append({**line, "unit_cents": unit, "amount_cents": unit * line["quantity"]})
    total = sum(line["amount_cents"] for line in priced)
    return {**order, "lines": priced, "total_cents": total, "status": "confirmed"}


@app.on_queue(
    incoming,
    batch_size=25,
    batching_window=0.2,
    uses=[orders],
    # Lambda retries after 60 s; a second here keeps the example quick to watch.
    failure=nimbus.FailurePolicy(retries=2, backoff=1),
)
def process_orders(batch: nimbus.QueueBatch, context: nimbus.Context) -> nimbus.BatchResult:
    """Store every order of the batch; report those that cannot be priced as failed."""
    result = nimbus.BatchResult()
    for message in batch:
        try:
            order = price(message.json())
        except (InvalidOrder, nimbus.InvalidRequest) as error:
            context.logger.warning("message %s failed: %s", message.id, error)
            result.fail(message.id, reason=str(error))  # the dead letter's error says why
            continue
        # A message may come twice (at least once delivery): putting the same order again
        # changes nothing.
        orders.put(order)
    failed = len(result.failed)
    context.logger.info("stored %d orders, %d failed", len(batch) - failed, failed)
    return result


@app.http("GET", "/orders/{id}", uses=[orders])
def get_order(request: nimbus.Request) -> dict[str, Any]:
    found = orders.get(id=request.params["id"])
    if found is None:
        raise nimbus.HTTPError(404, f"no order {request.params['id']!r} (yet)")
    return found.data


@app.http("GET", "/customers/{id}/orders", uses=[orders])
def customer_orders(request: nimbus.Request) -> dict[str, Any]:
    """A customer's orders, newest first, a page at a time (`?cursor=` from the last page)."""
    page = orders.query(
        request.params["id"],
        index="by_customer",
        forward=False,
        limit=50,
        cursor=request.query.get("cursor"),
    )
    return {"orders": [item.data for item in page.items], "cursor": page.cursor}
