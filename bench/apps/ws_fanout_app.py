"""The app of bench/websocket_fanout.py: a function that broadcasts to every connected client.

Each message is `<seq>|<epoch send time>|<padding>`, so that a client can time its delivery
without parsing JSON.
"""

from __future__ import annotations

import time
from typing import Any

import nimbus

app = nimbus.App("ws-fanout")
fan = app.websocket("fan", path="/fan", send_buffer_bytes=64 * 1024 * 1024)


@app.http("POST", "/fanout", uses=[fan], timeout=600)
def fanout(request: nimbus.Request) -> dict[str, Any]:
    """Broadcast `count` messages of `size` padding bytes, `interval` seconds apart."""
    order = request.json()
    padding = "x" * order["size"]
    reached = []
    for seq in range(order["count"]):
        reached.append(fan.broadcast(f"{seq}|{time.time()!r}|{padding}"))
        if order["interval"]:
            time.sleep(order["interval"])
    return {"reached": min(reached)}


@app.http("GET", "/clients", uses=[fan])
def clients(request: nimbus.Request) -> int:
    return len(fan.connections())
