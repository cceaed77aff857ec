"""The HTTP baseline: the same hello answer as a raw ASGI app, served by bare uvicorn.

uvicorn bare_asgi:app --app-dir bench/apps --http httptools --loop uvloop
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Message = MutableMapping[str, Any]
PREFIX = "/hello/"
JSON = (b"content-type", b"application/json")
NOT_FOUND = b'{"error":"not found"}'


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    name = path[len(PREFIX) :]
    if scope["method"] == "GET" and path.startswith(PREFIX) and name and "/" not in name:
        status, body = 200, msgspec.json.encode({"hello": name})
    else:
        status, body = 404, NOT_FOUND
    headers = [JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
