"""Contract of the queue service (Amazon SQS semantics), run against every backend.

Time is an injected clock: delays, visibility timeouts, dedup windows and retention are tested
by moving it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import nimbus.sdk.queue
from conftest import Clock, run_killed
from nimbus.backends.embedded.queue import EmbeddedQueues
from nimbus.errors import (
    Conflict,
    InvalidRequest,
    NimbusError,
    NotFound,
    PayloadTooLarge,
    PlatformUnavailable,
)
from nimbus.sdk.queue import Queue
from nimbus.services.queue import (
    MAX_BATCH,
    ChangeVisibility,
    Delete,
    Message,
    QueueOp,
    Queues,
    QueueStats,
    Receive,
    Send,
    SendBatch,
    SendBatchResult,
    SendEntry,
    SendResult,
    Stats,
    dead_letter_attributes,
    perform,
)
from nimbus.spec.resources import QueueSpec

T0 = 1_700_000_000.0
DAY = 86400.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

pytestmark = pytest.mark.anyio


def open_queues(backend: str, path: Path, clock: Callable[[], float]) -> Queues:
    if backend == "embedded":
        return EmbeddedQueues(path, clock=clock)
    raise AssertionError(f"no queue backend named {backend!r}")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def make(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Callable[[], Queues]]:
    """Opens the backend on the same data dir each time (a restart); closes all at the end."""
    opened: list[Queues] = []

    def make_one() -> Queues:
        opened.append(open_queues(backend, tmp_path / "data", clock))
        return opened[-1]

    yield make_one
    for service in opened:
        await service.close()


@pytest.fixture
async def queues(make: Callable[[], Queues]) -> Queues:
    service = make()
    await service.create(QueueSpec(name="jobs"))
    await service.create(
        QueueSpec(name="orders", fifo=True, content_dedup=True, visibility_timeout=60)
    )
    return service


async def one(queues: Queues, name: str, **options: Any) -> Message:
    messages = await queues.receive(name, **options)
    assert len(messages) == 1, messages
    return messages[0]


async def bodies(queues: Queues, name: str, most: int = 100, **options: Any) -> list[str]:
    return [m.body for m in await queues.receive(name, most, **options)]


async def depth(queues: Queues, name: str) -> tuple[int, int, int, int]:
    stats = await queues.stats(name)
    return stats.visible, stats.in_flight, stats.delayed, stats.dead_letters


# lifecycle


async def test_create_is_idempotent_and_an_update_keeps_the_messages(queues: Queues) -> None:
    await queues.send("jobs", "a")
    await queues.create(QueueSpec(name="jobs"))
    await queues.create(QueueSpec(name="jobs", visibility_timeout=5, max_receives=3))
    message = await one(queues, "jobs")
    assert message.body == "a"
    assert (await queues.stats("jobs")).in_flight == 1


async def test_a_queue_cannot_change_kind_and_dead_letter_queues_match_their_sources(
    queues: Queues,
) -> None:
    with pytest.raises(Conflict, match="standard"):
        await queues.create(QueueSpec(name="jobs", fifo=True))
    with pytest.raises(InvalidRequest, match="same kind"):
        await queues.create(QueueSpec(name="fails", max_receives=2, dead_letter="orders"))
    await queues.create(QueueSpec(name="later", max_receives=2, dead_letter="missing"))
    with pytest.raises(InvalidRequest, match="same kind"):
        await queues.create(QueueSpec(name="missing", fifo=True))
    with pytest.raises(NotFound):
        await queues.stats("fails")
    with pytest.raises(NotFound):
        await queues.stats("missing")


async def test_delete_removes_the_queue_with_everything_and_is_idempotent(
    queues: Queues,
) -> None:
    await queues.send("jobs", "a")
    await queues.delete("jobs")
    await queues.delete("jobs")
    with pytest.raises(NotFound, match="jobs"):
        await queues.send("jobs", "b")
    await queues.create(QueueSpec(name="jobs"))
    assert await depth(queues, "jobs") == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.send("nope", "x"),
        lambda q: q.send_batch("nope", [SendEntry(body="x")]),
        lambda q: q.receive("nope"),
        lambda q: q.delete_message("nope", "1:0123456789abcdef"),
        lambda q: q.delete_batch("nope", ["1:0123456789abcdef"]),
        lambda q: q.change_visibility("nope", "1:0123456789abcdef", 1),
        lambda q: q.release("nope", "1:0123456789abcdef"),
        lambda q: q.stats("nope"),
        lambda q: q.dead_letters("nope"),
        lambda q: q.redrive("nope"),
        lambda q: q.redrive_to_source("nope"),
        lambda q: q.moved_here("nope"),
        lambda q: q.purge("nope"),
    ],
)
async def test_an_unknown_queue_is_not_found(
    queues: Queues, call: Callable[[Queues], Awaitable[object]]
) -> None:
    with pytest.raises(NotFound, match="nope"):
        await call(queues)


async def test_a_closed_service_refuses_calls(make: Callable[[], Queues]) -> None:
    service = make()
    await service.create(QueueSpec(name="jobs"))
    await service.close()
    await service.close()
    with pytest.raises(PlatformUnavailable):
        await service.send("jobs", "x")


# sending and receiving


async def test_a_message_arrives_with_every_field(queues: Queues, clock: Clock) -> None:
    sent = await queues.send(
        "jobs", "hello", attributes={"kind": "greeting", "a.b": ""}, traceparent=TRACEPARENT
    )
    assert sent.sequence is None
    clock.advance(3)
    message = await one(queues, "jobs")
    assert message.id == sent.id
    assert message.body == "hello"
    assert message.attributes == {"kind": "greeting", "a.b": ""}
    assert message.traceparent == TRACEPARENT
    assert (message.sent_at, message.first_received_at) == (T0, T0 + 3)
    assert message.receive_count == 1
    assert (message.group, message.dedup_id, message.sequence) == (None, None, None)
    assert (message.last_error, message.source) == (None, None)


async def test_a_standard_queue_keeps_a_group_but_orders_nothing_by_it(queues: Queues) -> None:
    await queues.send("jobs", "a", group="tenant-1")
    await queues.send("jobs", "b", group="tenant-1")
    received = await queues.receive("jobs", 10)
    assert [(m.body, m.group) for m in received] == [("a", "tenant-1"), ("b", "tenant-1")]


async def test_a_message_comes_back_after_its_visibility_timeout_with_a_new_receipt(
    queues: Queues, clock: Clock
) -> None:
    await queues.send("jobs", "work")
    first = await one(queues, "jobs", visibility_timeout=10)
    clock.advance(9.5)
    assert await queues.receive("jobs") == []
    assert await depth(queues, "jobs") == (0, 1, 0, 0)
    clock.advance(0.5)
    second = await one(queues, "jobs")
    assert second.id == first.id
    assert second.receipt != first.receipt
    assert second.receive_count == 2
    assert second.first_received_at == first.first_received_at == T0
    with pytest.raises(Conflict, match="stale"):
        await queues.delete_message("jobs", first.receipt)
    await queues.delete_message("jobs", second.receipt)
    assert await depth(queues, "jobs") == (0, 0, 0, 0)


async def test_the_queue_visibility_timeout_applies_by_default(
    queues: Queues, clock: Clock
) -> None:
    await queues.create(QueueSpec(name="jobs", visibility_timeout=7))
    await queues.send("jobs", "x")
    await one(queues, "jobs")
    clock.advance(6.9)
    assert await queues.receive("jobs") == []
    clock.advance(0.1)
    assert (await one(queues, "jobs")).receive_count == 2


async def test_a_standard_queue_delivers_in_the_order_messages_became_visible(
    queues: Queues, clock: Clock
) -> None:
    await queues.send("jobs", "late", delay=5)
    for body in ("a", "b", "c"):
        await queues.send("jobs", body)
    assert await bodies(queues, "jobs", 2, visibility_timeout=2) == ["a", "b"]
    clock.advance(2)  # a and b visible again at T0+2, c since T0
    assert await bodies(queues, "jobs", 2, visibility_timeout=100) == ["c", "a"]
    clock.advance(3)  # late is visible at T0+5, b since T0+2
    assert await bodies(queues, "jobs", visibility_timeout=100) == ["b", "late"]


async def test_delays_hide_messages_until_due(queues: Queues, clock: Clock) -> None:
    await queues.create(QueueSpec(name="slow", delay=30, visibility_timeout=100))
    await queues.send("slow", "queue delay")
    await queues.send("slow", "own delay", delay=10)
    await queues.send("slow", "no delay", delay=0)
    assert await bodies(queues, "slow") == ["no delay"]
    assert await depth(queues, "slow") == (0, 1, 2, 0)
    clock.advance(10)
    assert await bodies(queues, "slow") == ["own delay"]
    clock.advance(20)
    assert await bodies(queues, "slow") == ["queue delay"]


async def test_send_batch_commits_the_good_entries_and_fails_bad_ones_alone(
    queues: Queues,
) -> None:
    entries = [
        SendEntry(body="one", attributes={"n": "1"}),
        SendEntry(body=""),
        SendEntry(body="two", delay=1000),
        SendEntry(body="three", traceparent=TRACEPARENT),
    ]
    result = await queues.send_batch("jobs", entries)
    assert [(f.index, f.error) for f in result.failed] == [
        (1, "InvalidRequest"),
        (2, "InvalidRequest"),
    ]
    assert "900" in result.failed[1].message
    assert [s is None for s in result.sent] == [False, True, True, False]
    received = await queues.receive("jobs", 10)
    assert [(m.body, m.attributes) for m in received] == [("one", {"n": "1"}), ("three", {})]
    sent = [s.id for s in result.sent if s is not None]
    assert [m.id for m in received] == sent


async def test_send_batch_takes_1_to_1000_entries(queues: Queues) -> None:
    with pytest.raises(InvalidRequest, match="1000"):
        await queues.send_batch("jobs", [])
    with pytest.raises(InvalidRequest, match="1000"):
        await queues.send_batch("jobs", [SendEntry(body="x")] * (MAX_BATCH + 1))
    result = await queues.send_batch("jobs", [SendEntry(body=f"{n}") for n in range(MAX_BATCH)])
    assert result.failed == []
    assert len({s.id for s in result.sent if s is not None}) == MAX_BATCH
    assert len(await queues.receive("jobs", 10000)) == MAX_BATCH


# bad input changes nothing


async def test_the_size_limit_counts_body_and_attributes_in_utf8(queues: Queues) -> None:
    await queues.create(QueueSpec(name="small", max_message_bytes=10))
    await queues.send("small", "12345", attributes={"ab": "é1"})  # 5 + 2 + 3 bytes
    with pytest.raises(PayloadTooLarge, match="11 bytes"):
        await queues.send("small", "123456", attributes={"ab": "é1"})
    with pytest.raises(PayloadTooLarge, match="max_message_bytes 10"):
        await queues.send("small", "ééééé1")
    assert await depth(queues, "small") == (1, 0, 0, 0)


@pytest.mark.parametrize(
    ("queue", "entry", "error", "match"),
    [
        ("jobs", SendEntry(body=""), InvalidRequest, "empty"),
        ("jobs", SendEntry(body="\ud800"), InvalidRequest, "not valid text"),
        ("jobs", SendEntry(body="x", attributes={"bad name": "v"}), InvalidRequest, "name"),
        ("jobs", SendEntry(body="x", attributes={".dot": "v"}), InvalidRequest, "name"),
        ("jobs", SendEntry(body="x", attributes={"a" * 257: "v"}), InvalidRequest, "256"),
        ("jobs", SendEntry(body="x", delay=-1), InvalidRequest, "delay"),
        ("jobs", SendEntry(body="x", delay=901), InvalidRequest, "900"),
        ("jobs", SendEntry(body="x", dedup_id="d"), InvalidRequest, "only to FIFO"),
        ("jobs", SendEntry(body="x", group="has space"), InvalidRequest, "group"),
        ("jobs", SendEntry(body="x", traceparent="nope"), InvalidRequest, "traceparent"),
        ("orders", SendEntry(body="x"), InvalidRequest, "needs a group"),
        ("orders", SendEntry(body="x", group="g", delay=5), InvalidRequest, "queue's delay"),
        ("orders", SendEntry(body="x", group="g" * 129), InvalidRequest, "128"),
        ("orders", SendEntry(body="x", group="g", dedup_id=""), InvalidRequest, "dedup_id"),
        ("plain-fifo", SendEntry(body="x", group="g"), InvalidRequest, "needs a dedup_id"),
    ],
)
async def test_an_invalid_message_is_refused_and_nothing_is_stored(
    queues: Queues, queue: str, entry: SendEntry, error: type[NimbusError], match: str
) -> None:
    await queues.create(QueueSpec(name="plain-fifo", fifo=True))
    with pytest.raises(error, match=match):
        await queues.send(
            queue, entry.body, delay=entry.delay, attributes=entry.attributes,
            group=entry.group, dedup_id=entry.dedup_id, traceparent=entry.traceparent,
        )  # fmt: skip
    result = await queues.send_batch(queue, [entry])
    assert [(f.index, f.error) for f in result.failed] == [(0, error.__name__)]
    assert result.sent == [None]
    assert await depth(queues, queue) == (0, 0, 0, 0)


FORGED = "9999999999999999999:0123456789abcdef"


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.receive("jobs", 0),
        lambda q: q.receive("jobs", 10001),
        lambda q: q.receive("jobs", visibility_timeout=-1),
        lambda q: q.receive("jobs", visibility_timeout=43201),
        lambda q: q.receive("jobs", wait=21),
        lambda q: q.delete_message("jobs", "not a receipt"),
        lambda q: q.delete_batch("jobs", []),
        lambda q: q.change_visibility("jobs", "1:0123456789abcdef", 43201),
        lambda q: q.change_visibility("jobs", "1:short", 1),
        lambda q: q.release("jobs", "1:0123456789abcdef", delay=-1),
        # forged receipts whose number is beyond any sequence (over 64 bits)
        lambda q: q.delete_message("jobs", FORGED),
        lambda q: q.change_visibility("jobs", FORGED, 1),
        lambda q: q.release("jobs", FORGED),
        lambda q: q.dead_letters("jobs", 0),
        lambda q: q.redrive("jobs", []),
    ],
)
async def test_invalid_arguments_are_refused_and_change_nothing(
    queues: Queues, clock: Clock, call: Callable[[Queues], Awaitable[object]]
) -> None:
    await queues.send("jobs", "x")
    message = await one(queues, "jobs", visibility_timeout=5)
    with pytest.raises(InvalidRequest):
        await call(queues)
    assert await depth(queues, "jobs") == (0, 1, 0, 0)
    clock.advance(5)
    assert (await one(queues, "jobs")).receipt != message.receipt


# acknowledging


async def test_delete_acknowledges_once_and_again_is_harmless(queues: Queues) -> None:
    await queues.send("jobs", "x")
    message = await one(queues, "jobs")
    await queues.delete_message("jobs", message.receipt)
    await queues.delete_message("jobs", message.receipt)
    assert await depth(queues, "jobs") == (0, 0, 0, 0)


async def test_an_expired_receipt_still_deletes_on_standard_but_not_on_fifo(
    queues: Queues, clock: Clock
) -> None:
    await queues.send("jobs", "x")
    await queues.send("orders", "y", group="g")
    standard = await one(queues, "jobs", visibility_timeout=5)
    fifo = await one(queues, "orders", visibility_timeout=5)
    clock.advance(6)
    await queues.delete_message("jobs", standard.receipt)
    with pytest.raises(Conflict, match="expired"):
        await queues.delete_message("orders", fifo.receipt)
    assert await depth(queues, "jobs") == (0, 0, 0, 0)
    assert (await one(queues, "orders")).receive_count == 2


async def test_delete_batch_answers_for_each_receipt(queues: Queues, clock: Clock) -> None:
    await queues.send_batch("jobs", [SendEntry(body=b) for b in "abc"])
    a, b, c = await queues.receive("jobs", 3, visibility_timeout=5)
    clock.advance(5)
    assert [m.body for m in await queues.receive("jobs", 1)] == ["a"]  # a's receipt is stale
    receipts = [a.receipt, b.receipt, "junk", c.receipt, b.receipt, FORGED]
    result = await queues.delete_batch("jobs", receipts)
    assert result.deleted == [1, 3, 4]
    assert [(f.index, f.error) for f in result.failed] == [
        (0, "Conflict"), (2, "InvalidRequest"), (5, "InvalidRequest"),
    ]  # fmt: skip
    assert "stale" in result.failed[0].message
    assert await depth(queues, "jobs") == (0, 1, 0, 0)


async def test_change_visibility_extends_or_ends_the_invisibility(
    queues: Queues, clock: Clock
) -> None:
    await queues.send("jobs", "x")
    message = await one(queues, "jobs", visibility_timeout=5)
    clock.advance(4)
    await queues.change_visibility("jobs", message.receipt, 10)
    clock.advance(9)
    assert await queues.receive("jobs") == []
    await queues.change_visibility("jobs", message.receipt, 0)
    again = await one(queues, "jobs", visibility_timeout=5)
    with pytest.raises(Conflict, match="stale"):
        await queues.change_visibility("jobs", message.receipt, 10)
    clock.advance(5)
    with pytest.raises(Conflict, match="expired"):
        await queues.change_visibility("jobs", again.receipt, 10)
    latest = await one(queues, "jobs")
    await queues.delete_message("jobs", latest.receipt)
    with pytest.raises(NotFound, match="gone"):
        await queues.change_visibility("jobs", latest.receipt, 10)


async def test_release_records_the_error_and_delays_the_retry(queues: Queues, clock: Clock) -> None:
    await queues.send("jobs", "x")
    message = await one(queues, "jobs")
    await queues.release("jobs", message.receipt, error="ValueError: boom", delay=20)
    assert await depth(queues, "jobs") == (0, 1, 0, 0)
    clock.advance(19)
    assert await queues.receive("jobs") == []
    clock.advance(1)
    again = await one(queues, "jobs")
    assert (again.receive_count, again.last_error) == (2, "ValueError: boom")
    await queues.release("jobs", again.receipt)  # no error: the last one stays, visible now
    third = await one(queues, "jobs")
    assert third.last_error == "ValueError: boom"
    with pytest.raises(Conflict, match="stale"):
        await queues.release("jobs", again.receipt, error="late")
    await queues.delete_message("jobs", third.receipt)
    with pytest.raises(NotFound):
        await queues.release("jobs", third.receipt)


# FIFO


async def test_fifo_delivers_each_group_in_order_one_batch_in_flight_at_a_time(
    queues: Queues,
) -> None:
    results = [await queues.send("orders", f"a{n}", group="a") for n in range(3)]
    results += [await queues.send("orders", f"b{n}", group="b") for n in range(2)]
    sequences = [r.sequence or 0 for r in results]
    assert 0 < sequences[0] < sequences[1] < sequences[2] < sequences[3] < sequences[4]
    first = await queues.receive("orders", 2)
    assert [m.body for m in first] == ["a0", "a1"]
    assert [m.sequence for m in first] == sequences[:2]
    second = await queues.receive("orders", 10)
    assert [m.body for m in second] == ["b0", "b1"]  # group a is blocked while a0, a1 fly
    assert await queues.receive("orders", 10) == []
    await queues.delete_message("orders", first[0].receipt)
    assert await queues.receive("orders", 10) == []  # a1 still in flight
    await queues.delete_message("orders", first[1].receipt)
    assert await bodies(queues, "orders") == ["a2"]


async def test_deleting_a_fifo_groups_head_wakes_a_long_poll_waiting_for_the_group(
    queues: Queues,
) -> None:
    """A trigger long-polls a FIFO queue whose only group is in flight; the delete that ends
    the batch lets the group's next message through at once, not when the poll times out
    (a regression: a group ran one batch per poll wait). The bound is the poll's own wait:
    a liveness check, generous enough for any machine."""
    await queues.send("orders", "a0", group="a")
    await queues.send("orders", "a1", group="a")
    [head] = await queues.receive("orders", 1)
    poll = asyncio.ensure_future(queues.receive("orders", 1, wait=20))
    await queues.delete_message("orders", head.receipt)
    done, _ = await asyncio.wait([poll], timeout=15)
    assert done, "the long poll was not woken by the delete that freed its group"
    assert [m.body for m in poll.result()] == ["a1"]


async def test_fifo_serves_the_group_with_the_oldest_head_first(queues: Queues) -> None:
    for body, group in [("x0", "x"), ("y0", "y"), ("x1", "x"), ("z0", "z"), ("y1", "y")]:
        await queues.send("orders", body, group=group)
    assert await bodies(queues, "orders", 3) == ["x0", "x1", "y0"]
    assert await bodies(queues, "orders", 3) == ["z0"]


async def test_fifo_with_many_groups_fills_a_receive_from_the_oldest_heads(
    queues: Queues,
) -> None:
    entries = [SendEntry(body=f"{n}", group=f"g{n % 300}") for n in range(600)]
    await queues.send_batch("orders", entries)
    received = await queues.receive("orders", 450)
    assert [m.body for m in received] == [
        f"{n}" for group in range(225) for n in (group, group + 300)
    ]
    assert await bodies(queues, "orders", 1000) == [
        f"{n}" for group in range(225, 300) for n in (group, group + 300)
    ]


async def test_a_fifo_message_coming_back_blocks_its_group_again(
    queues: Queues, clock: Clock
) -> None:
    for n in range(3):
        await queues.send("orders", f"m{n}", group="g")
    first = await queues.receive("orders", 2, visibility_timeout=10)
    await queues.change_visibility("orders", first[1].receipt, 100)
    clock.advance(10)  # m0 visible again, m1 still in flight: the group waits for m1
    assert await queues.receive("orders", 10) == []
    await queues.delete_message("orders", first[1].receipt)
    again = await queues.receive("orders", 10)
    assert [(m.body, m.receive_count) for m in again] == [("m0", 2), ("m2", 1)]


async def test_fifo_drops_duplicates_within_the_window_answering_with_the_original(
    queues: Queues, clock: Clock
) -> None:
    await queues.create(QueueSpec(name="orders", fifo=True, content_dedup=True, dedup_window=60))
    original = await queues.send("orders", "pay 5", group="g", dedup_id="pay-1")
    message = await one(queues, "orders")
    await queues.delete_message("orders", message.receipt)  # dedup outlives the message
    clock.advance(59)
    assert await queues.send("orders", "pay 5 again", group="h", dedup_id="pay-1") == original
    batch = await queues.send_batch(
        "orders",
        [
            SendEntry(body="pay 5", group="g", dedup_id="pay-1"),
            SendEntry(body="new", group="g", dedup_id="pay-2"),
            SendEntry(body="new", group="g", dedup_id="pay-2"),
        ],
    )
    assert batch.sent[0] == original
    assert batch.sent[1] == batch.sent[2] != original
    assert await bodies(queues, "orders") == ["new"]
    clock.advance(1)
    later = await queues.send("orders", "pay 5", group="g", dedup_id="pay-1")
    assert later.id != original.id
    assert (later.sequence or 0) > (original.sequence or 0)


async def test_content_dedup_uses_the_body_hash(queues: Queues) -> None:
    first = await queues.send("orders", "same", group="g")
    assert await queues.send("orders", "same", group="other") == first
    assert (await queues.send("orders", "different", group="g")).id != first.id
    received = await queues.receive("orders", 10)
    assert [m.dedup_id for m in received] == [
        hashlib.sha256(b"same").hexdigest(),
        hashlib.sha256(b"different").hexdigest(),
    ]


# dead letters


async def test_a_poison_message_is_delivered_max_receives_times_then_dead_lettered(
    queues: Queues, clock: Clock
) -> None:
    await queues.create(QueueSpec(name="jobs", max_receives=3, visibility_timeout=10))
    sent = await queues.send("jobs", "poison", attributes={"k": "v"})
    await queues.send("jobs", "fine")
    for attempt in range(1, 4):
        message = next(m for m in await queues.receive("jobs", 10) if m.body == "poison")
        assert message.receive_count == attempt
        await queues.release("jobs", message.receipt, error=f"boom {attempt}")
    assert await queues.receive("jobs") == []  # "fine" is in flight, "poison" dead
    assert await depth(queues, "jobs") == (0, 1, 0, 1)
    (dead,) = await queues.dead_letters("jobs")
    assert (dead.id, dead.body, dead.attributes) == (sent.id, "poison", {"k": "v"})
    assert (dead.receive_count, dead.last_error, dead.source) == (3, "boom 3", "jobs")
    assert (dead.sent_at, dead.dead_at) == (T0, T0)
    assert await queues.redrive("jobs") == 1
    assert await queues.dead_letters("jobs") == []
    again = await one(queues, "jobs")
    assert (again.id, again.body, again.receive_count, again.attributes) == (
        sent.id,
        "poison",
        1,
        {"k": "v"},
    )
    assert again.last_error is None


async def test_redrive_by_id_moves_only_those_and_an_unknown_id_moves_nothing(
    queues: Queues,
) -> None:
    await queues.create(QueueSpec(name="jobs", max_receives=1, visibility_timeout=0))
    sent = [await queues.send("jobs", body) for body in ("a", "b", "c")]
    await queues.receive("jobs", 10)
    assert await queues.receive("jobs", 10) == []
    assert [d.body for d in await queues.dead_letters("jobs")] == ["a", "b", "c"]
    with pytest.raises(NotFound, match="'nope'"):
        await queues.redrive("jobs", [sent[1].id, "nope"])
    assert len(await queues.dead_letters("jobs", 2)) == 2
    assert await queues.redrive("jobs", [sent[1].id, sent[1].id]) == 1
    assert [d.body for d in await queues.dead_letters("jobs")] == ["a", "c"]
    assert await bodies(queues, "jobs") == ["b"]
    assert await queues.redrive("jobs") == 2


async def test_exhausted_messages_move_to_the_dead_letter_queue_and_back_to_their_source(
    queues: Queues, clock: Clock
) -> None:
    await queues.create(QueueSpec(name="dlq", retention=14 * DAY))
    await queues.create(QueueSpec(name="jobs", max_receives=2, dead_letter="dlq"))
    sent = await queues.send("jobs", "poison", attributes={"k": "v"}, traceparent=TRACEPARENT)
    for attempt in (1, 2):
        message = await one(queues, "jobs")
        await queues.release("jobs", message.receipt, error=f"boom {attempt}")
    clock.advance(5)
    assert await queues.receive("jobs") == []
    assert await depth(queues, "jobs") == (0, 0, 0, 0)
    [listed] = await queues.moved_here("dlq")  # seen without being received
    assert (listed.id, listed.body, listed.attributes) == (sent.id, "poison", {"k": "v"})
    assert (listed.source, listed.last_error, listed.sent_at) == ("jobs", "boom 2", T0)
    assert listed.receive_count == 2  # its receives in jobs, not in the dlq
    assert listed.dead_at == T0 + 5 and await queues.moved_here("jobs") == []
    dead = await one(queues, "dlq")
    assert await queues.moved_here("dlq") == []  # in flight: not listed
    assert (dead.id, dead.body, dead.attributes) == (sent.id, "poison", {"k": "v"})
    assert (dead.source, dead.last_error, dead.sent_at) == ("jobs", "boom 2", T0)
    assert (dead.receive_count, dead.traceparent) == (1, TRACEPARENT)
    assert await queues.redrive_to_source("dlq") == 0  # in flight in the dlq: it stays
    await queues.change_visibility("dlq", dead.receipt, 0)
    with pytest.raises(NotFound, match="'nope'"):
        await queues.redrive_to_source("dlq", ["nope"])
    assert await queues.redrive_to_source("dlq", [sent.id]) == 1
    assert await depth(queues, "dlq") == (0, 0, 0, 0)
    back = await one(queues, "jobs")
    assert (back.id, back.body, back.receive_count, back.source) == (sent.id, "poison", 1, None)
    assert back.sent_at == T0 + 5


async def test_a_fifo_dead_letter_queue_keeps_the_group_and_unblocks_the_source(
    queues: Queues,
) -> None:
    await queues.create(QueueSpec(name="dead-pay", fifo=True, content_dedup=True))
    pay = QueueSpec(
        name="pay", fifo=True, content_dedup=True, max_receives=1, dead_letter="dead-pay",
        visibility_timeout=0,
    )  # fmt: skip
    await queues.create(pay)
    for body in ("p0", "p1", "p2"):
        await queues.send("pay", body, group="customer-1")
    assert await bodies(queues, "pay", 1) == ["p0"]  # visible again at once, received once
    assert await bodies(queues, "pay", 1) == ["p1"]  # p0 moved, the group goes on
    assert await bodies(queues, "pay", 1) == ["p2"]
    dead = await queues.receive("dead-pay", 10, visibility_timeout=30)
    assert [(m.body, m.group, m.source) for m in dead] == [
        ("p0", "customer-1", "pay"),
        ("p1", "customer-1", "pay"),
    ]
    sequences = [m.sequence or 0 for m in dead]
    assert sequences == sorted(sequences)
    for message in dead:
        await queues.change_visibility("dead-pay", message.receipt, 0)
    assert await queues.redrive_to_source("dead-pay") == 2
    assert await bodies(queues, "pay") == ["p0", "p1"]  # behind p2, which goes now
    assert await bodies(queues, "dead-pay") == ["p2"]


async def test_a_message_a_trigger_dead_lettered_goes_back_to_its_source_as_it_was_sent(
    queues: Queues,
) -> None:
    """A trigger's dead letter names its source queue in an attribute; redrive to source moves
    it back without the attributes dead-lettering added. One without a source, or whose source
    queue does not exist, or in flight, stays."""
    await queues.create(QueueSpec(name="dlq"))
    errors = {"RequestID": "r-1", "ErrorCode": "ValueError", "ErrorMessage": "bad"}
    own = {"k": "v", "ErrorCodes": "kept"}
    held = await queues.send("dlq", "held", attributes=dead_letter_attributes({}, "jobs", {}))
    in_flight = await one(queues, "dlq")
    assert in_flight.id == held.id
    await queues.send(
        "dlq", "failed", attributes=dead_letter_attributes(own, "jobs", errors), group="g-1",
        traceparent=TRACEPARENT,
    )  # fmt: skip
    await queues.send("dlq", "stray", attributes=errors)
    await queues.send("dlq", "orphan", attributes=dead_letter_attributes({}, "gone", errors))
    assert await queues.moved_here("dlq") == []  # the queue service's own moves only
    assert await queues.redrive_to_source("dlq") == 1
    back = await one(queues, "jobs")
    assert (back.body, back.attributes, back.group) == ("failed", own, "g-1")
    assert (back.source, back.receive_count, back.traceparent) == (None, 1, TRACEPARENT)
    await queues.change_visibility("dlq", in_flight.receipt, 0)
    assert await queues.redrive_to_source("dlq", [held.id]) == 1
    assert (await one(queues, "jobs", visibility_timeout=0)).attributes == {}
    assert sorted(await bodies(queues, "dlq")) == ["orphan", "stray"]


async def test_without_its_dead_letter_queue_a_message_goes_to_the_own_area(
    queues: Queues,
) -> None:
    await queues.create(
        QueueSpec(name="jobs", max_receives=1, dead_letter="later", visibility_timeout=0)
    )
    await queues.send("jobs", "x")
    await one(queues, "jobs")
    assert await queues.receive("jobs") == []
    assert [d.body for d in await queues.dead_letters("jobs")] == ["x"]


# retention, purge, stats


async def test_retention_drops_old_messages_on_receive_and_in_the_sweep(
    queues: Queues, clock: Clock
) -> None:
    await queues.create(QueueSpec(name="short", retention=60))
    await queues.create(QueueSpec(name="dl", retention=60, max_receives=1, visibility_timeout=0))
    await queues.send("short", "old")
    await queues.send("dl", "x")
    await one(queues, "short", visibility_timeout=0)
    await one(queues, "dl")
    clock.advance(30)
    await queues.send("short", "young")
    assert await queues.receive("dl") == []  # x dead-lettered at T0 + 30
    clock.advance(30)
    assert await bodies(queues, "short") == ["young"]  # old is past retention: dropped
    assert await depth(queues, "short") == (0, 1, 0, 0)
    clock.advance(29)
    assert await queues.sweep(clock()) == 0
    clock.advance(1)
    assert await queues.sweep(clock()) == 2  # young (sent at T0 + 30), x (died then)
    assert await depth(queues, "short") == (0, 0, 0, 0)
    assert await depth(queues, "dl") == (0, 0, 0, 0)


async def test_purge_removes_every_message_but_keeps_dead_letters(queues: Queues) -> None:
    await queues.create(QueueSpec(name="jobs", max_receives=1, visibility_timeout=0))
    await queues.send_batch("jobs", [SendEntry(body=b) for b in "abc"])
    await queues.receive("jobs")
    await queues.receive("jobs", 2, visibility_timeout=30)  # a dead, b and c in flight
    await queues.send("jobs", "d", delay=60)
    await queues.send("orders", "o", group="g")
    await queues.purge("jobs")
    await queues.purge("orders")
    assert await depth(queues, "jobs") == (0, 0, 0, 1)
    await queues.send("orders", "o2", group="g", dedup_id="o2")
    assert await bodies(queues, "orders") == ["o2"]


async def test_stats_count_each_state_and_the_age_of_the_oldest(
    queues: Queues, clock: Clock
) -> None:
    assert await queues.stats("jobs") == QueueStats(
        visible=0, in_flight=0, delayed=0, dead_letters=0, oldest_age=0.0
    )
    await queues.send_batch("jobs", [SendEntry(body="a"), SendEntry(body="b", delay=100)])
    clock.advance(10)
    await queues.send_batch("jobs", [SendEntry(body="c"), SendEntry(body="d")])
    await one(queues, "jobs")  # a
    clock.advance(5)
    assert await queues.stats("jobs") == QueueStats(
        visible=2, in_flight=1, delayed=1, dead_letters=0, oldest_age=5.0
    )


# long polling


async def test_a_long_poll_is_woken_by_a_send(queues: Queues) -> None:
    waiting = asyncio.create_task(queues.receive("jobs", 10, wait=20))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await queues.send("jobs", "wake up")
    assert [m.body for m in await waiting] == ["wake up"]


async def test_a_long_poll_is_woken_when_a_message_is_released(queues: Queues) -> None:
    await queues.send("orders", "first", group="g")
    message = await one(queues, "orders")
    waiting = asyncio.create_task(queues.receive("orders", wait=20))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await queues.change_visibility("orders", message.receipt, 0)
    assert [m.body for m in await waiting] == ["first"]


async def test_a_long_poll_without_messages_ends_empty(queues: Queues) -> None:
    assert await queues.receive("jobs", wait=0.05) == []


async def test_a_long_poll_ends_when_its_queue_is_deleted(queues: Queues) -> None:
    waiting = asyncio.create_task(queues.receive("jobs", wait=20))
    await asyncio.sleep(0.05)
    await queues.delete("jobs")
    with pytest.raises(NotFound):
        await waiting


# durability


async def test_everything_survives_a_restart(make: Callable[[], Queues], clock: Clock) -> None:
    service = make()
    await service.create(QueueSpec(name="jobs", max_receives=1))
    await service.create(QueueSpec(name="orders", fifo=True, content_dedup=True))
    await service.send_batch("jobs", [SendEntry(body=b, attributes={"b": b}) for b in "abc"])
    in_flight = await one(service, "jobs", visibility_timeout=30)
    last = await service.send("orders", "o1", group="g")
    await service.close()

    service = make()
    assert await depth(service, "jobs") == (2, 1, 0, 0)
    await service.delete_message("jobs", in_flight.receipt)  # the receipt still works
    assert [(m.body, m.attributes) for m in await service.receive("jobs", 10)] == [
        ("b", {"b": "b"}),
        ("c", {"b": "c"}),
    ]
    assert await service.send("orders", "o1", group="g") == last  # dedup survives too
    later = await service.send("orders", "o2", group="g")
    assert (later.sequence or 0) > (last.sequence or 0)
    clock.advance(30)
    await service.receive("jobs", 10)
    await service.close()

    service = make()
    assert [d.body for d in await service.dead_letters("jobs")] == ["b", "c"]
    assert await bodies(service, "orders") == ["o1", "o2"]


KILLED_PRODUCER = """
import asyncio, os, signal, sys
from pathlib import Path
from nimbus.backends.embedded.queue import EmbeddedQueues
from nimbus.services.queue import SendEntry
from nimbus.spec.resources import QueueSpec

async def main() -> None:
    queues = EmbeddedQueues(Path(sys.argv[1]))
    await queues.create(QueueSpec(name="jobs"))
    for n in range(20):
        result = await queues.send_batch("jobs", [SendEntry(body=f"{n}-{k}") for k in range(5)])
        print(" ".join(s.id for s in result.sent if s is not None), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_acknowledged_sends_survive_kill_9(
    backend: str, tmp_path: Path, make: Callable[[], Queues], clock: Clock
) -> None:
    if backend != "embedded":
        pytest.skip("the killed producer runs the embedded backend in its own process")
    lines = run_killed(KILLED_PRODUCER, str(tmp_path / "data"))
    acknowledged = [sent for line in lines for sent in line.split()]
    assert len(acknowledged) == 100
    clock.advance(time.time() - T0)  # the producer ran on the real clock
    service = make()
    assert [m.id for m in await service.receive("jobs", 1000)] == acknowledged


# operations a function may call


async def test_perform_runs_every_operation(queues: Queues) -> None:
    sent = await perform(queues, "jobs", Send(body="one", attributes={"k": "v"}))
    assert isinstance(sent, SendResult)
    batch = await perform(queues, "jobs", SendBatch(entries=[SendEntry(body="two")]))
    assert isinstance(batch, SendBatchResult)
    received = await perform(queues, "jobs", Receive(max_messages=10, visibility_timeout=60))
    assert [m.body for m in received] == ["one", "two"]
    change = ChangeVisibility(receipt=received[1].receipt, timeout=0)
    assert await perform(queues, "jobs", change) is None
    assert await perform(queues, "jobs", Delete(receipt=received[0].receipt)) is None
    stats = await perform(queues, "jobs", Stats())
    assert stats == QueueStats(visible=1, in_flight=0, delayed=0, dead_letters=0, oldest_age=0)
    fifo = await perform(queues, "orders", Send(body="o", group="g"))
    assert fifo.sequence is not None


def test_operations_travel_as_tagged_msgpack() -> None:
    ops: list[QueueOp] = [
        Send(body="b", delay=1.5, attributes={"a": "1"}, group="g", dedup_id="d"),
        SendBatch(entries=[SendEntry(body="x", traceparent=TRACEPARENT)]),
        Receive(max_messages=5, visibility_timeout=3, wait=1),
        Delete(receipt="1:0123456789abcdef"),
        ChangeVisibility(receipt="1:0123456789abcdef", timeout=0),
        Stats(),
    ]
    decoder = msgspec.msgpack.Decoder(QueueOp)
    assert [decoder.decode(msgspec.msgpack.encode(op)) for op in ops] == ops
    tags = {msgspec.msgpack.decode(msgspec.msgpack.encode(op))["type"] for op in ops}
    assert tags == {
        "queue.send", "queue.send_batch", "queue.receive", "queue.delete",
        "queue.change_visibility", "queue.stats",
    }  # fmt: skip


async def test_sdk_handle_round_trips_through_the_wire_types(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handle's calls go through msgpack and `perform` as the controller would run them."""
    loop = asyncio.get_running_loop()
    decoder = msgspec.msgpack.Decoder(QueueOp)

    def call(resource: str, op: msgspec.Struct, result: type[Any]) -> Any:
        decoded = decoder.decode(msgspec.msgpack.encode(op))
        running = asyncio.run_coroutine_threadsafe(perform(queues, resource, decoded), loop)
        return msgspec.msgpack.decode(msgspec.msgpack.encode(running.result()), type=result)

    monkeypatch.setattr(nimbus.sdk.queue, "call", call)
    jobs, orders = Queue("jobs"), Queue("orders")

    def scenario() -> tuple[list[Message], str, QueueStats]:
        jobs.send("text", attributes={"k": "v"}, delay=0)
        jobs.send(b"bytes")
        jobs.send({"n": 1})
        batch = jobs.send_batch(["four", [5], SendEntry(body="", group="g")])
        assert [f.index for f in batch.failed] == [2]
        messages = jobs.receive(10, visibility_timeout=30, wait=0)
        jobs.change_visibility(messages[0].receipt, 0)
        for message in messages[1:]:
            jobs.delete(message.receipt)
        first = orders.send("o", group="g", dedup_id="o-1")
        assert orders.send("o again", group="g", dedup_id="o-1") == first
        return messages, first, jobs.stats()

    messages, first, stats = await asyncio.to_thread(scenario)
    assert (await one(queues, "orders")).id == first
    assert [m.body for m in messages] == ["text", "bytes", '{"n":1}', "four", "[5]"]
    assert messages[0].attributes == {"k": "v"}
    assert (stats.visible, stats.in_flight) == (1, 0)
    with pytest.raises(InvalidRequest):
        await asyncio.to_thread(jobs.send, "x", group="bad group")
    with pytest.raises(PayloadTooLarge):
        await asyncio.to_thread(jobs.send, "x" * (256 * 1024 + 1))
