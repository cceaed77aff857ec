"""The app of tests/test_platform_events.py: subscribers of the platform's events, functions
that fail in each way, a throttled route, a queue that dead-letters by itself, and a function
acting on the platform through `nimbus.PLATFORM`.

Subscribers append what they get to `$OUT/<function>.jsonl` (see triggers_common).
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec
from triggers_common import ENV, record

import nimbus

app = nimbus.App("platform-events")

poison = app.queue("poison", max_receives=1, owner="queue-team", tags={"tier": "gold"})
audit = app.table("audit", key="id", owner="data-team")
ONCE = nimbus.FailurePolicy(retries=0)


def _record(function: str, event: nimbus.TopicEvent) -> None:
    fields = {"type": event.type, "source": event.source, "subject": event.subject}
    record(function, **fields, data=event.data)


@app.on_topic(nimbus.PLATFORM_EVENTS, environment=ENV)
def everything(event: nimbus.TopicEvent) -> None:
    _record("everything", event)


@app.on_topic(
    nimbus.PLATFORM_EVENTS,
    pattern={"type": [{"prefix": "nimbus.function."}], "data": {"function": ["boom", "slow"]}},
    environment=ENV,
)
def function_events(event: nimbus.TopicEvent) -> None:
    _record("function_events", event)


@app.on_topic(
    nimbus.PLATFORM_EVENTS,
    pattern={"type": ["nimbus.invocation.failed", "nimbus.message.dead_lettered"]},
    environment=ENV,
    failure=ONCE,
)
def failing_subscriber(event: nimbus.TopicEvent) -> None:
    """Fails on every failure it hears of: without the loop guard, it would hear of its own."""
    _record("failing_subscriber", event)
    raise RuntimeError("the subscriber fails too")


@app.function(failure=ONCE, owner="boom-team", tags={"cost-center": "cc-1"})
def boom(event: Any) -> None:
    raise ValueError(f"boom: {event}")


@app.function(timeout=0.5)
def sleepy(event: Any) -> None:
    time.sleep(10)


@app.function()
def crash(event: Any) -> None:
    os._exit(3)


@app.http("GET", "/slow", max_instances=1, owner="slow-team")
def slow(request: nimbus.Request) -> dict[str, bool]:
    time.sleep(float(request.query.get("seconds", "0.5")))
    return {"slow": True}


@app.on_queue(poison, batch_size=1, failure=nimbus.FailurePolicy(backoff=0.05))
def eat_poison(batch: nimbus.QueueBatch) -> None:
    raise ValueError("poisoned")


@app.function(uses=[nimbus.PLATFORM, poison])
def operate(event: dict[str, Any]) -> Any:
    """Runs one `nimbus.PLATFORM` call (or a queue send), answering the error's name instead
    of raising, so that the test sees exactly what a function would."""
    control = nimbus.PLATFORM
    calls = {
        "describe": lambda: control.describe(event["name"]),
        "tag": lambda: control.tag(event["name"], event["tags"]),
        "untag": lambda: control.untag(event["name"], event["keys"]),
        "scale": lambda: control.set_max_instances(event["name"], event["max_instances"]),
        "send": lambda: poison.send(event["body"]),
    }
    try:
        return {"ok": msgspec.to_builtins(calls[event["op"]]())}
    except nimbus.NimbusError as error:
        return {"error": type(error).__name__, "message": error.message}


@app.function()
def trespass(event: Any) -> Any:
    """Uses the platform without declaring it."""
    try:
        nimbus.PLATFORM.describe("boom")
    except nimbus.PermissionDenied as error:
        return {"error": "PermissionDenied", "message": error.message}
    return {"error": None}
