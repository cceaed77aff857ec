"""The Topics contract: every backend must pass it (only the embedded backend exists so far)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import msgspec
import pytest
from pydantic import ValidationError

from conftest import Clock, run_killed
from nimbus.errors import InvalidRequest, NotFound, PayloadTooLarge
from nimbus.sdk import topic as sdk_topic
from nimbus.services.patterns import compile_pattern
from nimbus.services.topic import (
    MAX_BATCH,
    RETENTION,
    Publish,
    PublishBatch,
    PublishEntry,
    PublishResult,
    TopicOp,
    Topics,
    pattern_document,
    perform,
)
from nimbus.spec.resources import QueueSubscription, TopicSpec

START = 1_700_000_000.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def build(backend: str, data_dir: Path, clock: Callable[[], float]) -> Topics:
    if backend == "embedded":
        from nimbus.backends.embedded.topic import EmbeddedTopics

        return EmbeddedTopics(data_dir, clock=clock)
    raise AssertionError(f"no topic backend {backend!r}")


class Harness:
    """The backend under test, reopened on the same data as a restarted platform would."""

    def __init__(self, backend: str, data_dir: Path) -> None:
        self.backend = backend
        self.data_dir = data_dir
        self.clock = Clock(START)
        self.topics = build(backend, data_dir, self.clock)

    async def reopen(self) -> Topics:
        await self.topics.close()
        self.topics = build(self.backend, self.data_dir, self.clock)
        return self.topics

    async def close(self) -> None:
        await self.topics.close()


@pytest.fixture
async def harness(backend: str, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(backend, tmp_path / "data")
    await harness.topics.create(TopicSpec(name="orders"))
    yield harness
    await harness.close()


@pytest.fixture
def topics(harness: Harness) -> Topics:
    return harness.topics


async def everything(topics: Topics, name: str = "orders") -> list[Any]:
    """The whole retained log of a topic, as a fresh consumer starting at the oldest sees it."""
    await topics.register(name, "inspector", "oldest")
    events = await topics.read(name, "inspector", 1000)
    await topics.unregister(name, "inspector")
    return [event.json() for event in events]


@pytest.mark.anyio
async def test_publish_then_read_returns_every_attribute(harness: Harness) -> None:
    topics = harness.topics
    await topics.register("orders", "mailer")
    event_id = await topics.publish(
        "orders",
        {"order": 42, "items": ["a", "b"]},
        type="order.created",
        source="shop",
        subject="order/42",
        attributes={"region": "eu"},
        traceparent=TRACEPARENT,
    )
    [event] = await topics.read("orders", "mailer")
    assert event.id == event_id
    assert event.sequence == 1
    assert event.time == START
    assert (event.type, event.source, event.subject) == ("order.created", "shop", "order/42")
    assert event.attributes == {"region": "eu"}
    assert event.json() == {"order": 42, "items": ["a", "b"]}
    assert msgspec.json.decode(event.data) == event.json()
    assert event.traceparent == TRACEPARENT


@pytest.mark.anyio
async def test_defaults_of_an_event(topics: Topics) -> None:
    await topics.register("orders", "c")
    await topics.publish("orders", "hello")
    [event] = await topics.read("orders", "c")
    assert (event.type, event.source, event.subject) == ("nimbus.event", "", None)
    assert (event.attributes, event.traceparent, event.json()) == ({}, None, "hello")


@pytest.mark.anyio
async def test_reading_does_not_move_the_cursor_committing_does(topics: Topics) -> None:
    await topics.register("orders", "c")
    for n in range(5):
        await topics.publish("orders", n)
    first = await topics.read("orders", "c", limit=2)
    assert [e.json() for e in first] == [0, 1]
    assert [e.json() for e in await topics.read("orders", "c", limit=2)] == [0, 1]
    await topics.commit("orders", "c", first[-1].sequence)
    assert await topics.cursor("orders", "c") == first[-1].sequence
    assert [e.json() for e in await topics.read("orders", "c")] == [2, 3, 4]
    assert [e.sequence for e in await topics.read("orders", "c")] == [3, 4, 5]


@pytest.mark.anyio
async def test_two_consumers_are_independent(topics: Topics) -> None:
    await topics.register("orders", "fast")
    await topics.register("orders", "slow")
    for n in range(3):
        await topics.publish("orders", n)
    fast = await topics.read("orders", "fast")
    await topics.commit("orders", "fast", fast[-1].sequence)
    assert await topics.read("orders", "fast") == []
    assert [e.json() for e in await topics.read("orders", "slow")] == [0, 1, 2]


@pytest.mark.anyio
async def test_a_new_consumer_starts_at_the_latest_unless_asked_for_the_oldest(
    topics: Topics,
) -> None:
    await topics.publish("orders", "before")
    await topics.register("orders", "latest")
    await topics.register("orders", "oldest", "oldest")
    await topics.publish("orders", "after")
    assert [e.json() for e in await topics.read("orders", "latest")] == ["after"]
    assert [e.json() for e in await topics.read("orders", "oldest")] == ["before", "after"]


@pytest.mark.anyio
async def test_registering_again_keeps_the_cursor(topics: Topics) -> None:
    await topics.register("orders", "c", "oldest")
    await topics.publish("orders", 1)
    await topics.publish("orders", 2)
    await topics.commit("orders", "c", 1)
    await topics.register("orders", "c", "oldest")
    await topics.register("orders", "c", "latest")
    assert [e.json() for e in await topics.read("orders", "c")] == [2]


@pytest.mark.anyio
async def test_commits_out_of_order_never_move_a_cursor_back(topics: Topics) -> None:
    await topics.register("orders", "c")
    for n in range(3):
        await topics.publish("orders", n)
    await topics.commit("orders", "c", 3)
    await topics.commit("orders", "c", 1)
    assert await topics.cursor("orders", "c") == 3
    assert await topics.read("orders", "c") == []


@pytest.mark.anyio
async def test_events_and_cursors_survive_a_restart(harness: Harness) -> None:
    topics = harness.topics
    await topics.register("orders", "a")
    await topics.register("orders", "b")
    for n in range(4):
        await topics.publish("orders", n)
    await topics.commit("orders", "a", 3)
    topics = await harness.reopen()
    await topics.register("orders", "a", "oldest")  # idempotent across restarts too
    assert [e.json() for e in await topics.read("orders", "a")] == [3]
    assert [e.json() for e in await topics.read("orders", "b")] == [0, 1, 2, 3]
    await topics.publish("orders", 4)
    assert [e.sequence for e in await topics.read("orders", "a")] == [4, 5]


@pytest.mark.anyio
async def test_sequences_keep_growing_after_everything_was_trimmed(harness: Harness) -> None:
    topics = harness.topics
    await topics.register("orders", "c")
    await topics.publish("orders", "x")
    await topics.publish("orders", "y")
    await topics.commit("orders", "c", 2)
    assert await topics.trim() == 2
    topics = await harness.reopen()
    await topics.publish("orders", "z")
    [event] = await topics.read("orders", "c")
    assert (event.sequence, event.json()) == (3, "z")


@pytest.mark.anyio
async def test_trim_drops_what_every_consumer_committed(topics: Topics) -> None:
    await topics.register("orders", "a")
    await topics.register("orders", "b")
    for n in range(4):
        await topics.publish("orders", n)
    await topics.commit("orders", "a", 4)
    await topics.commit("orders", "b", 2)
    assert await topics.trim() == 2
    assert [e.json() for e in await topics.read("orders", "b")] == [2, 3]
    await topics.unregister("orders", "b")
    assert await topics.trim() == 2
    assert await everything(topics) == []


@pytest.mark.anyio
async def test_trim_drops_events_older_than_the_retention_read_or_not(harness: Harness) -> None:
    topics = harness.topics
    await topics.register("orders", "c")
    await topics.publish("orders", "old")
    harness.clock.now += RETENTION / 2
    await topics.publish("orders", "new")
    harness.clock.now += RETENTION / 2 + 1
    assert await topics.trim() == 1
    assert [e.json() for e in await topics.read("orders", "c")] == ["new"]
    assert await topics.trim(now=START + 3 * RETENTION) == 1
    assert await topics.read("orders", "c") == []


@pytest.mark.anyio
async def test_without_consumers_events_are_kept_until_the_retention(harness: Harness) -> None:
    topics = harness.topics
    await topics.publish("orders", "kept")
    assert await topics.trim() == 0
    assert await everything(topics) == ["kept"]
    assert await topics.trim(now=START + RETENTION + 1) == 1
    assert await everything(topics) == []


@pytest.mark.anyio
async def test_an_oversized_event_is_rejected_and_nothing_changes(topics: Topics) -> None:
    await topics.create(TopicSpec(name="small", max_message_bytes=20))
    await topics.register("small", "c")
    exactly = "x" * 14  # 16 bytes of JSON and 4 of attributes
    await topics.publish("small", exactly, attributes={"k": "vvv"})
    with pytest.raises(PayloadTooLarge, match=r"21 bytes .* topic 'small' takes at most 20"):
        await topics.publish("small", exactly + "x", attributes={"k": "vvv"})
    with pytest.raises(PayloadTooLarge):
        await topics.publish("small", "x", attributes={"k": "v" * 20})
    assert [e.json() for e in await topics.read("small", "c")] == [exactly]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"data": object()}, "JSON-serialisable"),
        ({"data": 1, "type": ""}, "type is a non-empty string"),
        ({"data": 1, "subject": ""}, "subject is a non-empty string"),
        ({"data": 1, "attributes": {"": "v"}}, "attribute name ''"),
        ({"data": 1, "attributes": {"k": 1}}, "attribute 'k' has a int"),
        ({"data": 1, "traceparent": "00-abc"}, "not a W3C trace context"),
        (
            {"data": 1, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"},
            "not a W3C trace context",
        ),
        # lone surrogates: no UTF-8 text (nothing to store, nothing to match)
        ({"data": "\ud800"}, "JSON-serialisable"),
        ({"data": 1, "type": "\ud800"}, "not valid Unicode"),
        ({"data": 1, "source": "\udfff"}, "not valid Unicode"),
        ({"data": 1, "subject": "a\ud800"}, "not valid Unicode"),
        ({"data": 1, "attributes": {"k\ud800": "v"}}, "not valid Unicode"),
        ({"data": 1, "attributes": {"k": "\ud800"}}, "not valid Unicode"),
    ],
)
@pytest.mark.anyio
async def test_a_malformed_event_is_rejected_and_nothing_changes(
    topics: Topics, arguments: dict[str, Any], message: str
) -> None:
    await topics.register("orders", "c")
    with pytest.raises(InvalidRequest, match=message):
        await topics.publish("orders", **arguments)
    await topics.publish("orders", "fine")
    [event] = await topics.read("orders", "c")
    assert (event.sequence, event.json()) == (1, "fine")


@pytest.mark.anyio
async def test_a_publish_whose_caller_is_cancelled_can_still_be_consumed(
    topics: Topics,
) -> None:
    """The commit of a publish goes on when its caller is cancelled (a worker gone, a timeout):
    its event is in the log, so a consumer must be woken for it and may commit past it."""
    await topics.register("orders", "c")
    publish = asyncio.ensure_future(topics.publish("orders", "cancelled"))
    await asyncio.sleep(0)  # queued for commit
    publish.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publish
    assert await topics.wait("orders", 0, 30)
    [event] = await topics.read("orders", "c")
    assert event.json() == "cancelled"
    await topics.commit("orders", "c", event.sequence)
    assert await topics.read("orders", "c") == []
    await topics.publish("orders", "next")
    assert [e.sequence for e in await topics.read("orders", "c")] == [event.sequence + 1]


@pytest.mark.anyio
async def test_an_unknown_topic_or_consumer_is_not_found(topics: Topics) -> None:
    with pytest.raises(NotFound, match="topic 'nope'"):
        await topics.publish("nope", 1)
    with pytest.raises(NotFound, match="topic 'nope'"):
        await topics.publish_batch("nope", [PublishEntry(data=1)])
    with pytest.raises(NotFound, match="topic 'nope'"):
        await topics.register("nope", "c")
    with pytest.raises(NotFound, match="topic 'nope'"):
        await topics.wait("nope", 0, 1)
    with pytest.raises(NotFound, match="consumer 'ghost'"):
        await topics.read("orders", "ghost")
    with pytest.raises(NotFound, match="consumer 'ghost'"):
        await topics.commit("orders", "ghost", 0)
    assert await everything(topics) == []


@pytest.mark.anyio
async def test_bad_reads_commits_and_registrations_change_nothing(topics: Topics) -> None:
    await topics.register("orders", "c")
    await topics.publish("orders", 1)
    with pytest.raises(InvalidRequest, match="limit"):
        await topics.read("orders", "c", limit=0)
    with pytest.raises(InvalidRequest, match=r"sequence 2 is not in topic 'orders'"):
        await topics.commit("orders", "c", 2)
    with pytest.raises(InvalidRequest, match="sequence -1"):
        await topics.commit("orders", "c", -1)
    with pytest.raises(InvalidRequest, match="consumer's name"):
        await topics.register("orders", "")
    with pytest.raises(InvalidRequest, match="start is"):
        await topics.register("orders", "d", "middle")  # type: ignore[arg-type]
    assert await topics.cursor("orders", "c") == 0
    assert [e.json() for e in await topics.read("orders", "c")] == [1]


@pytest.mark.anyio
async def test_publish_batch_reports_each_entry_and_stores_the_valid_ones(
    topics: Topics,
) -> None:
    await topics.create(TopicSpec(name="small", max_message_bytes=10))
    await topics.register("small", "c")
    results = await topics.publish_batch(
        "small",
        [
            PublishEntry(data=1, type="a"),
            PublishEntry(data="far too long for this topic"),
            PublishEntry(data=3, subject="s", attributes={"k": "v"}),
            PublishEntry(data=4, type=""),
        ],
    )
    assert [r.error_type for r in results] == [None, "PayloadTooLarge", None, "InvalidRequest"]
    assert results[1].error is not None and "'small'" in results[1].error
    events = await topics.read("small", "c")
    assert [(e.id, e.sequence, e.json()) for e in events] == [
        (results[0].id, 1, 1),
        (results[2].id, 2, 3),
    ]
    assert (events[0].type, events[1].subject, events[1].attributes) == ("a", "s", {"k": "v"})


@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
@pytest.mark.anyio
async def test_a_batch_of_the_wrong_size_is_rejected_whole(topics: Topics, count: int) -> None:
    with pytest.raises(InvalidRequest, match=f"not {count}"):
        await topics.publish_batch("orders", [PublishEntry(data=n) for n in range(count)])
    assert await everything(topics) == []


@pytest.mark.anyio
async def test_a_long_poll_is_woken_by_a_publish(topics: Topics) -> None:
    await topics.register("orders", "c")
    after = await topics.cursor("orders", "c")
    woken: list[bool] = []

    async def poll() -> None:
        woken.append(await topics.wait("orders", after, timeout=60))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        await topics.publish("orders", "wake up")
    assert woken == [True]
    assert await topics.wait("orders", after, timeout=60), "already there: at once"


@pytest.mark.anyio
async def test_a_long_poll_without_news_times_out(topics: Topics) -> None:
    await topics.publish("orders", 1)
    assert not await topics.wait("orders", 1, timeout=0.01)
    assert not await topics.wait("orders", 1, timeout=0)


@pytest.mark.anyio
async def test_create_is_idempotent_and_updates_the_config_keeping_events(
    harness: Harness,
) -> None:
    topics = harness.topics
    await topics.register("orders", "c")
    await topics.publish("orders", "x" * 100)
    await topics.create(TopicSpec(name="orders"))
    await topics.create(TopicSpec(name="orders", max_message_bytes=50))
    with pytest.raises(PayloadTooLarge):
        await topics.publish("orders", "x" * 100)
    topics = await harness.reopen()
    with pytest.raises(PayloadTooLarge):
        await topics.publish("orders", "x" * 100)
    assert [len(e.json()) for e in await topics.read("orders", "c")] == [100]


@pytest.mark.anyio
async def test_a_malformed_subscription_pattern_is_refused_and_nothing_changes(
    harness: Harness,
) -> None:
    topics = harness.topics
    good = QueueSubscription(queue="audit", pattern={"type": [{"prefix": "order."}]})
    malformed = {"data": {"total": [{"numeric": [">"]}]}}
    with pytest.raises(ValidationError, match=r"pattern\.data\.total\[0\]"):
        QueueSubscription(queue="billing", pattern=malformed)  # the spec refuses it first
    # a backend still refuses one that skipped validation
    bad = QueueSubscription.model_construct(queue="billing", pattern=malformed)
    await topics.create(TopicSpec(name="orders", max_message_bytes=50, subscriptions=(good,)))
    with pytest.raises(InvalidRequest, match=r"queue 'billing'.*pattern\.data\.total\[0\]"):
        await topics.create(TopicSpec(name="orders", subscriptions=(good, bad)))
    with pytest.raises(InvalidRequest, match="queue 'billing'"):
        await topics.create(TopicSpec(name="fresh", subscriptions=(bad,)))
    with pytest.raises(PayloadTooLarge):
        await topics.publish("orders", "x" * 100)
    with pytest.raises(NotFound):
        await topics.publish("fresh", 1)


@pytest.mark.anyio
async def test_closing_releases_long_polls(backend: str, tmp_path: Path) -> None:
    topics = build(backend, tmp_path / "closing", Clock(START))
    await topics.create(TopicSpec(name="orders"))
    woken: list[bool] = []

    async def poll() -> None:
        woken.append(await topics.wait("orders", 0, timeout=60))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await anyio.wait_all_tasks_blocked()
        await topics.close()
    assert woken == [False]


@pytest.mark.anyio
async def test_delete_removes_events_and_consumers(harness: Harness) -> None:
    topics = harness.topics
    await topics.register("orders", "c")
    await topics.publish("orders", 1)
    await topics.delete("orders")
    await topics.delete("orders")  # deleting a missing topic is a no-op, as in SNS
    with pytest.raises(NotFound):
        await topics.publish("orders", 2)
    topics = await harness.reopen()
    with pytest.raises(NotFound):
        await topics.read("orders", "c")
    await topics.create(TopicSpec(name="orders"))
    with pytest.raises(NotFound, match="consumer 'c'"):
        await topics.read("orders", "c")
    assert await everything(topics) == []


@pytest.mark.anyio
async def test_perform_runs_each_sdk_operation(topics: Topics) -> None:
    await topics.register("orders", "c")
    wire: msgspec.msgpack.Decoder[TopicOp] = msgspec.msgpack.Decoder(TopicOp)
    publish = Publish(data={"n": 1}, type="t", subject="s", attributes={"a": "b"})
    event_id = await perform(topics, "orders", wire.decode(msgspec.msgpack.encode(publish)))
    batch = PublishBatch(entries=(PublishEntry(data=2), PublishEntry(data=3)))
    results = await perform(topics, "orders", wire.decode(msgspec.msgpack.encode(batch)))
    assert [r.error for r in results] == [None, None]
    events = await topics.read("orders", "c")
    assert [e.id for e in events] == [event_id, results[0].id, results[1].id]
    assert (events[0].type, events[0].subject, events[0].attributes) == ("t", "s", {"a": "b"})
    assert [e.json() for e in events] == [{"n": 1}, 2, 3]


@pytest.mark.anyio
async def test_the_sdk_handle_reaches_the_service(
    topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK handle's ops travel as the worker would send them (the socket left out)."""

    def call(resource: str, op: msgspec.Struct, result: type[Any]) -> Any:
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(op), type=TopicOp)
        value = anyio.from_thread.run(perform, topics, resource, decoded)
        return msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=result)

    monkeypatch.setattr(sdk_topic, "call", call)
    await topics.register("orders", "c")
    handle = sdk_topic.Topic("orders")

    def use() -> tuple[str, list[PublishResult]]:
        first = handle.publish(b'{"raw": true}', type="t", attributes={"k": "v"})
        return first, handle.publish_batch([{"n": 1}, PublishEntry(data=2, subject="s")])

    event_id, results = await anyio.to_thread.run_sync(use)
    events = await topics.read("orders", "c")
    assert [e.id for e in events] == [event_id, *[r.id for r in results]]
    assert [e.json() for e in events] == ['{"raw": true}', {"n": 1}, 2]
    assert (events[0].type, events[0].attributes, events[2].subject) == ("t", {"k": "v"}, "s")


@pytest.mark.anyio
async def test_subscriptions_match_patterns_against_the_pattern_document(
    topics: Topics,
) -> None:
    await topics.register("orders", "c")
    await topics.publish(
        "orders", {"total": 120}, type="order.created", source="shop", attributes={"r": "eu"}
    )
    await topics.publish("orders", {"total": 5}, type="order.created", subject="order/2")
    events = await topics.read("orders", "c")
    documents = [pattern_document(event) for event in events]
    assert documents[0] == {
        "id": events[0].id,
        "source": "shop",
        "type": "order.created",
        "time": "2023-11-14T22:13:20.000Z",
        "attributes": {"r": "eu"},
        "data": {"total": 120},
    }
    assert documents[1]["subject"] == "order/2"
    big = compile_pattern({"type": ["order.created"], "data": {"total": [{"numeric": [">", 100]}]}})
    assert [big.matches(d) for d in documents] == [True, False]
    no_subject = compile_pattern({"subject": [{"exists": False}], "attributes": {"r": ["eu"]}})
    assert [no_subject.matches(d) for d in documents] == [True, False]


CHILD = """
import asyncio, sys
from pathlib import Path
from nimbus.spec.resources import QueueSubscription, TopicSpec

async def main() -> None:
    from nimbus.backends.embedded.topic import EmbeddedTopics
    topics = EmbeddedTopics(Path(sys.argv[1]))
    await topics.create(TopicSpec(name="orders"))
    await topics.register("orders", "c", "oldest")
    for n in range(3):
        await topics.publish("orders", n)
    await topics.commit("orders", "c", 1)
    print("acknowledged", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.anyio
async def test_acknowledged_publishes_and_commits_survive_kill_9(
    backend: str, tmp_path: Path
) -> None:
    if backend != "embedded":
        pytest.skip("the child process builds the embedded backend")
    data_dir = tmp_path / "killed"
    assert run_killed(CHILD, str(data_dir), after=1) == ["acknowledged"]
    topics = build(backend, data_dir, Clock(START))
    try:
        assert [e.json() for e in await topics.read("orders", "c")] == [1, 2]
    finally:
        await topics.close()
