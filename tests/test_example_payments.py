"""examples/payments end to end: HTTP request -> table + queue -> pushes to WebSocket sessions,
and payments made over WebSockets, on a real platform with real clients."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "payments"
LIMIT = 30.0  # seconds to wait for a message (against hangs, not a timing assertion)

Launch = Callable[..., Platform]


@pytest.fixture
def platform(launch: Launch) -> Platform:
    return launch(EXAMPLE, "--no-reload")


def session(platform: Platform, user: str) -> ClientConnection:
    url = platform.url.replace("http://", "ws://", 1) + f"/live?user={user}"
    return connect(url, open_timeout=LIMIT)


def ask(client: ClientConnection, message: dict[str, Any]) -> Any:
    client.send(json.dumps(message))
    return next_push(client)


def next_push(client: ClientConnection) -> Any:
    return json.loads(client.recv(timeout=LIMIT))


def lunch(platform: Platform, creditor: str, debtors: list[str], cents: int) -> dict[str, Any]:
    body = {"from": creditor, "to": debtors, "amount_cents": cents, "note": "Lunch at Luigi's"}
    response = platform.http.post("/requests", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def alice_bob_twice(platform: Platform) -> Iterator[list[ClientConnection]]:
    with (
        session(platform, "alice") as alice,
        session(platform, "bob") as phone,
        session(platform, "bob") as laptop,
    ):
        for client in (alice, phone, laptop):
            assert ask(client, {"action": "pending"}) == {"type": "pending", "debts": []}
        yield [alice, phone, laptop]


def test_a_request_reaches_every_open_session_and_payment_is_told_back(
    platform: Platform, alice_bob_twice: list[ClientConnection]
) -> None:
    alice, phone, laptop = alice_bob_twice
    created = lunch(platform, "alice", ["bob", "carol"], 1250)
    for client in (phone, laptop):
        push = next_push(client)
        assert push["type"] == "payment_requested"
        assert push["debt"]["creditor"] == "alice"
        assert push["debt"]["amount_cents"] == 1250
        assert push["debt"]["id"] == f"{created['id']}-bob"
    paid = ask(phone, {"action": "pay", "debt": f"{created['id']}-bob"})
    assert paid == {"type": "paid", "debt": f"{created['id']}-bob"}
    told = next_push(alice)
    assert told["type"] == "paid"
    assert told["debt"]["debtor"] == "bob" and told["debt"]["status"] == "paid"
    again = ask(laptop, {"action": "pay", "debt": f"{created['id']}-bob"})
    assert again["type"] == "error" and "not an open debt" in again["error"]
    status = platform.http.get(f"/requests/{created['id']}").json()
    assert status["debts"] == {"bob": "paid", "carol": "open"}


def test_who_was_offline_finds_it_pending(
    platform: Platform, alice_bob_twice: list[ClientConnection]
) -> None:
    alice, phone, _ = alice_bob_twice
    created = lunch(platform, "bob", ["carol", "alice"], 900)
    assert next_push(alice)["type"] == "payment_requested"
    with session(platform, "carol") as carol:
        waiting = ask(carol, {"action": "pending"})
        assert [d["id"] for d in waiting["debts"]] == [f"{created['id']}-carol"]
        stolen = ask(alice, {"action": "pay", "debt": f"{created['id']}-carol"})
        assert stolen["type"] == "error"  # alice cannot pay carol's share
        assert ask(carol, {"action": "pay", "debt": f"{created['id']}-carol"})["type"] == "paid"
        assert ask(carol, {"action": "pending"}) == {"type": "pending", "debts": []}
    told = next_push(phone)
    assert (told["type"], told["debt"]["debtor"]) == ("paid", "carol")


def test_bad_requests_and_anonymous_sessions_are_refused(platform: Platform) -> None:
    for body in (
        {"from": "alice", "to": [], "amount_cents": 100},
        {"from": "alice", "to": ["alice"], "amount_cents": 100},
        {"from": "alice", "to": ["bob"], "amount_cents": 0},
        {"from": "Alice!", "to": ["bob"], "amount_cents": 100},
        {"from": "alice", "to": ["bob"], "amount_cents": 100, "tip": 5},
    ):
        response = platform.http.post("/requests", json=body)
        assert response.status_code == 400, body
    assert platform.http.get("/requests/nothing").status_code == 404
    url = platform.url.replace("http://", "ws://", 1) + "/live"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=LIMIT)
    assert refused.value.response.status_code == 401
    with session(platform, "dave") as dave:
        assert ask(dave, {"action": "pending"}) == {"type": "pending", "debts": []}
        assert ask(dave, {"hello": 1})["type"] == "error"
