"""JSON from outside nested too deeply for the decoder's recursion is malformed JSON like any
other, wherever it is decoded: the clear error a malformed body gets, never a RecursionError
(which no handler of malformed input caught: a 502 or a 500 with a traceback)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from nimbus import (
    BadRequest,
    InvalidRequest,
    MqttMessage,
    QueueMessage,
    Request,
    StreamRecord,
    WebhookEvent,
    WebSocketEvent,
)
from nimbus.events import aws
from nimbus.events.cloudevents import CloudEvent
from nimbus.json_input import TOO_DEEP, decode_json
from nimbus.services.websockets import select_route

DEPTH = 100_000
DEEP = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECT = '{"action": "send", "x": ' + "[" * DEPTH + "]" * DEPTH + "}"


def test_decode_json_raises_a_decode_error_for_too_deep_input() -> None:
    with pytest.raises(msgspec.DecodeError, match=TOO_DEEP):
        decode_json(DEEP)
    with pytest.raises(msgspec.DecodeError, match=TOO_DEEP):
        decode_json(DEEP_OBJECT, msgspec.json.Decoder(dict[str, Any]))
    assert decode_json(b"[[1]]") == [[1]]


WEBHOOK = WebhookEvent(
    source="w", provider="github", method="POST", path="/h", headers={}, body=DEEP,
    progress_token="t", status_url="/h/deliveries/t",
)  # fmt: skip
MQTT = MqttMessage(source="m", broker="b", topic="t", filter="t", payload=DEEP, qos=0)
WEBSOCKET = WebSocketEvent(
    source="ws", api="chat", connection_id="c", route="send", kind="message", connected_at=0.0,
    text=DEEP.decode(),
)  # fmt: skip
READERS: dict[str, Callable[[], Any]] = {
    "Request.json": Request("POST", "/", {}, b"", [], DEEP).json,
    "QueueMessage.json": QueueMessage(source="q", body=DEEP.decode()).json,
    "StreamRecord.json": StreamRecord(source="s", partition=0, sequence=1, key="k", data=DEEP).json,
    "WebhookEvent.json": WEBHOOK.json,
    "MqttMessage.json": MQTT.json,
    "WebSocketEvent.json": WEBSOCKET.json,
    "CloudEvent.from_json": lambda: CloudEvent.from_json(DEEP),
}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_each_reader_of_outside_json_refuses_it_as_malformed(read: Callable[[], Any]) -> None:
    with pytest.raises((InvalidRequest, BadRequest)) as raised:
        read()
    assert "not valid JSON: JSON is nested too deeply" in raised.value.message


def test_a_request_body_nested_too_deeply_answers_400() -> None:
    with pytest.raises(BadRequest) as raised:
        Request("POST", "/", {}, b"", [], DEEP).json()
    assert raised.value.status == 400


def test_a_websocket_message_nested_too_deeply_goes_to_the_default_route() -> None:
    assert select_route(DEEP_OBJECT, "action", frozenset({"send", "$default"})) == "$default"
    assert select_route(DEEP_OBJECT, "action", frozenset({"send"})) is None


def test_an_iot_rule_passes_a_payload_nested_too_deeply_as_base64_like_any_non_json() -> None:
    assert aws.iot_rule_event(MQTT) == {"data": base64.b64encode(DEEP).decode()}
