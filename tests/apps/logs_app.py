"""The app of tests/test_logs.py: a function that logs at each level with fields of its own,
prints, and fails; and one that prints numbered lines in bulk (for retention)."""

from __future__ import annotations

import logging
from typing import Any

import nimbus

app = nimbus.App("logged")
log = logging.getLogger("shop")


@app.http("GET", "/checkout")
def checkout(request: nimbus.Request) -> dict[str, bool]:
    log.info("checkout started", extra={"user": "u-1", "items": 3, "when": object()})
    log.warning("stock is low")
    print("printed line")
    return {"ok": True}


@app.function()
def failing(event: Any) -> None:
    log.error("about to fail")
    raise ValueError("no such cart")


@app.function()
def chatty(event: dict[str, int]) -> None:
    for number in range(event["first"], event["first"] + event["count"]):
        print(f"line {number:05d} " + "x" * 200)
