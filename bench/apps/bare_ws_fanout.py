"""The WebSocket fan-out baseline: a raw ASGI app on bare uvicorn, no functions.

uvicorn bare_ws_fanout:app --app-dir bench/apps --ws websockets-sansio --loop uvloop

Clients connect to /fan; POST /fanout broadcasts as bench/apps/ws_fanout_app.py does, writing
each message to each connection in turn from the request's own task; GET /clients counts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
connected: set[Send] = set()


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await _client(receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)


async def _client(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    connected.add(send)
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        connected.discard(send)


async def _http(scope: Message, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fanout":
        order = msgspec.json.decode(body)
        padding = "x" * order["size"]
        reached = len(connected)
        for seq in range(order["count"]):
            text = f"{seq}|{time.time()!r}|{padding}"
            for client in list(connected):
                await client({"type": "websocket.send", "text": text})
            reached = min(reached, len(connected))
            if order["interval"]:
                await asyncio.sleep(order["interval"])
        answer: Any = {"reached": reached}
    else:
        answer = len(connected)
    data = msgspec.json.encode(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})
