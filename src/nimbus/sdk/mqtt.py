"""`Mqtt(name)`: publish to an MQTT broker from function code, e.g.
`plant.publish("factory/press-7/commands", {"action": "stop"})`."""

from __future__ import annotations

from typing import Any

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.sdk.client import call
from nimbus.services.mqtt import Publish


class Mqtt:
    """A broker the function declared in `uses`; the platform holds the connection."""

    def __init__(self, name: str) -> None:
        self.name = name

    def publish(self, topic: str, payload: Any = b"", qos: int = 1, retain: bool = False) -> None:
        """Publish one message to `topic` (no wildcards). Bytes are sent as they are, a str as
        UTF-8, anything else as JSON. With QoS 1 (the default) this returns once the broker
        has acknowledged the message (PUBACK); `retain` asks the broker to keep it as the
        topic's last known value."""
        op = Publish(topic=topic, payload=_bytes(payload), qos=qos, retain=retain)
        call(self.name, op, type(None))


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    try:
        if isinstance(payload, str):
            return payload.encode()
        return msgspec.json.encode(payload)
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError) as error:
        raise InvalidRequest(
            f"an MQTT payload is bytes, str or JSON-serialisable data: {error}"
        ) from None
