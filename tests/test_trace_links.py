"""Traces that stay whole across batches and destinations: a batch's invocation continues one
record's trace and links to the others', each record's trace shows the invocation that
processed it (through the API, the CLI and OTLP), and what an invocation sends to its
on-success or on-failure destination continues its trace. A real `nimbus up` throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import APPS, Platform, start_platform
from nimbus.events import trace
from nimbus.ops.tracing.invocations import MAX_LINKS, links_of
from nimbus.ops.tracing.spans import CallEntry, Entry, InvocationEntry
from nimbus.ops.tracing.store import TraceStore
from test_traces import Receiver, _depth, _name_of, new_parent, only

APP = APPS / "trace_links_app.py"
BATCH = 3  # the app's batches hold this many records: it waits for them
Trace = dict[str, Any]


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_platform(APP, tmp_path_factory.mktemp("links"), "--no-reload")
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


def post_batch(platform: Platform, path: str) -> list[str]:
    """BATCH records, each from a request in a new sampled trace of its own (as a client that
    traces sends them), so they make one batch; their trace ids."""
    ids = []
    for number in range(BATCH):
        trace_id, caller = new_parent()
        header = trace.format_traceparent(trace_id, caller, trace.SAMPLED)
        body = {"id": f"{trace_id[:12]}-{number}"}  # FIFO content dedup: each body its own
        response = platform.http.post(path, json=body, headers={"traceparent": header})
        assert response.status_code == 200, response.text
        ids.append(trace_id)
    return ids


def read(platform: Platform, trace_id: str, until: Callable[[Trace], bool]) -> Trace:
    """`GET /_nimbus/traces/{trace_id}` once `until` holds for it."""

    def fetch() -> Trace | None:
        response = platform.http.get(f"/_nimbus/traces/{trace_id}")
        found: Trace | None = response.json() if response.is_success else None
        return found if found is not None and until(found) else None

    found: Trace = platform.wait_for(fetch, f"trace {trace_id}")
    return found


def shows(name: str) -> Callable[[Trace], bool]:
    """The trace shows span `name`, its own or linked."""
    return lambda found: any(s["name"] == name for s in [*found["spans"], *found["linked"]])


def links(span: dict[str, Any]) -> set[tuple[str, str]]:
    return {(link["trace_id"], link["span_id"]) for link in span["links"]}


def batch_of(platform: Platform, ids: list[str], last: str) -> tuple[str, dict[str, Trace]]:
    """Which of the traces `ids` the batch's invocation continued, and each trace once it
    shows span `last`."""
    traces = {trace_id: read(platform, trace_id, shows(last)) for trace_id in ids}
    (carrier,) = [t for t, found in traces.items() if not found["linked"]]
    return carrier, traces


def test_each_message_of_a_batch_shows_the_invocation_that_processed_it(
    linked: Platform,
) -> None:
    ids = post_batch(linked, "/orders")
    carrier, traces = batch_of(linked, ids, "store_orders")
    sends = {t: only(traces[t]["spans"], "send orders")["span_id"] for t in ids}

    # the batch continues one message's trace and links to each of the others'
    own = traces[carrier]["spans"]
    delivery = only(own, "process orders")
    assert delivery["parent_id"] == sends[carrier]
    assert links(delivery) == {(t, sends[t]) for t in ids if t != carrier}
    assert only(own, "store_orders")["parent_id"] == delivery["span_id"]

    for other in (t for t in ids if t != carrier):  # each other message's trace shows it
        found = traces[other]
        assert {s["trace_id"] for s in found["spans"]} == {other}
        assert {s["trace_id"] for s in found["linked"]} == {carrier}
        processed = only(found["linked"], "process orders")
        assert processed["span_id"] == delivery["span_id"]
        assert (other, sends[other]) in links(processed)
        invocation = only(found["linked"], "store_orders")
        assert invocation["parent_id"] == processed["span_id"]
        assert (
            only(found["linked"], "handler", "store_orders")["parent_id"] == (invocation["span_id"])
        )
        assert not any(s["name"] == "place_order" for s in found["linked"])  # only its subtree


def test_a_successful_batch_s_destination_continues_its_trace(linked: Platform) -> None:
    ids = post_batch(linked, "/orders")
    carrier, traces = batch_of(linked, ids, "audit")
    own = traces[carrier]["spans"]
    destination = only(own, "process audit_log")  # the on-success destination is a queue
    assert destination["parent_id"] == only(own, "store_orders")["span_id"]
    assert only(own, "audit")["parent_id"] == destination["span_id"]
    for other in (t for t in ids if t != carrier):  # and the linked messages see it too
        assert only(traces[other]["linked"], "audit")["trace_id"] == carrier


def test_a_stream_batch_links_every_record_s_trace(linked: Platform) -> None:
    ids = post_batch(linked, "/events")
    carrier, traces = batch_of(linked, ids, "take_events")
    puts = {t: only(traces[t]["spans"], "put events")["span_id"] for t in ids}
    delivery = only(traces[carrier]["spans"], "process events")
    assert delivery["parent_id"] == puts[carrier]
    assert links(delivery) == {(t, puts[t]) for t in ids if t != carrier}
    for other in (t for t in ids if t != carrier):
        processed = only(traces[other]["linked"], "process events")
        assert (processed["span_id"], processed["trace_id"]) == (delivery["span_id"], carrier)
        assert only(traces[other]["linked"], "take_events")["parent_id"] == delivery["span_id"]


def test_an_on_failure_destination_hangs_under_the_invocation_that_failed(
    linked: Platform,
) -> None:
    trace_id, caller = new_parent()
    header = trace.format_traceparent(trace_id, caller, trace.SAMPLED)
    response = linked.http.post("/alarms", json={"level": 9}, headers={"traceparent": header})
    assert response.status_code == 200, response.text
    spans = read(linked, trace_id, shows("triage"))["spans"]
    failed = only(spans, "explode")
    assert failed["status"] == "error"
    destination = only(spans, "destination triage")
    assert (destination["kind"], destination["parent_id"]) == ("consumer", failed["span_id"])
    assert only(spans, "triage")["parent_id"] == destination["span_id"]


def test_nimbus_trace_shows_the_linked_batch_under_the_message_it_processed(
    linked: Platform,
) -> None:
    ids = post_batch(linked, "/orders")
    carrier, _ = batch_of(linked, ids, "store_orders")
    other = next(t for t in ids if t != carrier)
    lines = linked.cli("trace", other, check=True).stdout.splitlines()
    send = next(line for line in lines if _name_of(line) == "send orders")
    delivery = next(line for line in lines if _name_of(line) == "process orders")
    invocation = next(line for line in lines if _name_of(line) == "store_orders")
    assert lines.index(send) < lines.index(delivery) < lines.index(invocation)
    assert _depth(delivery) == _depth(send) + 1 and _depth(invocation) == _depth(delivery) + 1
    assert f"linked, in trace {carrier}" in delivery
    shown = linked.cli_json("trace", other)
    assert {s["trace_id"] for s in shown["linked"]} == {carrier}


def test_span_links_are_exported_over_otlp_http(
    launch: Callable[..., Platform], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        platform = launch(APP, "--no-reload")
        ids = post_batch(platform, "/orders")
        carrier, traces = batch_of(platform, ids, "store_orders")
        sends = {t: only(traces[t]["spans"], "send orders")["span_id"] for t in ids}

        def exported() -> Any:
            spans = receiver.of_trace(carrier)
            return next((s for _, s in spans if s.name == "process orders"), None)

        delivery = platform.wait_for(exported, "the batch's delivery at the OTLP receiver")
        assert delivery.kind == delivery.SPAN_KIND_CONSUMER
        exported_links = {(link.trace_id.hex(), link.span_id.hex()) for link in delivery.links}
        assert exported_links == {(t, sends[t]) for t in ids if t != carrier}
    finally:
        receiver.close()


contexts = st.builds(
    trace.format_traceparent,
    st.sampled_from([f"{n:032x}" for n in range(1, 6)]),
    st.sampled_from([f"{n:016x}" for n in range(1, 6)]),
    st.sampled_from([0x00, 0x01, 0x03]),
)
records = st.lists(st.one_of(contexts, st.sampled_from(["", "garbage", "00-zz-zz-01"])))


@given(st.one_of(st.none(), contexts), records, st.integers(1, 300))
def test_a_batch_links_each_other_valid_sampled_record_context_once(
    parent: str | None, traceparents: list[str], extra: int
) -> None:
    continued = trace.parse(parent)
    many = [*traceparents, *(f"00-{n:032x}-{n:016x}-01" for n in range(1, extra))]
    for batch in (traceparents, many):
        found = links_of(continued, batch)
        valid = [trace.parse(t) for t in batch]
        wanted = [(p.trace_id, p.span_id) for p in valid if p is not None and p.sampled]
        own = None if continued is None else (continued.trace_id, continued.span_id)
        expected = list(dict.fromkeys(pair for pair in wanted if pair != own))[:MAX_LINKS]
        assert list(found) == expected  # distinct, in order, bounded, the parent left out
        assert len(found) <= MAX_LINKS


def test_entries_stored_before_links_existed_still_decode() -> None:
    entry = invocation_entry("a" * 32, 8, ((("b" * 32), "c" * 16),))
    fields = msgspec.msgpack.decode(msgspec.msgpack.encode(entry))
    older = msgspec.msgpack.encode(fields[:-1])  # as it was stored: without the last field
    decoded = msgspec.msgpack.decode(older, type=Entry)
    assert decoded == msgspec.structs.replace(entry, links=())


def test_the_store_shows_the_subtree_of_what_links_to_a_trace(tmp_path: Path) -> None:
    batch, message, elsewhere = "a" * 32, "b" * 32, "c" * 32
    producer = "0000000000000011"
    delivery = invocation_entry(batch, 8, ((message, producer),))  # spans 08 to 0b
    handler = "000000000000000a"
    entries: list[Entry] = [
        call_entry(message, "00000000000000f0", producer),
        delivery,
        call_entry(batch, handler, "0000000000000021"),  # under the batch's handler
        invocation_entry(batch, 16, ()),  # the same trace, not under the linked delivery
        invocation_entry(elsewhere, 32, ()),
    ]
    store = TraceStore(tmp_path, keep=100)
    try:
        store.export(entries)
        store.db.flush()
        found = asyncio.run(store.trace(message))
        lonely = asyncio.run(store.trace("d" * 32))
    finally:
        store.close()
    assert found is not None and lonely is None
    assert [s["span_id"] for s in found["spans"]] == [producer]
    assert {s["span_id"] for s in found["linked"]} == {
        "0000000000000008", "0000000000000009", handler, "0000000000000021",
    }  # fmt: skip
    (root,) = [s for s in found["linked"] if s["links"]]
    assert root["links"] == [{"trace_id": message, "span_id": producer}]


def invocation_entry(trace_id: str, base: int, linked: tuple[tuple[str, str], ...]) -> Entry:
    """A warm invocation that ran its handler: delivery, invocation and handler spans."""
    return InvocationEntry(
        trace_id, None, base, 1_000, 2_000, 5_000, "f", "app:f", "queue:q", "r", False, 0.0,
        0.001, 1, 128, 1.0, "success", None, None, None, None, linked,
    )  # fmt: skip


def call_entry(trace_id: str, parent: str, span_id: str) -> Entry:
    return CallEntry(
        trace_id, parent, span_id, "f", "queue", "q", "queue.send", None, 3_000, 3_500, None,
        None,
    )  # fmt: skip
