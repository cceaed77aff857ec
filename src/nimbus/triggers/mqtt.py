"""MQTT triggers: each message a broker delivers becomes one asynchronous invocation per trigger
whose topic filter matched it, as each AWS IoT rule whose filter matches invokes its Lambda.

The bridge (`nimbus.edge.mqtt`) holds the connection and acknowledges a message to the broker
only once `deliver` has returned, that is once every invocation is durably accepted: if the
platform dies in between, the broker delivers the message again (at least once). From there,
retries, destinations and dead letters are the asynchronous invoker's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.errors import NotFound
from nimbus.events import aws
from nimbus.events.types import MqttMessage
from nimbus.ops.logs import LogSink
from nimbus.spec.model import AppSpec, FunctionSpec
from nimbus.spec.mqtt import MqttTrigger


@dataclass(frozen=True, slots=True)
class Route:
    """A function's trigger on a broker."""

    function: FunctionSpec
    trigger: MqttTrigger


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the broker delivered it; `filters` are the subscriptions it matched."""

    broker: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    filters: frozenset[str]
    content_type: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None
    """The publisher's W3C trace context (its `traceparent` user property), if valid."""


def routes_of(spec: AppSpec, broker: str) -> list[Route]:
    """The MQTT triggers on `broker`, in the order the spec declares them."""
    return [
        Route(function, trigger)
        for function in spec.functions.values()
        for trigger in function.triggers
        if isinstance(trigger, MqttTrigger) and trigger.broker == broker
    ]


class MqttDelivery:
    """Hands matched messages to the asynchronous invoker."""

    def __init__(self, jobs: AsyncInvoker, logs: LogSink) -> None:
        self._jobs = jobs
        self._logs = logs

    async def deliver(self, routes: Iterable[Route], message: Received) -> None:
        """Submit one invocation per route whose filter the message matched; returns once
        they are all committed. A platform failure raises, and the message stays unacknowledged."""
        for route in routes:
            if route.trigger.topic not in message.filters:
                continue
            try:
                await self._jobs.submit(
                    route.function.name, _payload(route, message), f"mqtt:{message.broker}",
                    traceparent=message.traceparent,
                )  # fmt: skip
            except NotFound:  # the function was removed while the message was on its way
                self._logs.platform(
                    f"a message on {message.topic!r} from broker {message.broker!r} was not "
                    f"delivered: function {route.function.name!r} is no longer deployed"
                )


def _payload(route: Route, message: Received) -> bytes:
    event = MqttMessage(
        source=f"nimbus:mqtt:{message.broker}", broker=message.broker, topic=message.topic,
        filter=route.trigger.topic, payload=message.payload, qos=message.qos,
        retain=message.retain, content_type=message.content_type,
        properties=message.properties, traceparent=message.traceparent,
    )  # fmt: skip
    if route.function.style == "aws":
        return msgspec.json.encode(aws.iot_rule_event(event))
    return msgspec.json.encode(event)
