"""Event envelopes: W3C trace context, CloudEvents 1.0 attributes, the typed events of
nimbus-style handlers and how their batch answers are read."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nimbus.errors import InvalidRequest
from nimbus.events import trace
from nimbus.events.cloudevents import CloudEvent, format_time, parse_time
from nimbus.events.outcome import item_failures
from nimbus.events.types import (
    PAYLOADS,
    BatchResult,
    InvalidBatchResponse,
    ObjectEvent,
    QueueBatch,
    QueueMessage,
    ScheduleTick,
    StreamBatch,
    StreamRecord,
    TableBatch,
    TableChange,
    TopicEvent,
    failed_items,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


# W3C Trace Context


def test_parse_reads_the_fields_of_the_spec_example() -> None:
    parsed = trace.parse(VALID)
    assert parsed == ("00", TRACE_ID, SPAN_ID, 1)
    assert parsed is not None and parsed.sampled
    assert trace.parse(f"00-{TRACE_ID}-{SPAN_ID}-00") == ("00", TRACE_ID, SPAN_ID, 0)


def test_surrounding_whitespace_is_ignored() -> None:
    assert trace.parse(f" \t{VALID} ") == ("00", TRACE_ID, SPAN_ID, 1)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "00",
        VALID.upper(),  # hex is lower-case
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 is exactly 55 characters
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"00-{TRACE_ID}-{SPAN_ID[:-1]}g-01",
        f"0g-{TRACE_ID}-{SPAN_ID}-01",
        f"01-{TRACE_ID}-{SPAN_ID}-01xyz",  # a later version may only extend after a dash
    ],
)
def test_invalid_traceparents_parse_to_none(value: object) -> None:
    assert trace.parse(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    assert trace.parse(f"cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future-brings") == (
        "cc",
        TRACE_ID,
        SPAN_ID,
        1,
    )
    assert trace.parse(f"01-{TRACE_ID}-{SPAN_ID}-01") is not None


def test_new_traceparents_are_valid_sampled_and_distinct() -> None:
    values = {trace.new_traceparent() for _ in range(100)}
    assert len(values) == 100
    for value in values:
        parsed = trace.parse(value)
        assert parsed is not None and parsed.version == "00" and parsed.sampled
    unsampled = trace.parse(trace.new_traceparent(sampled=False))
    assert unsampled is not None and not unsampled.sampled


def test_child_keeps_the_trace_and_makes_a_new_span() -> None:
    first, second = trace.child(VALID), trace.child(VALID)
    for value in (first, second):
        parsed = trace.parse(value)
        assert parsed is not None
        assert (parsed.version, parsed.trace_id, parsed.flags) == ("00", TRACE_ID, 1)
        assert parsed.span_id != SPAN_ID
    assert first != second


def test_child_of_a_later_version_is_version_00_with_known_flags_only() -> None:
    parsed = trace.parse(trace.child(f"07-{TRACE_ID}-{SPAN_ID}-ff-more"))
    assert parsed is not None
    assert (parsed.version, parsed.trace_id, parsed.flags) == ("00", TRACE_ID, 0x03)


@pytest.mark.parametrize("value", [None, "", "garbage", f"ff-{TRACE_ID}-{SPAN_ID}-01"])
def test_child_of_nothing_valid_starts_a_new_trace(value: str | None) -> None:
    parsed = trace.parse(trace.child(value))
    assert parsed is not None and parsed.trace_id != TRACE_ID


@given(st.text(max_size=80))
def test_no_input_makes_trace_functions_raise(value: str) -> None:
    parsed = trace.parse(value)
    assert parsed is None or len(parsed.trace_id) == 32
    assert trace.parse(trace.child(value)) is not None


def test_forked_instances_make_different_ids() -> None:
    read_end, write_end = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # an instance forked from the zygote
            os.write(write_end, f"{trace.new_traceparent()}\n".encode())
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    os.close(write_end)
    with os.fdopen(read_end) as lines:
        first, second = lines.read().split()
    assert first != second and trace.parse(first) is not None


def test_xray_header_carries_the_same_trace() -> None:
    assert trace.xray_header(VALID) == (
        f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={SPAN_ID};Sampled=1"
    )
    assert trace.xray_header("not a traceparent") is None


# CloudEvents 1.0


def test_a_new_event_has_an_id_a_time_and_specversion_1_0() -> None:
    event = CloudEvent(source="/queue/orders", type="com.example.order.created")
    assert event.id and event.specversion == "1.0"
    assert event.time is not None
    parse_time(event.time)
    assert event.to_dict() == {
        "source": "/queue/orders",
        "type": "com.example.order.created",
        "id": event.id,
        "specversion": "1.0",
        "time": event.time,
    }


def test_structured_json_round_trip_keeps_every_attribute_and_extension() -> None:
    original = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://github.com/cloudevents/spec/pull",
        "type": "com.github.pull_request.opened",
        "subject": "123",
        "time": "2018-04-05T17:31:00Z",
        "datacontenttype": "application/json; charset=utf-8",
        "dataschema": "https://example.com/schema/pr.json",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "flag": True,
        "traceparent": VALID,
        "tracestate": "rojo=00f067aa0ba902b7",
        "data": {"number": 123, "labels": ["bug"]},
    }
    event = CloudEvent.from_json(msgspec.json.encode(original))
    assert event.extensions == {
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "flag": True,
    }
    assert event.traceparent == VALID
    assert msgspec.json.decode(event.to_json()) == original


def test_binary_data_travels_as_data_base64() -> None:
    event = CloudEvent(
        source="/s", type="t", data=b"\x00\xffpdf", datacontenttype="application/pdf"
    )
    encoded = event.to_dict()
    assert encoded["data_base64"] == "AP9wZGY=" and "data" not in encoded
    assert CloudEvent.from_dict(encoded).data == b"\x00\xffpdf"


def test_internal_msgpack_transport_round_trips() -> None:
    event = CloudEvent(source="/s", type="t", data={"a": [1, 2]}, extensions={"tenant": "x"})
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(event), type=CloudEvent) == event


@pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
def test_a_missing_required_attribute_is_named(attribute: str) -> None:
    value = {"id": "1", "source": "/s", "type": "t", "specversion": "1.0"}
    del value[attribute]
    with pytest.raises(InvalidRequest, match=attribute):
        CloudEvent.from_dict(value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"id": ""}, "id"),
        ({"source": ""}, "source"),
        ({"type": ""}, "type"),
        ({"id": 5}, "id"),
        ({"specversion": "0.3"}, "specversion"),
        ({"subject": ""}, "subject"),
        ({"time": "yesterday"}, "time"),
        ({"time": "2018-04-05 17:31:00"}, "time"),
        ({"time": "2018-13-45T17:31:00Z"}, "time"),
        ({"datacontenttype": "json"}, "datacontenttype"),
        ({"data": 1, "data_base64": "AA=="}, "data_base64"),
        ({"data_base64": "not base64!"}, "base64"),
        ({"data_base64": 7}, "data_base64"),
        ({"Upper": "x"}, "Upper"),
        ({"waytoolongextensionname": "x"}, "waytoolongextensionname"),
        ({"ratio": 0.5}, "ratio"),
        ({"big": 2**40}, "big"),
        ({"nested": {"a": 1}}, "nested"),
    ],
)
def test_invalid_attributes_are_rejected_by_name(change: dict[str, Any], named: str) -> None:
    value = {"id": "1", "source": "/s", "type": "t", "specversion": "1.0", **change}
    with pytest.raises(InvalidRequest, match=named):
        CloudEvent.from_dict(value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(InvalidRequest, match="source"):
        CloudEvent(source="", type="t")
    with pytest.raises(InvalidRequest, match="tenant-id"):
        CloudEvent(source="/s", type="t", extensions={"tenant-id": "x"})


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="CloudEvent"):
        CloudEvent.from_json(body)


def test_an_invalid_traceparent_is_dropped_with_its_tracestate() -> None:
    event = CloudEvent(source="/s", type="t", traceparent="00-bad", tracestate="rojo=1")
    assert event.traceparent is None and event.tracestate is None
    assert "traceparent" not in event.to_dict()


def test_null_attributes_count_as_absent() -> None:
    event = CloudEvent.from_dict(
        {"id": "1", "source": "/s", "type": "t", "specversion": "1.0", "subject": None, "ext": None}
    )
    assert event.subject is None and event.extensions == {}


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01T00:00:01.5Z", 1.5),
        ("1970-01-01t01:00:00+01:00", 0.0),
        ("1985-04-12T23:20:50.52z", 482196050.52),
        ("1970-01-01T00:00:00.123456789Z", 0.123456),
    ],
)
def test_rfc3339_times_parse_to_epoch_seconds(text: str, epoch: float) -> None:
    assert parse_time(text) == pytest.approx(epoch)


def test_format_time_writes_utc_with_the_digits_asked() -> None:
    assert format_time(1583348638.390) == "2020-03-04T19:03:58.390Z"
    assert format_time(1583348638.390, 0) == "2020-03-04T19:03:58Z"
    assert format_time(0.25, 6) == "1970-01-01T00:00:00.250000Z"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_format_and_parse_time_round_trip_to_the_microsecond(epoch: float) -> None:
    assert parse_time(format_time(epoch, 6)) == pytest.approx(epoch, abs=2e-6)


# Typed events


def _message(id: str = "m1", body: str = '{"order": 7}') -> QueueMessage:
    return QueueMessage(id=id, source="nimbus:queue:orders", body=body, receipt=f"r-{id}")


def test_typed_events_carry_cloudevents_attributes_with_defaults() -> None:
    message = _message()
    assert (message.type, message.source, message.traceparent) == (
        "nimbus.queue.message",
        "nimbus:queue:orders",
        None,
    )
    assert message.time > 0 and message.sent_at > 0 and message.receive_count == 1
    assert message.json() == {"order": 7}
    tick = ScheduleTick(source="nimbus:schedule:f", expression="rate(1 minute)", time=60.0)
    assert tick.scheduled_at == 60.0 and tick.payload is None


def test_a_malformed_json_body_is_an_invalid_request_naming_the_message() -> None:
    with pytest.raises(InvalidRequest, match="m9"):
        _message("m9", "{oops").json()


def test_stream_records_decode_their_data() -> None:
    record = StreamRecord(source="s", partition=0, sequence=3, key="k", data='{"é": 1}'.encode())
    assert record.text() == '{"é": 1}' and record.json() == {"é": 1}
    with pytest.raises(InvalidRequest, match="record 4"):
        StreamRecord(source="s", partition=0, sequence=4, key="k", data=b"\xff").json()


def test_typed_events_are_immutable() -> None:
    with pytest.raises(AttributeError):
        _message().body = "changed"  # type: ignore[misc]


def test_batches_iterate_and_list_their_ids() -> None:
    batch = QueueBatch(messages=[_message("a"), _message("b")])
    assert [m.id for m in batch] == ["a", "b"] == batch.ids
    assert len(batch) == 2


PAYLOAD_EXAMPLES: list[tuple[str, msgspec.Struct]] = [
    ("queue", QueueBatch(messages=[_message("a")])),
    ("topic", TopicEvent(source="s", type="order.created", data={"a": 1}, subject="x")),
    (
        "stream",
        StreamBatch(
            records=[StreamRecord(source="s", partition=1, sequence=2, key="k", data=b"\0")]
        ),
    ),
    (
        "table",
        TableBatch(
            changes=[
                TableChange(
                    source="s",
                    kind="MODIFY",
                    key={"id": 1},
                    old={"id": 1},
                    new={"id": 1, "n": 2},
                    sequence=5,
                )
            ]
        ),
    ),
    ("bucket", ObjectEvent(source="s", bucket="b", key="k.pdf", kind="created", size=3, etag="e")),
    ("schedule", ScheduleTick(source="s", expression="cron(0 * * * *)", payload=[1])),
]


@pytest.mark.parametrize(("kind", "event"), PAYLOAD_EXAMPLES)
def test_the_worker_decodes_each_payload_by_trigger_kind(kind: str, event: msgspec.Struct) -> None:
    for encode, decode in (
        (msgspec.msgpack.encode, msgspec.msgpack.decode),
        (msgspec.json.encode, msgspec.json.decode),
    ):
        assert decode(encode(event), type=PAYLOADS[kind]) == event


def test_the_payload_table_covers_every_trigger_kind() -> None:
    """Every event-driven trigger kind has its typed payload (HTTP gets a Request)."""
    from nimbus.spec.model import TRIGGER_TYPES

    assert set(TRIGGER_TYPES) - {"http"} == set(PAYLOADS)


# Batch answers of nimbus-style handlers


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (None, []),
        (BatchResult(), []),
        (BatchResult(failed=["b", "a", "b"]), ["b", "a"]),
        ({"failed": ["a"]}, ["a"]),
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": None}, []),
        ({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}]}, ["b", "a"]),
    ],
)
def test_failed_items_reads_every_accepted_answer(answer: object, failed: list[str]) -> None:
    assert failed_items(answer, {"a", "b"}) == dict.fromkeys(failed)


def test_a_batch_result_sent_back_as_json_reads_the_same() -> None:
    result = BatchResult(failed=["a", "b"], reasons={"b": "card declined"})
    wire = msgspec.json.decode(msgspec.json.encode(result))
    assert failed_items(wire) == failed_items(result) == {"a": None, "b": "card declined"}


def test_fail_reports_an_item_with_its_reason() -> None:
    result = BatchResult()
    result.fail("b", "card declined")
    result.fail("a")
    result.fail("c", "")  # an empty reason is none
    assert (result.failed, BatchResult().failed) == (["b", "a", "c"], [])
    assert failed_items(result) == {"b": "card declined", "a": None, "c": None}


@pytest.mark.parametrize(
    ("answer", "reasons"),
    [
        ({"failed": ["a"], "reasons": None}, {"a": None}),
        ({"failed": ["a", "b"], "reasons": {"b": "why"}}, {"a": None, "b": "why"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}], "reasons": {"a": "x"}}, {"a": "x"}),
    ],
)
def test_reasons_go_with_the_failed_ids(answer: object, reasons: dict[str, str | None]) -> None:
    assert failed_items(answer, {"a", "b"}) == reasons


def test_an_aws_style_answer_has_no_reasons() -> None:
    answer = {"batchItemFailures": [{"itemIdentifier": "a"}], "reasons": {"a": "ignored"}}
    assert item_failures("aws", msgspec.json.encode(answer), ["a", "b"]) == {"a": None}


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ("done", "not str"),
        (["a"], "not list"),
        (True, "not bool"),
        ({"statusCode": 200}, "statusCode"),
        ({"failed": ["a"], "batchItemFailures": []}, "exactly one"),
        ({"failed": "a"}, "failed is a list"),
        ({"failed": [1]}, r"failed\[0\]"),
        (BatchResult(failed=[""]), r"BatchResult.failed\[0\]"),
        ({"batchItemFailures": "a"}, "batchItemFailures is a list"),
        ({"batchItemFailures": ["a"]}, r"batchItemFailures\[0\]"),
        ({"batchItemFailures": [{"itemId": "a"}]}, "itemIdentifier"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "None"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "non-empty"),
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, "'zz' is not an item of this batch"),
        ({"failed": ["a"], "reasons": ["why"]}, "reasons maps failed ids to reasons, not list"),
        ({"failed": ["a"], "reasons": {"b": "why"}}, "reasons: 'b' is not one of the failed ids"),
        ({"failed": [], "reasons": {"a": "why"}}, "'a' is not one of the failed ids"),
        ({"batchItemFailures": None, "reasons": {"a": "x"}}, "'a' is not one of the failed"),
        ({"failed": ["a"], "reasons": {"a": 42}}, r"reasons\['a'\] is not a string: 42"),
        (BatchResult(failed=["a"], reasons={"a": None}), r"BatchResult.reasons\['a'\]"),
    ],
)
def test_a_malformed_answer_is_an_error_naming_what_is_wrong(answer: object, named: str) -> None:
    with pytest.raises(InvalidBatchResponse, match=named) as raised:
        failed_items(answer, {"a", "b"})
    assert isinstance(raised.value, InvalidRequest) and isinstance(raised.value, ValueError)
