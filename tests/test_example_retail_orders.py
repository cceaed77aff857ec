"""examples/retail-orders end to end: HTTP -> queue -> batches -> table, on a real platform."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "retail-orders"
PRICES = {"apple": 50, "bread": 250, "cheese": 725, "coffee": 1199, "milk": 129}  # cents
CUSTOMERS = ["ada", "grace", "alan", "edsger"]
ORDERS_EACH = 15

Launch = Callable[..., Platform]


@pytest.fixture
def platform(launch: Launch) -> Platform:
    return launch(EXAMPLE, "--no-reload")


def an_order(number: int) -> dict[str, Any]:
    skus = sorted(PRICES)
    lines = [
        {"sku": skus[(number + k) % len(skus)], "quantity": 1 + (number * 7 + k) % 5}
        for k in range(1 + number % 3)
    ]
    return {"customer": CUSTOMERS[number % len(CUSTOMERS)], "lines": lines}


def priced(line: dict[str, Any]) -> dict[str, Any]:
    unit = PRICES[line["sku"]]
    return {**line, "unit_cents": unit, "amount_cents": unit * line["quantity"]}


def accept(platform: Platform, order: dict[str, Any]) -> str:
    response = platform.http.post("/orders", json=order)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["id"]
    assert response.json() == {"id": order_id, "status": "accepted"}
    assert response.headers["location"] == f"/orders/{order_id}"
    return order_id


def stored(platform: Platform, order_id: str) -> dict[str, Any] | None:
    response = platform.http.get(f"/orders/{order_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


def dead_letters(platform: Platform) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = platform.cli_json("dlq", "ls")
    return letters


def test_orders_are_queued_processed_and_stored(platform: Platform) -> None:
    sent = [an_order(number) for number in range(len(CUSTOMERS) * ORDERS_EACH)]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda order: accept(platform, order), sent))
    assert len(set(ids)) == len(sent)

    for order_id, order in zip(ids, sent, strict=True):
        found = platform.wait_for(partial(stored, platform, order_id), f"order {order_id}")
        lines = [priced(line) for line in order["lines"]]
        assert found == {
            "id": order_id,
            "customer": order["customer"],
            "lines": lines,
            "total_cents": sum(line["amount_cents"] for line in lines),
            "created_at": found["created_at"],
            "status": "confirmed",
        }

    # The secondary index: each customer's orders, and only theirs, newest first.
    for customer in CUSTOMERS:
        response = platform.http.get(f"/customers/{customer}/orders")
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["cursor"] is None
        mine = {i for i, order in zip(ids, sent, strict=True) if order["customer"] == customer}
        assert {order["id"] for order in page["orders"]} == mine
        assert all(order["customer"] == customer for order in page["orders"])
        created = [order["created_at"] for order in page["orders"]]
        assert created == sorted(created, reverse=True)
    assert platform.http.get("/customers/nobody/orders").json() == {"orders": [], "cursor": None}
    assert platform.http.get("/orders/nope").status_code == 404

    # Nothing failed.
    invocations = platform.cli_json("invocations", "process_orders")
    assert invocations
    assert {record["outcome"] for record in invocations} == {"success"}
    assert dead_letters(platform) == []


BAD_ORDERS = [
    (b"{oops", "not valid JSON"),
    (b"[]", "JSON object"),
    (b'{"lines": [{"sku": "milk", "quantity": 1}]}', "'customer'"),
    (b'{"customer": "ada/../x", "lines": [{"sku": "milk", "quantity": 1}]}', "'customer'"),
    (b'{"customer": "mallory"}', "'lines'"),
    (b'{"customer": "mallory", "lines": []}', "'lines'"),
    (b'{"customer": "mallory", "lines": [{"sku": "milk"}]}', "lines[0]"),
    (b'{"customer": "mallory", "lines": [{"sku": "", "quantity": 1}]}', "lines[0].sku"),
    (b'{"customer": "mallory", "lines": [{"sku": "milk", "quantity": 0}]}', "lines[0].quantity"),
    (b'{"customer": "mallory", "lines": [{"sku": "milk", "quantity": 1.5}]}', "quantity"),
    (b'{"customer": "mallory", "lines": [{"sku": "milk", "quantity": true}]}', "quantity"),
    (b'{"customer": "mallory", "lines": [], "coupon": "FREE"}', "unknown fields: coupon"),
]


def test_bad_orders_are_refused_and_a_poison_order_is_dead_lettered(platform: Platform) -> None:
    for body, message in BAD_ORDERS:
        response = platform.http.post(
            "/orders", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.text)

    # Well formed, so accepted, but it cannot be priced: it fails in the processor, alone.
    poison = accept(platform, {"customer": "mallory", "lines": [{"sku": "unicorn", "quantity": 1}]})
    good = accept(platform, {"customer": "mallory", "lines": [{"sku": "milk", "quantity": 2}]})

    letters = platform.wait_for(lambda: dead_letters(platform), "the poison order, dead-lettered")
    assert len(letters) == 1
    letter = letters[0]
    assert letter["function"] == "process_orders"
    assert letter["source"] == "queue:incoming-orders"
    assert letter["attempts"] == 3  # the first delivery and two retries (FailurePolicy)
    assert letter["error"]["type"] == "BatchItemFailure"
    assert letter["error"]["message"] == "unknown sku 'unicorn'"  # the reason the handler gave
    listing = platform.cli("dlq", "ls", check=True).stdout
    assert letter["id"] in listing
    assert "BatchItemFailure" in listing

    shown = json.loads(platform.cli("dlq", "show", letter["id"], check=True).stdout)
    (message,) = json.loads(shown["payload"])["messages"]
    assert json.loads(message["body"])["id"] == poison
    assert message["receive_count"] == 3
    logs = platform.cli("logs", "process_orders", check=True).stdout
    assert logs.count("failed: unknown sku 'unicorn'") == 3

    # Only the poison order failed; none of the refused ones was queued (the processor would
    # have failed them too, so they would be dead letters).
    assert stored(platform, poison) is None
    assert stored(platform, good) is not None
    mallory = platform.http.get("/customers/mallory/orders").json()["orders"]
    assert [order["id"] for order in mallory] == [good]


def test_a_redriven_poison_order_that_still_fails_is_dead_lettered_again(
    platform: Platform,
) -> None:
    """Regression: a re-driven batch whose handler still reports its item as failed used to
    count as done, and the order was lost."""
    poison = accept(platform, {"customer": "trent", "lines": [{"sku": "dragon", "quantity": 1}]})

    def letter_of_poison() -> dict[str, Any] | None:
        for letter in dead_letters(platform):
            (message,) = json.loads(letter["payload"])["messages"]
            if json.loads(message["body"])["id"] == poison:
                return letter
        return None

    first = platform.wait_for(letter_of_poison, "the poison order, dead-lettered")
    job = json.loads(platform.cli("dlq", "redrive", first["id"], "--json", check=True).stdout)
    again = platform.wait_for(
        lambda: (letter := letter_of_poison()) and letter["id"] != first["id"] and letter,
        "the re-driven poison order, dead-lettered again",
    )
    assert again["error"]["type"] == "BatchItemFailure"
    assert platform.cli_json("status", job["id"])["status"] == "failed"
