"""MQTT brokers: the rules of topic names and filters, and what function code may do on a broker.

Unlike the other services, a broker is not nimbus's own state: the controller keeps one
connection per declared broker (`nimbus.edge.mqtt`) and functions publish through it. The rules
below are MQTT 5.0's (section 4.7, "Topic Names and Topic Filters"), which 3.1.1 shares:

- a topic name or filter is 1 to 65535 bytes of UTF-8 without U+0000;
- `+` matches exactly one level and must fill its level (`a/+/c`, not `a+/c`);
- `#` matches the parent level and any number of levels below it, and must be the last
  character, alone in its level (`a/#`, not `a/#/c` or `a#`);
- a filter that starts with a wildcard matches no topic that starts with `$` (`$SYS/...`);
- a topic name (what is published to) holds no wildcard.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from nimbus.errors import InvalidRequest, PayloadTooLarge

MAX_TOPIC_BYTES = 65535
SHARED_PREFIX = "$share/"
QoS = Literal[0, 1]
"""Quality of service: 0 at most once, 1 at least once (AWS IoT Core offers these two)."""


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidRequest(f"an MQTT {what} is a non-empty string, not {text!r}")
    if "\0" in text:
        raise InvalidRequest(f"MQTT {what} {text!r} contains U+0000")
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidRequest(f"MQTT {what} {text!r} is not valid Unicode") from None
    if size > MAX_TOPIC_BYTES:
        raise InvalidRequest(f"an MQTT {what} is at most {MAX_TOPIC_BYTES} bytes, not {size}")
    return text


def check_filter(topic_filter: object) -> str:
    """The filter, if MQTT allows it as a subscription; else InvalidRequest saying why."""
    text = _check_text(topic_filter, "topic filter")
    if text.startswith(SHARED_PREFIX):
        raise InvalidRequest(
            f"topic filter {text!r}: shared subscriptions ($share/...) are not supported; "
            "nimbus holds one subscription per filter and broker"
        )
    levels = text.split("/")
    for number, level in enumerate(levels):
        if "#" in level and (level != "#" or number != len(levels) - 1):
            raise InvalidRequest(
                f"topic filter {text!r}: '#' must be the last level, alone in it (as in 'a/#')"
            )
        if "+" in level and level != "+":
            raise InvalidRequest(
                f"topic filter {text!r}: '+' must fill a whole level (as in 'a/+/c')"
            )
    return text


def check_topic(topic: object) -> str:
    """The topic name, if a message may be published to it; else InvalidRequest saying why."""
    text = _check_text(topic, "topic name")
    if "+" in text or "#" in text:
        raise InvalidRequest(
            f"topic {text!r}: wildcards ('+', '#') belong in subscriptions, not in the topic "
            "a message is published to"
        )
    return text


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a message published to `topic` matches `topic_filter` (both valid)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for number, pattern in enumerate(wanted):
        if pattern == "#":
            return True
        if number >= len(levels) or (pattern != "+" and pattern != levels[number]):
            return False
    return len(wanted) == len(levels)


# The operation function code may call (through `nimbus.sdk.mqtt.Mqtt`).


class Publish(msgspec.Struct, tag="mqtt.publish", kw_only=True, frozen=True):
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    traceparent: str | None = None
    """Sent as the MQTT 5 user property `traceparent` (W3C Trace Context for MQTT)."""


MqttOp = Publish
_decoder: msgspec.msgpack.Decoder[MqttOp] = msgspec.msgpack.Decoder(MqttOp)


def decode(raw: bytes, broker: str) -> MqttOp:
    """A function's operation on `broker`; InvalidRequest saying what is wrong with it."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as error:
        untyped = msgspec.msgpack.decode(raw)
        tag = untyped.get("type") if isinstance(untyped, dict) else None
        if tag != "mqtt.publish":
            raise InvalidRequest(
                f"{broker!r} is an MQTT broker: publish to it with nimbus.Mqtt({broker!r})"
            ) from None
        raise InvalidRequest(f"invalid arguments for {broker!r}: {error}") from None


class Publisher(Protocol):
    """The controller's connections to the declared brokers."""

    async def publish(self, broker: str, message: Publish) -> None:
        """Publish on `broker`; return once the broker has it (PUBACK) for QoS 1, once it is
        sent for QoS 0. PlatformUnavailable when the broker cannot be reached."""


async def perform(publisher: Publisher, broker: str, op: MqttOp, max_bytes: int) -> None:
    """Check a function's publish as MQTT and the broker's declaration require, then send it."""
    check_topic(op.topic)
    if op.qos not in (0, 1):
        raise InvalidRequest(f"qos is 0 or 1, not {op.qos!r}")
    if len(op.payload) > max_bytes:
        raise PayloadTooLarge(
            f"the message is {len(op.payload)} bytes; broker {broker!r} takes at most "
            f"{max_bytes} (its max_message_bytes)"
        )
    await publisher.publish(broker, op)
