"""What the trigger test apps share (see tests/test_triggers.py).

Trigger handlers append what they saw, one JSON line per event, to `$OUT/<function>.jsonl`;
`OUT` is the directory the test names in `NIMBUS_TEST_OUT` when it starts the platform (read
while the platform builds the spec, and handed to the functions as their environment: `ENV`).
A test creates `$OUT/heal-<tag>` to make a failing handler succeed from then on. `run_ops` is
the test's hand inside the platform: service operations through the SDK, each answered with
{"ok": result} or {"error": type, "message": ...}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

import nimbus

ENV = {"OUT": os.environ.get("NIMBUS_TEST_OUT", "")}


def record(function: str, **fields: Any) -> None:
    """Append one line to the function's record (one write: lines of processes never mix)."""
    line = json.dumps(fields, separators=(",", ":")).encode() + b"\n"
    descriptor = os.open(
        Path(os.environ["OUT"]) / f"{function}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT
    )
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def healed(tag: str) -> bool:
    return (Path(os.environ["OUT"]) / f"heal-{tag}").exists()


Op = Callable[[dict[str, Any]], Any]


def run_ops(
    ops: list[dict[str, Any]], more: Mapping[str, Op] | None = None
) -> list[dict[str, Any]]:
    """Run `ops` in order; `more`: an app's own operations besides OPS."""
    table = {**OPS, **(more or {})}
    results: list[dict[str, Any]] = []
    for op in ops:
        try:
            results.append({"ok": msgspec.to_builtins(table[op["op"]](op))})
        except nimbus.NimbusError as error:
            results.append({"error": type(error).__name__, "message": error.message})
    return results


def _receive(op: dict[str, Any]) -> Any:
    queue = nimbus.Queue(op["queue"])
    messages = queue.receive(
        op.get("max", 10), visibility_timeout=op.get("visibility", 30), wait=op.get("wait", 0)
    )
    if op.get("delete"):
        for message in messages:
            queue.delete(message.receipt)
    return messages


OPS: dict[str, Op] = {
    "send": lambda op: nimbus.Queue(op["queue"]).send(
        op["body"],
        attributes=op.get("attributes"),
        delay=op.get("delay"),
        group=op.get("group"),
        dedup_id=op.get("dedup_id"),
    ),
    "send_batch": lambda op: nimbus.Queue(op["queue"]).send_batch(op["bodies"]),
    "receive": _receive,
    "stats": lambda op: nimbus.Queue(op["queue"]).stats(),
    "publish": lambda op: nimbus.Topic(op["topic"]).publish(
        op["data"], type=op.get("type", "nimbus.topic.event"), attributes=op.get("attributes")
    ),
    "put_record": lambda op: nimbus.Stream(op["stream"]).put(op["data"], key=op["key"]),
    "put_records": lambda op: nimbus.Stream(op["stream"]).put_batch(
        [(r["key"], r["data"]) for r in op["records"]]
    ),
    "table_put": lambda op: nimbus.Table(op["table"]).put(
        op["item"], condition=op.get("condition")
    ),
    "table_update": lambda op: nimbus.Table(op["table"]).update(
        op["key"], set=op.get("set"), condition=op.get("condition")
    ),
    "table_delete": lambda op: nimbus.Table(op["table"]).delete(
        op["key"], condition=op.get("condition")
    ),
    "table_get": lambda op: nimbus.Table(op["table"]).get(op["key"]),
    "object_put": lambda op: nimbus.Bucket(op["bucket"]).put(op["key"], op["data"]),
    "object_delete": lambda op: nimbus.Bucket(op["bucket"]).delete(op["key"]),
}
