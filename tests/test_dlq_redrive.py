"""Dead letters of queue triggers: a failure policy's dead-letter queue gets the message as it
was sent (body and attributes, plus the failure's attributes and where it came from) and
`nimbus dlq redrive-queue` moves it back there; a topic gets the message's body; a queue's own
dead letters (`max_receives`) show their receives and the function consuming the queue. On the
real platform (the app: tests/apps/dead_letters_app.py), but for the attribute round trip,
which is a property of the queue service. Waits have generous limits; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Platform
from nimbus.backends.embedded.queue import EmbeddedQueues
from nimbus.compute.failures import error_attributes
from nimbus.compute.protocol import ErrorInfo
from nimbus.services.queue import (
    ERROR_ATTRIBUTES,
    SOURCE_ATTRIBUTE,
    Message,
    Queues,
    dead_letter_attributes,
)
from nimbus.spec.resources import QueueSpec
from test_triggers import Harness, Record, send, start_harness


@pytest.fixture(scope="module")
def dead(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("dead-letters")
    running = start_harness("dead_letters_app.py", folder / "data", folder / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


def peek(platform: Platform, queue: str) -> list[Record]:
    """The visible messages of `queue`, left visible (received with no visibility timeout)."""
    op = {"type": "queue.receive", "max_messages": 100, "visibility_timeout": 0}
    response = platform.http.post(f"/_nimbus/resources/{queue}", json=op)
    assert response.status_code == 200, response.text
    messages: list[Record] = response.json()
    return messages


def last_request_id(platform: Platform, function: str) -> str:
    """The request id of the function's latest invocation."""
    latest = platform.http.get("/_nimbus/invocations", params={"function": function}).json()[0]
    request_id: str = latest["id"]
    return request_id


def test_a_dead_letter_queue_gets_the_message_as_sent_and_redrives_it_to_its_source(
    dead: Harness,
) -> None:
    """SQS's redrive policy, through a trigger's failure policy: the dead letter is the message
    (not the trigger's event), with Lambda's error attributes naming the invocation that failed
    it last, and goes back to its queue as it was sent; a message of no known source stays."""
    original = {"origin": "test", "kind": "web"}
    dead.ok(
        send("orders", {"id": "o-1", "fail": True}, attributes=original),
        {"op": "send", "queue": "orders_dlq", "body": "stray"},
    )

    def dead_lettered() -> list[Record]:
        return [m for m in peek(dead.platform, "orders_dlq") if m["body"] != "stray"]

    [letter] = dead.platform.wait_for(dead_lettered, "the failed order, in orders_dlq")
    assert json.loads(letter["body"]) == {"id": "o-1", "fail": True}
    assert letter["attributes"] == {
        **original,
        "nimbus.source": "orders",
        "RequestID": last_request_id(dead.platform, "on_orders"),
        "ErrorCode": "BatchItemFailure",
        "ErrorMessage": "cannot ship o-1",
    }

    dead.heal("o-1")
    assert dead.platform.cli_json("dlq", "redrive-queue", "orders_dlq") == {"moved": 1, "left": 1}
    records = dead.wait_records(
        "on_orders", lambda rs: any(r["ok"] for r in rs), "the re-driven order"
    )
    assert [(r["receive_count"], r["ok"]) for r in records] == [(1, False), (2, False), (1, True)]
    assert (records[-1]["body"], records[-1]["attributes"]) == (letter["body"], original)
    assert [m["body"] for m in peek(dead.platform, "orders_dlq")] == ["stray"]
    again = dead.platform.cli("dlq", "redrive-queue", "orders_dlq", check=True).stdout
    assert "moved 0 message(s)" in again
    assert "1 message(s) stay in orders_dlq: without a known source queue, or in flight" in again


def test_a_dead_letter_topic_gets_the_messages_body_and_attributes(dead: Harness) -> None:
    """No source attribute: an event is not re-driven (its queue subscriptions would carry it)."""
    dead.ok(send("notes", {"id": "n-1"}, attributes={"origin": "test"}))
    [message] = dead.drain("dead_notes_q", lambda received: len(received) >= 1)
    event = json.loads(message["body"])
    assert (event["type"], event["data"]) == ("nimbus.destination", json.dumps({"id": "n-1"}))
    assert event["attributes"] == {
        "origin": "test",
        "RequestID": last_request_id(dead.platform, "on_notes"),
        "ErrorCode": "RuntimeError",
        "ErrorMessage": "cannot file n-1",
    }


def test_a_stream_dead_letter_names_the_invocation_that_failed_it(dead: Harness) -> None:
    dead.ok({"op": "put_record", "stream": "ticks", "key": "k", "data": "tick-1"})
    [message] = dead.drain("ticks_dlq", lambda received: len(received) >= 1)
    attributes = message["attributes"]
    assert attributes["RequestID"] == last_request_id(dead.platform, "on_ticks")
    assert attributes["ErrorCode"] == "RuntimeError" and "nimbus.source" not in attributes


def test_a_queues_own_dead_letters_show_their_receives_and_consuming_function(
    dead: Harness,
) -> None:
    """rq (max_receives 2) moves its message to rq_dlq after on_rq failed it twice; unread
    (max_receives 1, no trigger) keeps its own after one receive: no function is known."""
    dead.ok(send("rq", {"id": "rq-1"}), send("unread", {"id": "u-1"}))

    def listed() -> dict[str, Record] | None:
        dead.ok({"op": "receive", "queue": "unread", "visibility": 0})  # the second one moves it
        letters = {letter["source"]: letter for letter in dead.dead_letters("")}
        return letters if {"queue:rq", "queue:unread"} <= letters.keys() else None

    letters = dead.platform.wait_for(listed, "both queues' dead letters")
    moved, kept = letters["queue:rq"], letters["queue:unread"]
    assert moved["id"].startswith("queue:rq_dlq:") and kept["id"].startswith("queue:unread:")
    assert (moved["attempts"], moved["function"]) == (2, "on_rq")
    assert (kept["attempts"], kept["function"]) == (1, None)
    assert dead.platform.cli_json("dlq", "show", moved["id"]) == moved
    assert [letter["id"] for letter in dead.dead_letters("on_rq")] == [moved["id"]]
    table = dead.platform.cli("dlq", "ls", check=True).stdout
    [row] = [line for line in table.splitlines() if kept["id"] in line]
    assert [cell.strip() for cell in row.split("│")][2:5] == ["queue:unread", "-", "1"]


# the queue service


def test_a_data_dir_of_an_earlier_version_keeps_the_receives_of_moved_messages(
    tmp_path: Path,
) -> None:
    """queue.db without the column that keeps them gets it when opened."""
    specs = [QueueSpec(name="dlq"), QueueSpec(name="jobs", max_receives=1, dead_letter="dlq")]

    async def create() -> None:
        service = EmbeddedQueues(tmp_path)
        for spec in specs:
            await service.create(spec)
        await service.close()

    async def move() -> int:
        service = EmbeddedQueues(tmp_path)
        await service.send("jobs", "poison")
        await service.receive("jobs", visibility_timeout=0)
        assert await service.receive("jobs") == []  # received once: moved to dlq instead
        [moved] = await service.moved_here("dlq")
        await service.close()
        return moved.receive_count

    asyncio.run(create())
    with contextlib.closing(sqlite3.connect(tmp_path / "queue.db")) as old:
        old.execute("ALTER TABLE messages DROP COLUMN dead_receives")
    assert asyncio.run(move()) == 1


# the attribute round trip


@pytest.fixture(scope="module")
def queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Queues]]:
    runner = asyncio.Runner()
    service = EmbeddedQueues(Path(tmp_path_factory.mktemp("queues")))
    for name in ("jobs", "dlq"):
        runner.run(service.create(QueueSpec(name=name)))
    yield runner, service
    runner.run(service.close())
    runner.close()


ADDED = {SOURCE_ATTRIBUTE, *ERROR_ATTRIBUTES}
NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,6}(\.[A-Za-z0-9_-]{1,6}){0,2}", fullmatch=True)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    own=st.dictionaries(NAMES.filter(lambda name: name not in ADDED), TEXT, max_size=6),
    error=st.builds(ErrorInfo, st.just("Handler"), NAMES, TEXT),
    request_id=TEXT,
    group=st.none() | st.from_regex(r"[!-~]{1,12}", fullmatch=True),
)
def test_a_redriven_dead_letter_has_the_attributes_it_was_sent_with(
    queues: tuple[asyncio.Runner, Queues],
    own: dict[str, str],
    error: ErrorInfo,
    request_id: str,
    group: str | None,
) -> None:
    runner, service = queues
    errors = error_attributes(error, request_id)
    dead_lettered = dead_letter_attributes(own, "jobs", errors)
    assert dead_lettered == {**own, SOURCE_ATTRIBUTE: "jobs", **errors}

    async def round_trip() -> Message:
        await service.send("dlq", "failed", attributes=dead_lettered, group=group)
        assert await service.redrive_to_source("dlq") == 1
        [back] = await service.receive("jobs", 10)
        await service.delete_message("jobs", back.receipt)
        return back

    back = runner.run(round_trip())
    assert (back.body, back.attributes, back.group) == ("failed", own, group)
