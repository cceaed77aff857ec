"""An app for the dashboard tests: an HTTP function that logs, one that fails on bad input, and
an asynchronous one that dead-letters until a switch file exists (so a re-drive can succeed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("dashboard-demo")


@app.http("GET", "/greet/{name}")
def greet(request: nimbus.Request) -> dict[str, str]:
    name = request.params["name"]
    print(f"greeting {name}")
    return {"hello": name}


@app.http("POST", "/orders")
def place_order(request: nimbus.Request) -> dict[str, Any]:
    order = request.json()
    print(f"order for {order.get('quantity')} items")
    if order.get("quantity", 0) <= 0:
        raise ValueError("the quantity must be positive")
    return {"accepted": order}


@app.function(failure=nimbus.FailurePolicy(retries=0))
def settle(event: dict[str, str]) -> str:
    if not Path(event["switch"]).exists():
        raise RuntimeError("the ledger is closed")
    return "settled"
