"""Event triggers end to end, on the real platform: queues (batches, partial batch failures,
retries, dead letters, redrive policies, killed workers), topic subscriptions and fan-out,
ordered streams with bad-record isolation, table change feeds, object events, permissions, bad
input through the SDK, and destinations of asynchronous invocations.

The handlers (tests/apps/triggers_app.py) write what they saw to files; the tests wait for
those records (Platform.wait_for: generous limits, never a timing assertion). An ordered source
(a stream partition, a change feed, a FIFO read of a queue) is read up to a sentinel sent last,
so what is absent before it was never delivered.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import APPS, Platform, start_platform

Record = dict[str, Any]


@dataclass
class Harness:
    """A running platform, and the directory its handlers write their records to."""

    platform: Platform
    out: Path

    def produce(self, *ops: dict[str, Any]) -> list[dict[str, Any]]:
        """Run service operations inside the platform (the app's `produce` function); an
        HTTP 200 from it means every write it reports as ok was acknowledged."""
        record = self.platform.invoke("produce", {"ops": list(ops)})
        assert record["outcome"] == "success", record
        results: list[dict[str, Any]] = record["result"]
        return results

    def ok(self, *ops: dict[str, Any]) -> list[Any]:
        results = self.produce(*ops)
        assert all("ok" in result for result in results), results
        return [result["ok"] for result in results]

    def records(self, function: str) -> list[Record]:
        """What the function recorded so far (a line still being written is left out)."""
        path = self.out / f"{function}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().split("\n")[:-1]]

    def wait_records(
        self, function: str, done: Callable[[list[Record]], bool], what: str
    ) -> list[Record]:
        def ready() -> list[Record] | None:
            found = self.records(function)
            return found if done(found) else None

        result: list[Record] = self.platform.wait_for(ready, what)
        return result

    def heal(self, tag: str) -> None:
        (self.out / f"heal-{tag}").touch()

    def drain(self, queue: str, until: Callable[[list[Record]], bool]) -> list[Record]:
        """Receive (and delete) messages of `queue` until `until(all received so far)`."""
        received: list[Record] = []

        def more() -> bool:
            op = {"op": "receive", "queue": queue, "max": 100, "wait": 1, "delete": True}
            received.extend(self.ok(op)[0])
            return until(received)

        self.platform.wait_for(more, f"messages of {queue}")
        return received

    def stats(self, queue: str) -> Record:
        [stats] = self.ok({"op": "stats", "queue": queue})
        result: Record = stats
        return result

    def settled(self, queue: str) -> None:
        """Wait until the queue holds nothing, visible or in flight."""

        def empty() -> bool:
            stats = self.stats(queue)
            return stats["visible"] + stats["in_flight"] + stats["delayed"] == 0

        self.platform.wait_for(empty, f"queue {queue} to be empty")

    def idle(self, function: str) -> None:
        """Wait until nothing of the function runs or waits for an instance."""

        def quiet() -> bool:
            described = self.platform.functions()[function]
            return described["busy"] == 0 and described["waiting"] == 0

        self.platform.wait_for(quiet, f"{function} to be idle")

    def dead_letters(self, function: str) -> list[Record]:
        """The platform's dead letters of `function` ("": of every source)."""
        arguments = ("dlq", "ls", function) if function else ("dlq", "ls")
        letters: list[Record] = self.platform.cli_json(*arguments)
        return letters


def start_harness(app: str, data_dir: Path, out: Path) -> Harness:
    out.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIMBUS_TEST_OUT", str(out))
        platform = start_platform(APPS / app, data_dir, "--no-reload")
    return Harness(platform, out)


def send(queue: str, body: Any, **fields: Any) -> dict[str, Any]:
    return {"op": "send", "queue": queue, "body": json.dumps(body), **fields}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("triggers")
    running = start_harness("triggers_app.py", folder / "data", folder / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


# queues


def test_queue_batches_are_processed_once_and_deleted(harness: Harness) -> None:
    bodies = [json.dumps({"id": f"batch-{n}"}) for n in range(25)]
    [sent] = harness.ok({"op": "send_batch", "queue": "jobs", "bodies": bodies})
    assert sent["failed"] == [] and len(sent["sent"]) == 25
    wanted = {f"batch-{n}" for n in range(25)}

    def all_seen(records: list[Record]) -> bool:
        return wanted <= {r["id"] for r in records}

    seen = harness.wait_records("on_jobs", all_seen, "25 messages")
    records = [r for r in seen if r["id"] in wanted]
    assert Counter(r["id"] for r in records) == Counter(wanted)
    assert {(r["receive_count"], r["ok"]) for r in records} == {(1, True)}
    harness.settled("jobs")
    invocations = harness.platform.http.get(
        "/_nimbus/invocations", params={"function": "on_jobs", "limit": 1000}
    ).json()
    assert {i["trigger"] for i in invocations} == {"queue:jobs"}


def test_a_partial_batch_failure_retries_only_the_failed_messages(harness: Harness) -> None:
    fail_times = {"part-0": 0, "part-1": 1, "part-2": 0, "part-3": 0, "part-4": 2, "part-5": 0}
    bodies = [json.dumps({"id": key, "fail_times": n}) for key, n in fail_times.items()]
    harness.ok({"op": "send_batch", "queue": "jobs", "bodies": bodies})

    def all_succeeded(records: list[Record]) -> bool:
        return set(fail_times) <= {r["id"] for r in records if r["ok"]}

    records = harness.wait_records("on_jobs", all_succeeded, "every message to succeed")
    harness.settled("jobs")
    for key, failures in fail_times.items():
        deliveries = [(r["receive_count"], r["ok"]) for r in records if r["id"] == key]
        expected = [(n, False) for n in range(1, failures + 1)] + [(failures + 1, True)]
        assert deliveries == expected, key
        # every delivery tells when the message was first received: the first delivery's time
        firsts = {r["first_received_at"] for r in records if r["id"] == key}
        assert len(firsts) == 1 and None not in firsts, key
    assert harness.dead_letters("on_jobs") == []


def test_a_failing_handler_is_retried_then_dead_lettered_and_redriven(harness: Harness) -> None:
    harness.ok(send("errors", {"id": "err-1"}, attributes={"kind": "test"}))
    [letter] = harness.platform.wait_for(
        lambda: harness.dead_letters("on_errors"), "the message to be dead-lettered"
    )
    assert (letter["source"], letter["function"]) == ("queue:errors", "on_errors")
    assert letter["attempts"] == 3  # the first delivery and FailurePolicy(retries=2)
    assert letter["error"]["type"] == "RuntimeError"
    assert letter["error"]["message"] == "cannot process err-1"
    [message] = json.loads(letter["payload"])["messages"]
    assert json.loads(message["body"]) == {"id": "err-1"}
    assert message["attributes"] == {"kind": "test"}
    counts = [r["receive_count"] for r in harness.records("on_errors") if r["id"] == "err-1"]
    assert counts == [1, 2, 3]
    harness.settled("errors")  # the dead letter left the queue

    shown = json.loads(harness.platform.cli("dlq", "show", letter["id"], check=True).stdout)
    assert shown["id"] == letter["id"] and shown["source"] == "queue:errors"
    harness.heal("err-1")
    job = harness.platform.cli_json("dlq", "redrive", letter["id"])

    def finished() -> Record | None:
        found: Record = harness.platform.http.get(f"/_nimbus/jobs/{job['id']}").json()
        return found if found["status"] in ("succeeded", "failed") else None

    assert harness.platform.wait_for(finished, "the re-driven event")["status"] == "succeeded"
    assert len([r for r in harness.records("on_errors") if r["id"] == "err-1"]) == 4
    assert harness.dead_letters("on_errors") == []


def test_a_poison_message_is_received_max_receives_times_then_dead_lettered(
    harness: Harness,
) -> None:
    """`poison` has max_receives=3 and dead_letter=poison_dlq: the queue's own redrive policy
    (SQS's) decides, not the function's retries."""
    harness.ok(send("poison", {"id": "poison-1"}, attributes={"origin": "test"}))
    [dead] = harness.drain("poison_dlq", lambda received: len(received) >= 1)
    assert json.loads(dead["body"]) == {"id": "poison-1"}
    assert dead["attributes"] == {"origin": "test"}
    assert dead["source"] == "poison"
    assert dead["last_error"] == "ValueError: poison poison-1"
    deliveries = [r["receive_count"] for r in harness.records("on_poison")]
    assert deliveries == [1, 2, 3]
    harness.settled("poison")
    assert harness.dead_letters("on_poison") == []  # the queue's DLQ has it, not the platform's


def test_a_dead_letter_queue_is_listed_and_redriven_to_its_source(harness: Harness) -> None:
    """Messages a queue moved to its dead-letter queue are dead letters too: `nimbus dlq`
    lists them (with the queue they failed in and their last error) and re-drives them one by
    one, or the whole queue with `redrive-queue` (SQS's redrive to source); back in their
    queue they are processed again from a fresh receive count."""
    harness.ok(send("sick", {"id": "sick-1"}), send("sick", {"id": "sick-2"}))

    def listed() -> list[Record]:
        letters = [d for d in harness.dead_letters("") if d["id"].startswith("queue:sick_dlq:")]
        return letters if len(letters) == 2 else []

    letters = harness.platform.wait_for(listed, "both messages, in the dead-letter queue")
    by_body = {json.loads(letter["payload"])["id"]: letter for letter in letters}
    assert {letter["source"] for letter in letters} == {"queue:sick"}
    assert by_body["sick-1"]["error"]["type"] == "ValueError"
    assert by_body["sick-1"]["error"]["message"] == "sick sick-1"
    shown = harness.platform.cli_json("dlq", "show", by_body["sick-1"]["id"])
    assert shown["id"] == by_body["sick-1"]["id"]

    harness.heal("sick-1")
    harness.heal("sick-2")
    harness.platform.cli("dlq", "redrive", by_body["sick-1"]["id"], check=True)
    assert harness.platform.cli_json("dlq", "redrive-queue", "sick_dlq")["moved"] == 1
    records = harness.wait_records(
        "on_sick", lambda rs: sum(r["ok"] for r in rs) == 2, "both re-driven messages"
    )
    for key in ("sick-1", "sick-2"):
        deliveries = [(r["receive_count"], r["ok"]) for r in records if r["id"] == key]
        assert deliveries == [(1, False), (2, False), (1, True)], key
    assert listed() == []
    unknown = harness.platform.cli("dlq", "redrive-queue", "nope")
    assert unknown.returncode != 0 and "no queue named 'nope'" in unknown.stderr


def test_a_queue_without_dead_letter_queue_keeps_its_dead_letters_for_redrive(
    harness: Harness,
) -> None:
    """`brittle` has max_receives=2 and no dead-letter queue: the message goes to the queue's
    own dead-letter area, which `nimbus dlq` lists and re-drives back into the queue."""
    harness.ok(send("brittle", {"id": "brittle-1"}, attributes={"origin": "test"}))

    def listed() -> list[Record]:
        return [d for d in harness.dead_letters("") if d["source"] == "queue:brittle"]

    [letter] = harness.platform.wait_for(listed, "the queue's dead letter")
    assert json.loads(letter["payload"]) == {"id": "brittle-1"}
    assert letter["attributes"] == {"origin": "test"}
    assert (letter["error"]["type"], letter["error"]["message"]) == (
        "ValueError",
        "brittle brittle-1",
    )
    assert letter["attempts"] == 2
    assert [r["receive_count"] for r in harness.records("on_brittle")] == [1, 2]
    harness.heal("brittle-1")
    harness.platform.cli("dlq", "redrive", letter["id"], check=True)
    records = harness.wait_records(
        "on_brittle", lambda rs: any(r["ok"] for r in rs), "the re-driven message"
    )
    assert [(r["receive_count"], r["ok"]) for r in records] == [(1, False), (2, False), (1, True)]
    harness.settled("brittle")
    assert listed() == []


def test_a_worker_killed_mid_batch_never_counts_as_success(harness: Harness) -> None:
    """on_fragile's instance SIGKILLs itself on a message's first delivery: the message is
    delivered again, with its receive count raised, and then processed."""
    harness.ok(send("fragile", {"id": "fragile-1"}))
    [done] = harness.wait_records("on_fragile", bool, "the message to be processed")
    assert done == {"id": "fragile-1", "receive_count": 2}
    harness.settled("fragile")
    invocations = harness.platform.http.get(
        "/_nimbus/invocations", params={"function": "on_fragile"}
    ).json()
    assert sorted(i["outcome"] for i in invocations) == ["crash", "success"]
    assert harness.dead_letters("on_fragile") == []


def test_a_consumer_killed_holding_a_message_gets_it_back_after_its_visibility_timeout(
    harness: Harness,
) -> None:
    harness.ok(send("manual", {"id": "manual-1"}))
    died = harness.platform.invoke("consume_manual", {"wait": 10})
    assert died["outcome"] == "crash"
    stats = harness.stats("manual")  # not deleted: in flight, or visible again
    assert stats["visible"] + stats["in_flight"] == 1
    again = harness.platform.invoke("consume_manual", {"wait": 10})
    assert again["outcome"] == "success"
    assert again["result"] == {"body": json.dumps({"id": "manual-1"}), "receive_count": 2}
    harness.settled("manual")


def test_a_fifo_queue_trigger_keeps_each_group_in_order_through_retries(
    harness: Harness,
) -> None:
    sends = []
    for n in range(8):
        for group in ("g1", "g2", "g3"):
            body = {"group": group, "n": n, "fail_once": (group, n) in {("g1", 2), ("g2", 5)}}
            sends.append(send("sequenced", body, group=group))
    sends.append(sends[-1])  # the same body again: deduplicated by content
    sent = harness.ok(*sends)
    assert sent[-1] == sent[-2]  # the original's id

    def all_done(records: list[Record]) -> bool:
        return len(records) >= 24

    records = harness.wait_records("on_sequenced", all_done, "every message")
    harness.settled("sequenced")
    for group in ("g1", "g2", "g3"):
        assert [r["n"] for r in records if r["group"] == group] == list(range(8)), group
    retried = {(r["group"], r["n"]) for r in records if r["count"] > 1}
    assert {("g1", 2), ("g2", 5)} <= retried
    assert len(records) == 24


def test_a_message_older_than_max_event_age_is_dead_lettered_unprocessed(
    harness: Harness,
) -> None:
    """on_stale has max_event_age=1: a message delayed 2 s is too old once visible."""
    harness.ok(send("stale", {"id": "stale-1"}, delay=2))
    [letter] = harness.platform.wait_for(
        lambda: harness.dead_letters("on_stale"), "the stale message to be dead-lettered"
    )
    assert (letter["source"], letter["error"]["type"]) == ("queue:stale", "EventTooOld")
    assert harness.records("on_stale") == []
    harness.settled("stale")


def test_an_async_invocation_that_keeps_failing_goes_to_its_dead_letter_queue(
    harness: Harness,
) -> None:
    url = "/_nimbus/functions/doomed/invoke?mode=async"
    job = harness.platform.http.post(url, json={"tag": "grave"}).json()
    [message] = harness.drain("graveyard", lambda got: len(got) >= 1)
    assert json.loads(message["body"]) == {"tag": "grave"}  # the event, as Lambda's DLQ has it
    attributes = message["attributes"]
    assert (attributes["ErrorCode"], attributes["ErrorMessage"]) == ("RuntimeError", "doomed grave")
    done = harness.platform.http.get(f"/_nimbus/jobs/{job['id']}").json()
    assert (done["status"], done["attempts"]) == ("failed", 2)
    assert attributes["RequestID"] == done["request_ids"][-1]
    assert harness.dead_letters("doomed") == []  # the dead-letter queue took it


# topics


def test_topic_subscriptions_receive_only_matching_events(harness: Harness) -> None:
    """on_big_orders matches type order.created with amount >= 100; the queue subscription
    (topic events -> queue audit) matches attribute region=eu."""
    published = [
        ("big-eu", "order.created", 150, "eu"),  # both
        ("small-eu", "order.created", 50, "eu"),  # the queue only
        ("cancel-us", "order.cancelled", 500, "us"),  # neither
        ("edge-us", "order.created", 100, "us"),  # the function only
        ("text-amount", "order.created", "100", None),  # neither: "100" is not a number
        ("sentinel", "order.created", 1000, "eu"),  # both, published last
    ]
    harness.ok(
        *(
            {
                "op": "publish", "topic": "events", "type": kind,
                "data": {"id": key, "amount": amount},
                "attributes": {} if region is None else {"region": region},
            }
            for key, kind, amount, region in published
        )
    )  # fmt: skip
    harness.wait_records(
        "on_big_orders", lambda rs: "sentinel" in {r["id"] for r in rs}, "the sentinel event"
    )
    harness.idle("on_big_orders")  # every event handed on before the sentinel has run
    delivered = Counter(r["id"] for r in harness.records("on_big_orders"))
    assert delivered == Counter({"big-eu": 1, "edge-us": 1, "sentinel": 1})

    # the fan-out queue receives the events in topic order: read up to the sentinel
    messages = harness.drain(
        "audit", lambda got: any(json.loads(m["body"])["data"]["id"] == "sentinel" for m in got)
    )
    events = [json.loads(m["body"]) for m in messages]
    assert [e["data"]["id"] for e in events] == ["big-eu", "small-eu", "sentinel"]
    first = events[0]
    assert (first["type"], first["attributes"]) == ("order.created", {"region": "eu"})
    assert first["id"] and first["source"] and first["time"]
    assert [m["attributes"] for m in messages] == [{"region": "eu"}] * 3


def test_events_a_subscribed_queue_refuses_are_dead_lettered_not_dropped(
    harness: Harness,
) -> None:
    """Regression: the topic -> queue forwarder ignored the entries the queue refused (`audit`
    takes 1 KiB messages and stricter attribute names than a topic), losing those events."""
    harness.ok(
        {
            "op": "publish", "topic": "events", "data": {"id": "huge", "pad": "p" * 2000},
            "attributes": {"region": "eu"},
        },
        {
            "op": "publish", "topic": "events", "data": {"id": "odd"},
            "attributes": {"region": "eu", "odd name": "x"},
        },
        {
            "op": "publish", "topic": "events", "data": {"id": "fine"},
            "attributes": {"region": "eu"},
        },
    )  # fmt: skip
    [fine] = harness.drain("audit", lambda got: len(got) >= 1)
    assert json.loads(fine["body"])["data"] == {"id": "fine"}

    def refused() -> list[Record]:
        letters = [d for d in harness.dead_letters("") if d["source"] == "topic:events"]
        return letters if len(letters) == 2 else []

    letters = harness.platform.wait_for(refused, "two dead letters of topic events")
    by_id = {json.loads(d["payload"])["data"]["id"]: d for d in letters}
    assert by_id["huge"]["error"]["type"] == "PayloadTooLarge"
    assert by_id["odd"]["error"]["type"] == "InvalidRequest"
    assert "queue 'audit'" in by_id["odd"]["error"]["message"]
    assert "odd name" in by_id["odd"]["error"]["message"]
    assert json.loads(by_id["odd"]["payload"])["attributes"] == {"region": "eu", "odd name": "x"}
    # a dead letter of no function cannot be re-driven to one; it stays listed
    redrive = harness.platform.cli("dlq", "redrive", by_id["odd"]["id"])
    assert redrive.returncode != 0 and "no function" in redrive.stderr
    assert by_id["odd"]["id"] in [d["id"] for d in harness.dead_letters("")]


# streams


def test_a_stream_keeps_partition_order_and_isolates_a_bad_record(harness: Harness) -> None:
    records = []
    for n in range(8):
        for key in ("a", "b", "c"):
            bad = key == "b" and n == 4
            records.append({"key": key, "data": {"n": n, **({"bad": True} if bad else {})}})
    [placed] = harness.ok({"op": "put_records", "stream": "clicks", "records": records})
    where = {(r["key"], r["data"]["n"]): tuple(p) for r, p in zip(records, placed, strict=True)}
    bad_partition, bad_sequence = where[("b", 4)]
    good = {place for (key, n), place in where.items() if (key, n) != ("b", 4)}

    def all_good(seen: list[Record]) -> bool:
        return good <= {(r["partition"], r["sequence"]) for r in seen}

    seen = harness.wait_records("on_clicks", all_good, "every good record")
    # each good record exactly once (the handler is all or nothing), the bad one never
    assert Counter((r["partition"], r["sequence"]) for r in seen) == Counter(good)
    for partition in {p for p, _ in good}:
        sequences = [r["sequence"] for r in seen if r["partition"] == partition]
        assert sequences == sorted(sequences), f"partition {partition} out of order"
    for key in ("a", "b", "c"):
        ns = [r["n"] for r in seen if r["key"] == key]
        assert ns == [n for n in range(8) if (key, n) != ("b", 4)]
    # records after the bad one in its partition went on
    assert any(r["partition"] == bad_partition and r["sequence"] > bad_sequence for r in seen)

    [failure] = harness.drain("failed_clicks", lambda got: len(got) >= 1)
    destination = json.loads(failure["body"])
    assert destination["requestContext"]["condition"] == "RetriesExhausted"
    assert destination["requestContext"]["functionArn"].endswith("on_clicks")
    [isolated] = destination["requestPayload"]["records"]
    assert (isolated["partition"], isolated["sequence"], isolated["key"]) == (
        bad_partition, bad_sequence, "b",
    )  # fmt: skip
    assert json.loads(base64.b64decode(isolated["data"])) == {"n": 4, "bad": True}
    assert destination["responsePayload"]["errorType"] == "ValueError"
    assert destination["responseContext"]["functionError"] == "Unhandled"


# table change feeds


def test_a_table_change_feed_delivers_each_change_once_in_key_order(harness: Harness) -> None:
    table = {"table": "customers"}
    create_only = {"id": {"not_exists": True}}
    results = harness.produce(
        {"op": "table_put", "item": {"id": "t1", "v": 1}, **table},
        {"op": "table_put", "item": {"id": "t2", "v": 1}, **table},
        {"op": "table_update", "key": {"id": "t1"}, "set": {"v": 2}, **table},
        {"op": "table_put", "item": {"id": "t1", "v": 9}, "condition": create_only, **table},
        {"op": "table_delete", "key": {"id": "t2"}, **table},
        {"op": "table_put", "item": {"id": "t1", "v": 2}, **table},  # the same document: no change
        {"op": "table_delete", "key": {"id": "nobody"}, **table},  # nothing to delete: no change
        {"op": "table_put", "item": {"id": "t2", "v": 5}, **table},
        {"op": "table_update", "key": {"id": "t1"}, "set": {"v": 3}, **table},
        {"op": "table_delete", "key": {"id": "t1"}, **table},
        {"op": "table_put", "item": {"id": "t-end"}, **table},
    )  # fmt: skip
    assert results[3]["error"] == "ConditionFailed"
    assert all("ok" in r for i, r in enumerate(results) if i != 3), results

    def sentinel(changes: list[Record]) -> bool:
        return {"id": "t-end"} in [c["key"] for c in changes]

    changes = harness.wait_records("on_customers", sentinel, "the last change")
    mine = [c for c in changes if c["key"]["id"] in ("t1", "t2", "t-end")]
    sequences = [c["sequence"] for c in mine]
    assert sequences == sorted(set(sequences))  # once each, in commit order
    by_key = {
        key: [(c["kind"], c["old"], c["new"]) for c in mine if c["key"] == {"id": key}]
        for key in ("t1", "t2")
    }
    assert by_key["t1"] == [
        ("INSERT", None, {"id": "t1", "v": 1}),
        ("MODIFY", {"id": "t1", "v": 1}, {"id": "t1", "v": 2}),
        ("MODIFY", {"id": "t1", "v": 2}, {"id": "t1", "v": 3}),
        ("REMOVE", {"id": "t1", "v": 3}, None),
    ]
    assert by_key["t2"] == [
        ("INSERT", None, {"id": "t2", "v": 1}),
        ("REMOVE", {"id": "t2", "v": 1}, None),
        ("INSERT", None, {"id": "t2", "v": 5}),
    ]


# object events


def test_object_events_follow_the_prefix_and_suffix_filters(harness: Harness) -> None:
    bucket = {"bucket": "uploads"}
    harness.ok(
        {"op": "object_put", "key": "in/a.txt", "data": "hello", **bucket},
        {"op": "object_put", "key": "in/b.csv", "data": "x,y", **bucket},
        {"op": "object_put", "key": "out/c.txt", "data": "no", **bucket},
        {"op": "object_put", "key": "in/deeper/d.txt", "data": "deep", **bucket},
        {"op": "object_delete", "key": "in/a.txt", **bucket},
        {"op": "object_delete", "key": "out/c.txt", **bucket},
        {"op": "object_put", "key": "in/zz-end.txt", "data": "end", **bucket},
    )

    def sentinel(seen: list[Record]) -> bool:
        return "in/zz-end.txt" in {r["key"] for r in seen}

    harness.wait_records("on_uploads", sentinel, "the last object event")
    harness.idle("on_uploads")
    records = harness.records("on_uploads")
    assert Counter((r["key"], r["kind"]) for r in records) == Counter(
        [
            ("in/a.txt", "created"),
            ("in/deeper/d.txt", "created"),
            ("in/a.txt", "deleted"),
            ("in/zz-end.txt", "created"),
        ]
    )
    sizes = {r["key"]: r["size"] for r in records if r["kind"] == "created"}
    assert sizes == {"in/a.txt": 5, "in/deeper/d.txt": 4, "in/zz-end.txt": 3}


# permissions and bad input


def test_a_function_may_use_only_the_resources_it_declares(harness: Harness) -> None:
    attempts = harness.platform.invoke("intruder")["result"]
    assert {a["call"]: a["error"] for a in attempts} == dict.fromkeys(
        ["send", "receive", "put", "publish", "object", "unknown"], "PermissionDenied"
    )
    send_attempt = attempts[0]
    assert "'intruder' may not use 'secret'" in send_attempt["message"]
    assert "uses" in send_attempt["message"]
    # nothing changed
    assert harness.platform.invoke("keeper")["result"]["visible"] == 0
    [missing] = harness.ok({"op": "table_get", "table": "customers", "key": {"id": "intruder"}})
    assert missing is None


def test_bad_input_through_the_sdk_gets_a_clear_error_and_stores_nothing(
    harness: Harness,
) -> None:
    bad = {"op": "table_put", "table": "customers", "item": {"id": "bad", "v": 1}}
    results = harness.produce(
        {"op": "send", "queue": "small", "body": "x" * 65},
        {"op": "send", "queue": "small", "body": ""},
        {"op": "send", "queue": "small", "body": "late", "delay": 100000},
        {"op": "send_batch", "queue": "small", "bodies": ["fits", "y" * 100]},
        {**bad, "condition": {"v": {"between": [5, 1]}}},  # an empty range
        {**bad, "condition": {"v": {"bogus": 1}}},
        {"op": "table_put", "table": "customers", "item": {"id": "bad", "blob": "z" * 2000}},
        {"op": "table_put", "table": "customers", "item": {"v": 1}},
        {"op": "put_record", "stream": "clicks", "key": "big", "data": {"n": 0, "pad": "p" * 2000}},
        {"op": "publish", "topic": "events", "data": {"id": "bad"}, "attributes": {"": "x"}},
        send("customers", {"id": "bad"}),  # a table, not a queue
    )  # fmt: skip
    errors = [(r.get("error"), r.get("message", "")) for r in results]
    assert errors[0][0] == "PayloadTooLarge" and "max_message_bytes 64" in errors[0][1]
    assert errors[1][0] == "InvalidRequest" and "empty" in errors[1][1]
    assert errors[2][0] == "InvalidRequest" and "delay" in errors[2][1]
    [fits, too_big] = results[3]["ok"]["sent"]
    assert fits is not None and too_big is None
    [failed] = results[3]["ok"]["failed"]
    assert (failed["index"], failed["error"]) == (1, "PayloadTooLarge")
    for index in (4, 5):
        assert errors[index][0] == "InvalidRequest", errors[index]
    assert errors[6][0] == "PayloadTooLarge"
    assert errors[7][0] == "InvalidRequest" and "id" in errors[7][1]
    assert errors[8][0] == "PayloadTooLarge"
    assert errors[9][0] == "InvalidRequest"
    assert errors[10] == (
        "InvalidRequest",
        "'customers' is a table, not a queue: use nimbus.Table('customers') for it",
    )
    # nothing stored but the one valid message of the batch
    [only] = harness.drain("small", lambda got: len(got) >= 1)
    assert only["body"] == "fits"
    harness.settled("small")
    [item] = harness.ok({"op": "table_get", "table": "customers", "key": {"id": "bad"}})
    assert item is None


# destinations


def test_async_invocation_outcomes_reach_their_destinations_in_lambda_shape(
    harness: Harness,
) -> None:
    url = "/_nimbus/functions/deliver/invoke?mode=async"
    for event in ({"tag": "good", "fail": False}, {"tag": "bad", "fail": True}):
        assert harness.platform.http.post(url, json=event).status_code == 202
    messages = harness.drain("outcomes", lambda got: len(got) >= 2)
    records = {r["requestPayload"]["tag"]: r for r in (json.loads(m["body"]) for m in messages)}

    success = records["good"]
    assert success["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", success["timestamp"])
    context = success["requestContext"]
    assert context["condition"] == "Success" and context["approximateInvokeCount"] == 1
    assert context["functionArn"].endswith("deliver") and context["requestId"]
    assert success["requestPayload"] == {"tag": "good", "fail": False}
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert success["responsePayload"] == {"done": "good"}

    failure = records["bad"]
    context = failure["requestContext"]
    assert context["condition"] == "RetriesExhausted" and context["approximateInvokeCount"] == 2
    assert failure["responseContext"]["functionError"] == "Unhandled"
    response = failure["responsePayload"]
    assert (response["errorType"], response["errorMessage"]) == ("RuntimeError", "failed bad")
    assert any("failed bad" in line for line in response["stackTrace"])


def test_a_queue_trigger_sends_successful_batches_to_its_on_success_destination(
    harness: Harness,
) -> None:
    """Regression: the queue trigger ignored FailurePolicy.on_success (streams, tables and
    asynchronous invocations honoured it)."""
    harness.ok(send("paid", {"id": "paid-1"}))
    [receipt] = harness.drain("receipts", lambda got: len(got) >= 1)
    record = json.loads(receipt["body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["functionArn"].endswith("on_paid")
    [message] = record["requestPayload"]["messages"]
    assert json.loads(message["body"]) == {"id": "paid-1"}
    assert record["responsePayload"] == {"failed": [], "reasons": {}}  # BatchResult() as JSON
    harness.settled("paid")


def test_a_redeploy_that_tunes_a_trigger_keeps_its_position(harness: Harness) -> None:
    """Regression: a trigger's durable cursor was keyed by all its settings, so changing the
    batch size started a new cursor: from the oldest record (a replay of the whole stream) or
    from the latest (records written meanwhile skipped silently)."""
    first = [{"key": "k", "data": {"n": n}} for n in range(5)]
    harness.ok({"op": "put_records", "stream": "tuned", "records": first})
    harness.wait_records("on_tuned", lambda rs: len(rs) >= 5, "the first records")
    spec = harness.platform.http.get("/_nimbus/spec").json()
    [trigger] = spec["functions"]["on_tuned"]["triggers"]
    trigger["batch_size"] = 3
    assert harness.platform.http.put("/_nimbus/spec", json=spec).status_code == 200
    later = [{"key": "k", "data": {"n": n}} for n in range(5, 10)]
    harness.ok({"op": "put_records", "stream": "tuned", "records": later})
    records = harness.wait_records(
        "on_tuned", lambda rs: 9 in {r["n"] for r in rs}, "the records after the redeploy"
    )
    delivered = [r["n"] for r in records]
    assert list(dict.fromkeys(delivered)) == list(range(10))
    # at least once: the batch running at the redeploy may come again, nothing before it
    assert {n: count for n, count in Counter(delivered).items() if count > 1}.keys() <= {3, 4}
