"""Traces: spans recorded by a real `nimbus up` for every hop of an order, kept locally, shown
by the CLI, exported over OTLP/HTTP to a real receiver, bounded, and switchable off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from conftest import APPS, Platform, start_platform
from nimbus.compute.protocol import ErrorInfo, Result
from nimbus.errors import InvalidRequest
from nimbus.events import trace
from nimbus.ops.store import InvocationRecord
from nimbus.ops.tracing.config import tracing_config
from nimbus.ops.tracing.expand import spans_of
from nimbus.ops.tracing.invocations import begin
from nimbus.ops.tracing.sampler import Sampler
from nimbus.ops.tracing.spans import CallEntry, Entry, Span
from nimbus.ops.tracing.store import TraceStore, summary
from nimbus.spec.model import FunctionSpec

APP = APPS / "traces_app.py"
HEX = "0123456789abcdef"


def new_parent() -> tuple[str, str]:
    """A trace id and the caller's span id, as a client that traces would send them."""
    return trace.new_trace_id(), trace.new_span_id()


def order(platform: Platform, order_id: str, trace_id: str, span_id: str) -> None:
    header = trace.format_traceparent(trace_id, span_id, trace.SAMPLED)
    response = platform.http.post("/orders", json={"id": order_id}, headers={"traceparent": header})
    assert response.status_code == 200, response.text


Spans = list[dict[str, Any]]


def recorded_spans(platform: Platform, trace_id: str, until: Callable[[Spans], bool]) -> Spans:
    """The trace's spans once `until` holds for them."""

    def fetch() -> list[dict[str, Any]] | None:
        response = platform.http.get(f"/_nimbus/traces/{trace_id}")
        spans: list[dict[str, Any]] = response.json()["spans"] if response.is_success else []
        return spans if spans and until(spans) else None

    found: list[dict[str, Any]] = platform.wait_for(fetch, f"the spans of trace {trace_id}")
    return found


def shipment(platform: Platform, order_id: str) -> Any:
    """The row the order's last hop wrote, read through the platform API."""
    get = {"type": "table.get", "key": {"id": order_id}}
    return platform.http.post("/_nimbus/resources/shipments", json=get).json()


def has(name: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda spans: any(span["name"] == name for span in spans)


def only(spans: list[dict[str, Any]], name: str, function: str | None = None) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name and function in (None, s["function"])]
    assert len(found) == 1, f"{len(found)} spans {name!r} ({function}) in {spans}"
    return found[0]


def children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[str]:
    return sorted(s["name"] for s in spans if s["parent_id"] == parent["span_id"])


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_platform(APP, tmp_path_factory.mktemp("traces"), "--no-reload")
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


def test_one_trace_follows_an_order_from_the_request_to_the_row_three_hops_later(
    traced: Platform,
) -> None:
    trace_id, caller = new_parent()
    order(traced, "o-1", trace_id, caller)
    spans = recorded_spans(traced, trace_id, has("put shipments"))
    assert {s["trace_id"] for s in spans} == {trace_id}

    request = only(spans, "POST /orders")
    assert (request["kind"], request["parent_id"], request["status"]) == ("server", caller, "unset")
    assert request["attributes"]["http.route"] == "/orders"
    assert request["attributes"]["http.response.status_code"] == 200
    placed = only(spans, "place_order")
    assert placed["parent_id"] == request["span_id"]
    assert placed["attributes"]["faas.coldstart"] is True  # the app's first request
    assert children(spans, placed) == ["cold start", "handler"]
    send = only(spans, "send orders")
    assert send["kind"] == "producer"
    assert send["parent_id"] == only(spans, "handler", "place_order")["span_id"]
    assert send["attributes"]["messaging.destination.name"] == "orders"

    # hop 1: the queue's consumer continues under the call that sent the message
    delivery = only(spans, "process orders")
    assert (delivery["kind"], delivery["parent_id"]) == ("consumer", send["span_id"])
    stored = only(spans, "store_order")
    assert stored["parent_id"] == delivery["span_id"]
    put = only(spans, "put order_table")
    assert put["parent_id"] == only(spans, "handler", "store_order")["span_id"]
    assert put["attributes"]["db.collection.name"] == "order_table"

    # hop 2: the change feed's consumer continues under the write that made the change
    change = only(spans, "process order_table")
    assert (change["kind"], change["parent_id"]) == ("consumer", put["span_id"])
    shipped = only(spans, "ship_order")
    assert shipped["parent_id"] == change["span_id"]

    # hop 3: the row written three hops after the request
    row = only(spans, "put shipments")
    assert row["parent_id"] == only(spans, "handler", "ship_order")["span_id"]
    assert shipment(traced, "o-1") is not None


def test_a_warm_invocation_has_no_cold_start_span(traced: Platform) -> None:
    first, second = new_parent(), new_parent()
    order(traced, "w-1", *first)
    recorded_spans(traced, first[0], has("place_order"))
    order(traced, "w-2", *second)
    spans = recorded_spans(traced, second[0], has("place_order"))
    placed = only(spans, "place_order")
    assert placed["attributes"]["faas.coldstart"] is False
    assert children(spans, placed) == ["handler"]


def test_a_failed_invocation_marks_its_spans_as_errors(traced: Platform) -> None:
    trace_id, caller = new_parent()
    header = trace.format_traceparent(trace_id, caller, trace.SAMPLED)
    assert traced.http.get("/fail", headers={"traceparent": header}).status_code == 502
    spans = recorded_spans(traced, trace_id, has("handler"))
    request = only(spans, "GET /fail")
    assert request["status"] == "error"
    assert request["attributes"]["http.response.status_code"] == 502
    for name in ("fail", "handler"):
        failed = only(spans, name)
        assert failed["status"] == "error"
        assert failed["message"] == "RuntimeError: the warehouse is on fire"
    assert only(spans, "fail")["attributes"]["error.type"] == "RuntimeError"
    listed = traced.http.get("/_nimbus/traces", params={"function": "fail"}).json()
    assert any(t["trace_id"] == trace_id and t["error_count"] >= 3 for t in listed)


def test_an_unsampled_caller_is_not_recorded_but_its_trace_goes_on(traced: Platform) -> None:
    trace_id, caller = new_parent()
    header = trace.format_traceparent(trace_id, caller, 0)
    response = traced.http.post("/orders", json={"id": "u-1"}, headers={"traceparent": header})
    assert response.status_code == 200
    marker, marker_caller = new_parent()
    order(traced, "u-2", marker, marker_caller)  # recorded after the unsampled one's spans
    recorded_spans(traced, marker, has("put shipments"))
    assert traced.http.get(f"/_nimbus/traces/{trace_id}").status_code == 404


def test_the_trace_list_sums_up_each_trace(traced: Platform) -> None:
    trace_id, caller = new_parent()
    order(traced, "l-1", trace_id, caller)
    spans = recorded_spans(traced, trace_id, has("put shipments"))
    listed = traced.http.get("/_nimbus/traces", params={"function": "ship_order"}).json()
    found = next(t for t in listed if t["trace_id"] == trace_id)
    assert found["root"]["name"] == "POST /orders"
    assert found["function"] == "place_order"
    assert found["functions"] == ["place_order", "ship_order", "store_order"]
    assert found["span_count"] == len(spans)
    assert found["error_count"] == 0
    assert found["duration_ms"] > 0
    others = traced.http.get("/_nimbus/traces", params={"function": "fail"}).json()
    assert trace_id not in {t["trace_id"] for t in others}


def test_nimbus_trace_prints_the_span_tree(traced: Platform) -> None:
    trace_id, caller = new_parent()
    order(traced, "t-1", trace_id, caller)
    recorded_spans(traced, trace_id, has("put shipments"))
    printed = traced.cli("trace", trace_id, check=True).stdout
    lines = [line for line in printed.splitlines() if line.strip()]
    assert trace_id in lines[0]
    path = ["POST /orders", "place_order", "handler", "send orders", "process orders"]
    path += ["store_order", "handler", "put order_table", "process order_table", "ship_order"]
    path += ["handler", "put shipments"]
    depth = -1
    for name in path:  # each hop one level deeper than the one that caused it
        line = next(line for line in lines if _name_of(line) == name and _depth(line) > depth)
        assert _depth(line) == depth + 1 or depth == -1, line
        assert " ms " in line
        depth = _depth(line)
    listing = traced.cli("traces", "--function", "store_order", check=True).stdout
    assert trace_id in listing and "POST /orders" in listing


def test_bad_trace_requests_get_clear_errors(traced: Platform) -> None:
    response = traced.http.get("/_nimbus/traces/not-a-trace")
    assert response.status_code == 400
    assert "is not a trace id" in response.json()["error"]
    assert traced.http.get(f"/_nimbus/traces/{'0' * 31}1").status_code == 404
    assert traced.http.get("/_nimbus/traces", params={"limit": "0"}).status_code == 400
    shown = traced.cli("trace", "f" * 32)
    assert shown.returncode == 4 and "no trace" in shown.stderr
    assert "Traceback" not in shown.stderr


class Receiver:
    """An OTLP/HTTP traces receiver: decodes each export request's protobuf, keeps its spans
    with their resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Any]] = []
        self.paths: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver._lock:
                    receiver.paths.add(self.path)
                    for resource_spans in request.resource_spans:
                        resource = {
                            a.key: a.value.string_value for a in resource_spans.resource.attributes
                        }
                        for scope in resource_spans.scope_spans:
                            receiver.spans += [(resource, span) for span in scope.spans]
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def of_trace(self, trace_id: str) -> list[tuple[dict[str, Any], Any]]:
        with self._lock:
            return [(r, s) for r, s in self.spans if s.trace_id.hex() == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def test_spans_are_exported_over_otlp_http(
    launch: Callable[..., Platform], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # as a collector is set up
    platform = launch(APP, "--no-reload")
    trace_id, caller = new_parent()
    order(platform, "x-1", trace_id, caller)

    def exported() -> list[tuple[dict[str, Any], Any]] | None:
        spans = receiver.of_trace(trace_id)
        return spans if any(s.name == "put shipments" for _, s in spans) else None

    spans = platform.wait_for(exported, "the spans at the OTLP receiver")
    assert receiver.paths == {"/v1/traces"}
    assert {resource["service.name"] for resource, _ in spans} == {"traces"}
    by_name = {span.name: span for _, span in spans}
    request = by_name["POST /orders"]
    assert request.kind == request.SPAN_KIND_SERVER
    assert request.parent_span_id.hex() == caller
    send, delivery = by_name["send orders"], by_name["process orders"]
    assert send.kind == send.SPAN_KIND_PRODUCER
    assert (delivery.kind, delivery.parent_span_id) == (delivery.SPAN_KIND_CONSUMER, send.span_id)
    attributes = {a.key: a.value for a in by_name["place_order"].attributes}
    assert attributes["faas.name"].string_value == "place_order"
    assert attributes["faas.trigger"].string_value == "http"
    local = recorded_spans(platform, trace_id, has("put shipments"))  # local copies are kept too
    assert {s["span_id"] for s in local} == {span.span_id.hex() for _, span in spans}


def test_the_store_keeps_only_the_newest_spans(launch: Callable[..., Platform]) -> None:
    platform = launch(APP, "--no-reload", "--traces-keep", "4")
    ids = []
    for _ in range(6):  # an invocation each (its request, invocation and handler spans)
        trace_id, caller = new_parent()
        header = trace.format_traceparent(trace_id, caller, trace.SAMPLED)
        assert platform.http.get("/fail", headers={"traceparent": header}).status_code == 502
        ids.append(trace_id)
    recorded_spans(platform, ids[-1], has("handler"))
    listed = platform.http.get("/_nimbus/traces", params={"limit": 100}).json()
    assert len(listed) == 4 and sum(t["span_count"] for t in listed) == 12  # all warm
    kept = {t["trace_id"] for t in listed}
    assert ids[-1] in kept and ids[0] not in kept  # the oldest went first
    assert platform.http.get(f"/_nimbus/traces/{ids[0]}").status_code == 404


def test_with_tracing_off_nothing_is_recorded(launch: Callable[..., Platform]) -> None:
    platform = launch(APP, "--no-reload", "--no-traces")
    trace_id, caller = new_parent()
    order(platform, "off-1", trace_id, caller)
    platform.wait_for(lambda: shipment(platform, "off-1"), "the order to be shipped")
    response = platform.http.get("/_nimbus/traces")
    assert response.status_code == 409
    assert "tracing is off" in response.json()["error"]
    assert not (platform.data_dir / "traces.db").exists()
    listing = platform.cli("traces")
    assert listing.returncode != 0 and "tracing is off" in listing.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--otlp-endpoint", "ftp://collector"], "is not an http:// or https:// URL"),
        (["--traces-keep", "0"], "at least 1"),
        (["--trace-ratio", "1.5"], "--trace-ratio must be between 0 and 1"),
        (["--trace-ratio", "nan"], "--trace-ratio must be between 0 and 1"),
        (["--traces-per-second", "-1"], "--traces-per-second must be 0 or more"),
    ],
)
def test_bad_tracing_options_are_refused_before_start(
    tmp_path: Path, options: list[str], message: str
) -> None:
    command = [sys.executable, "-m", "nimbus", "up", str(APP), "--data-dir", str(tmp_path)]
    result = subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "traces.db").exists()


def test_configuration_follows_the_opentelemetry_environment() -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert tracing_config(environ={}).export is False
    assert tracing_config(environ=base).export is True
    assert tracing_config(environ=base).endpoint is None  # the exporter adds /v1/traces
    assert tracing_config(environ={**base, "OTEL_SDK_DISABLED": "true"}).enabled is False
    assert tracing_config(enabled=False, environ=base).export is False
    with pytest.raises(InvalidRequest, match="http/protobuf"):
        tracing_config(environ={**base, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_workers_and_a_controller_without_export_do_not_load_opentelemetry() -> None:
    code = (
        "import json, sys, nimbus.compute.zygote, nimbus.compute.worker, nimbus.controller;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code]))
    assert [m for m in loaded if m.startswith(("opentelemetry", "google"))] == []


ids = st.text(HEX, min_size=32, max_size=32).filter(lambda t: t != "0" * 32)
span_ids = st.text(HEX, min_size=16, max_size=16).filter(lambda s: s != "0" * 16)


@given(ids, span_ids, st.integers(0, 255), st.booleans(), st.booleans())
def test_an_invocation_continues_its_callers_trace_when_sampled(
    trace_id: str, span_id: str, flags: int, cold: bool, failed: bool
) -> None:
    recorded: list[Entry] = []
    caller = trace.format_traceparent(trace_id, span_id, flags)
    spans = begin(recorded.append, Sampler(0, 0.0), "queue:q", caller, None)
    if not flags & trace.SAMPLED:
        assert spans is None  # parent-based sampling: nothing of an unsampled trace
        return
    assert spans is not None
    handler = trace.parse(spans.dispatched())
    assert handler is not None
    assert (handler.trace_id, handler.flags) == (trace_id, flags & trace.KNOWN_FLAGS)
    error = ErrorInfo("Handler", "ValueError", "bad") if failed else None
    spans.finish(FUNCTION, invocation_record(cold, failed), Result("r", 1.5, 0, error=error))
    delivery, invocation, *rest = spans_of(recorded)
    by_name = {span.name: span for span in rest}
    assert (delivery.name, delivery.kind, delivery.parent_id) == ("process q", "consumer", span_id)
    assert (invocation.name, invocation.parent_id) == ("f", delivery.span_id)
    assert by_name["handler"].span_id == handler.span_id
    assert all(span.parent_id == invocation.span_id for span in rest)
    assert ("cold start" in by_name) == cold
    assert {s.trace_id for s in spans_of(recorded)} == {trace_id}
    assert len({s.span_id for s in spans_of(recorded)} | {span_id}) == len(rest) + 3
    assert {s.status for s in (invocation, by_name["handler"])} == {"error" if failed else "unset"}


FUNCTION = FunctionSpec.model_validate({"name": "f", "handler": "app:f"})


def invocation_record(cold: bool, failed: bool) -> InvocationRecord:
    return InvocationRecord(
        id="r", function="f", trigger="queue:q", started_at=0.0, duration_ms=1.5, billed_ms=2,
        memory_mb=128, peak_memory_mb=1.0, cold_start=cold, init_ms=2.0 if cold else 0.0,
        outcome="error" if failed else "success",
    )  # fmt: skip


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000)), min_size=1, max_size=20))
def test_a_trace_summary_roots_at_its_first_span_without_a_kept_parent(
    shape: list[tuple[int, int]],
) -> None:
    spans = [
        Span(
            trace_id="t", span_id=f"{number:016x}", parent_id=f"{parent:016x}", name=f"s{number}",
            kind="internal", start_ns=start, end_ns=start + 5, function=f"f{number % 3}",
        )
        for number, (parent, start) in enumerate(shape)
    ]  # fmt: skip
    found = summary("t", spans)
    kept = {span.span_id for span in spans}
    orphans = [span for span in spans if span.parent_id not in kept]
    root = min(orphans or spans, key=lambda span: span.start_ns)  # the first, of equal starts
    assert found["root"]["span_id"] == root.span_id
    assert found["span_count"] == len(spans)
    assert found["functions"] == sorted({span.function for span in spans})
    assert found["duration_ms"] * 1e6 == pytest.approx(
        max(s.end_ns for s in spans) - min(s.start_ns for s in spans)
    )


def _name_of(line: str) -> str:
    text = line.lstrip(" │├└─")
    return text.split(" ms ")[0].rsplit(" ", 1)[0]


def _depth(line: str) -> int:
    return (len(line) - len(line.lstrip(" │├└─"))) // 4


@given(st.integers(-5_000_000, 5_000_000), st.integers(-5_000_000, 5_000_000))
def test_a_handler_span_starts_no_later_than_its_service_calls(first: int, second: int) -> None:
    recorded: list[Entry] = []
    spans = begin(recorded.append, Sampler(1, 0.0), "invoke", None, None)
    assert spans is not None
    handler = trace.parse(spans.dispatched())
    assert handler is not None
    spans.finish(FUNCTION, invocation_record(False, False), Result("r", 1.5, 0))
    (entry,) = recorded
    alone = next(s for s in spans_of(recorded) if s.name == "handler")
    for offset in (first, second):
        recorded.append(
            CallEntry(
                entry.trace_id, handler.span_id, trace.new_span_id(), "f", "queue", "q",
                "queue.send", None, alone.start_ns + offset, alone.start_ns + offset + 10,
                None, None,
            )
        )  # fmt: skip
    expanded = spans_of(recorded)
    started = next(s for s in expanded if s.name == "handler").start_ns
    assert started == min(alone.start_ns, alone.start_ns + first, alone.start_ns + second)
    calls = [s for s in expanded if s.parent_id == handler.span_id]
    assert len(calls) == 2 and all(c.start_ns >= started for c in calls)


@given(
    keep=st.integers(1, 12),
    batches=st.lists(st.integers(1, 9), min_size=1, max_size=12),
)
def test_the_store_shows_exactly_the_newest_entries_and_drops_the_rest_in_chunks(
    tmp_path_factory: pytest.TempPathFactory, keep: int, batches: list[int]
) -> None:
    """Whatever the batches, reads see the newest `keep` entries (each its own trace here),
    and the table never holds more than the bound, half of it again, and one batch."""
    store = TraceStore(tmp_path_factory.mktemp("traces"), keep=keep)
    made: list[str] = []
    try:
        for size in batches:
            batch = [_call_entry(len(made) + n) for n in range(size)]
            made += [entry.trace_id for entry in batch]
            store.export(batch)
            store.db.flush()
            stored = store.db.read_now("SELECT COUNT(*) FROM entries")[0][0]
            assert stored <= keep + max(1, keep // 2) + size
        listed = asyncio.run(store.recent(None, 1000))
        assert {t["trace_id"] for t in listed} == set(made[-keep:])
    finally:
        store.close()


def _call_entry(number: int) -> CallEntry:
    trace_id = f"{number + 1:032x}"
    return CallEntry(
        trace_id, "00f067aa0ba902b7", f"{number + 1:016x}", "f", "queue", "orders",
        "queue.send", None, 1, 2, None, None,
    )  # fmt: skip
