"""Polled batches cut by payload size (Lambda's 6 MB), and the reasons handlers give for the
items they report failed; on the real platform (the app: tests/apps/batch_limits.py) but for
the cutting function itself, which is pure. Waits have generous limits against hangs; nothing
asserts on time."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nimbus.triggers.base import MAX_BATCH_BYTES, cut
from test_triggers import Harness, Record, start_harness

MIB = 1024 * 1024


# the cutting function


def weight(item: tuple[int, int]) -> int:
    return item[1]


@given(
    weights=st.lists(st.integers(0, 50), max_size=60),
    size=st.integers(1, 12),
    max_bytes=st.integers(1, 120),
)
def test_batches_keep_order_and_respect_both_limits(
    weights: list[int], size: int, max_bytes: int
) -> None:
    items = list(enumerate(weights))  # (place, weight): equal weights stay distinct items
    batches = cut(items, size, max_bytes, weight)
    assert [item for batch in batches for item in batch] == items
    for batch in batches:
        assert 1 <= len(batch) <= size
        assert len(batch) == 1 or sum(map(weight, batch)) <= max_bytes
    for batch, following in pairwise(batches):
        # cut only when the next item would not fit: no batch is smaller than it has to be
        full = sum(map(weight, batch)) + weight(following[0]) > max_bytes
        assert len(batch) == size or full


def test_an_item_heavier_than_the_limit_travels_alone() -> None:
    items = [(0, 1), (1, 10), (2, 1), (3, 1)]
    assert cut(items, 10, 5, weight) == [[(0, 1)], [(1, 10)], [(2, 1), (3, 1)]]


# on the platform


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("batch-limits")
    running = start_harness("batch_limits.py", folder / "data", folder / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


def test_a_stream_batch_over_the_payload_limit_is_cut_in_order(limits: Harness) -> None:
    """Five records of 1.5 MiB (2 MiB each in the event: data travels as base64), then one
    whose event alone is over the limit, then two small ones, in one partition, read together
    (batch_size 100): delivered as batches under the limit, in order, none lost; the record
    too big by itself is dead-lettered, saying so, and the partition goes on."""
    sized = [{"key": f"r{n}", "size": 3 * MIB // 2} for n in range(5)]
    huge = {"key": "huge", "size": 5 * MIB}
    after = [{"key": f"after{n}", "size": 10} for n in range(2)]
    [placed] = limits.ok({"op": "put_sized", "stream": "big", "records": [*sized, huge, *after]})
    huge_sequence = placed[5][1]

    def through(batches: list[Record]) -> bool:
        return "after1" in [key for batch in batches for key in batch["keys"]]

    batches = limits.wait_records("on_big", through, "the records after the big one")
    delivered = [key for batch in batches for key in batch["keys"]]
    assert delivered == [f"r{n}" for n in range(5)] + ["after0", "after1"]
    assert all(batch["size"] <= MAX_BATCH_BYTES for batch in batches), batches
    cut_up = [batch["keys"] for batch in batches if batch["keys"][0].startswith("r")]
    assert len(cut_up) >= 3 and max(map(len, cut_up)) == 2  # by bytes: never 3 of 2 MiB

    [letter] = limits.platform.wait_for(lambda: limits.dead_letters("on_big"), "the dead letter")
    assert letter["source"] == "stream:big"
    assert letter["error"]["type"] == "PayloadTooLarge"
    assert str(MAX_BATCH_BYTES) in letter["error"]["message"]
    assert "given up without running" in letter["error"]["message"]
    [given_up] = json.loads(letter["payload"])["records"]
    assert (given_up["key"], given_up["sequence"]) == ("huge", huge_sequence)
    assert len(base64.b64decode(given_up["data"])) == 5 * MIB


def test_a_change_too_big_for_one_invocation_does_not_block_the_feed(limits: Harness) -> None:
    """A 3.5 MiB document fits one event when it is inserted; changed, the change holds the old
    and the new document, over the limit: it is dead-lettered and the feed goes on."""
    limits.ok(
        {"op": "document", "id": "doc", "size": 7 * MIB // 2},
        {"op": "document", "id": "doc", "size": 7 * MIB // 2 + 1},
        {"op": "document", "id": "end", "size": 1},
    )
    changes = limits.wait_records(
        "on_documents", lambda cs: any(c["id"] == "end" for c in cs), "the last change"
    )
    assert [(c["kind"], c["id"]) for c in changes] == [("INSERT", "doc"), ("INSERT", "end")]
    [letter] = limits.platform.wait_for(
        lambda: limits.dead_letters("on_documents"), "the dead letter"
    )
    assert letter["error"]["type"] == "PayloadTooLarge"
    [change] = json.loads(letter["payload"])["changes"]
    assert (change["kind"], change["key"]) == ("MODIFY", {"id": "doc"})
    assert change["sequence"] > changes[0]["sequence"]


def payments(*declined: bool) -> list[str]:
    return [json.dumps({"id": f"p{n}", "declined": d}) for n, d in enumerate(declined)]


def send(limits: Harness, queue: str, bodies: list[str]) -> None:
    """Send `bodies` in one call (so that they are received together)."""
    [sent] = limits.ok({"op": "send_batch", "queue": queue, "bodies": bodies})
    assert sent["failed"] == [], sent


def test_a_queue_batch_whose_event_is_over_the_limit_runs_in_parts(limits: Harness) -> None:
    """Eight messages of 700 KB of double quotes: their bodies (5.6 MB) fit one batch, but in
    the event each quote is escaped, 11.2 MB in all; the batch runs in parts, each under the
    limit, and every message is processed once."""
    limits.ok({"op": "send_quoted", "count": 8, "size": 700_000})

    def all_in(batches: list[Record]) -> bool:
        return sorted(p for batch in batches for p in batch["places"]) == list(range(8))

    batches = limits.wait_records("on_quoted", all_in, "the eight quoted messages")
    assert sorted(p for batch in batches for p in batch["places"]) == list(range(8))
    assert all(batch["size"] <= MAX_BATCH_BYTES for batch in batches), batches
    assert len(batches) >= 2


def test_a_queue_item_reason_is_its_dead_letters_last_error(limits: Harness) -> None:
    """`payments` dead-letters by itself (max_receives=2): the reason is the message's last
    error, as `nimbus dlq show` shows it."""
    send(limits, "payments", payments(False, True))

    def listed() -> list[Record]:
        return [d for d in limits.dead_letters("") if d["source"] == "queue:payments"]

    [letter] = limits.platform.wait_for(listed, "the declined payment's dead letter")
    shown = limits.platform.cli_json("dlq", "show", letter["id"])
    assert json.loads(shown["payload"]) == {"id": "p1", "declined": True}
    assert (shown["error"]["type"], shown["error"]["message"]) == (
        "BatchItemFailure",
        "card declined for p1",
    )
    seen = [(r["id"], r["receive_count"]) for r in limits.records("on_payments")]
    assert sorted(seen) == [("p0", 1), ("p1", 1), ("p1", 2)]


def test_a_queue_item_given_up_by_the_trigger_keeps_its_reason(limits: Harness) -> None:
    send(limits, "charges", payments(True))
    [letter] = limits.platform.wait_for(
        lambda: limits.dead_letters("on_charges"), "the dead letter"
    )
    assert json.loads(letter["payload"])["messages"][0]["body"] == payments(True)[0]
    shown = limits.platform.http.get(f"/_nimbus/dlq/{letter['id']}").json()
    assert (shown["error"]["type"], shown["error"]["message"]) == (
        "BatchItemFailure",
        "insufficient funds",
    )


def test_a_stream_item_reason_reaches_its_on_failure_destination(limits: Harness) -> None:
    """The handler reports entry 2 with a reason: the batch is retried from it, bisected, and
    the entry alone goes to the on-failure destination with the reason as its error."""
    entries = [{"key": "k", "data": {"n": n, "unbalanced": n == 2}} for n in range(5)]
    [placed] = limits.ok({"op": "put_records", "stream": "ledger", "records": entries})
    limits.wait_records(
        "on_ledger", lambda rs: any(r["n"] == 4 for r in rs), "the entries after the bad one"
    )
    [failure] = limits.drain("ledger_failures", lambda got: len(got) >= 1)
    destination = json.loads(failure["body"])
    assert destination["requestContext"]["condition"] == "RetriesExhausted"
    [isolated] = destination["requestPayload"]["records"]
    assert isolated["sequence"] == placed[2][1]
    assert destination["responsePayload"]["errorType"] == "BatchItemFailure"
    assert destination["responsePayload"]["errorMessage"] == "entry 2 does not balance"


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("unknown-id", "reasons: 'no-such-message' is not one of the failed ids"),
        ("not-text", "is not a string: 42"),
    ],
)
def test_reasons_that_do_not_fit_fail_the_whole_batch(
    limits: Harness, mode: str, problem: str
) -> None:
    bodies = [json.dumps({"id": f"{mode}-{n}", "mode": mode}) for n in range(2)]
    send(limits, "sloppy", bodies)

    def mine() -> list[Record]:
        letters = limits.dead_letters("on_sloppy")
        found = [d for d in letters if mode in d["payload"]]
        return found if len(found) == 2 else []

    letters = limits.platform.wait_for(mine, "both messages' dead letters")
    for letter in letters:
        assert letter["error"]["type"] == "InvalidBatchResponse"
        assert problem in letter["error"]["message"]
    seen = [set(r["ids"]) for r in limits.records("on_sloppy")]
    assert {f"{mode}-0", f"{mode}-1"} in seen  # one batch, failed as a whole
