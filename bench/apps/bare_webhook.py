"""The webhook baseline: a raw ASGI app that verifies GitHub's signature (HMAC-SHA256 of the
raw body, constant-time comparison) and answers 202, served by bare uvicorn. It stores and runs
nothing. It also answers GET /hello/{name}, which the server harness polls.

BENCH_WEBHOOK_SECRET=... uvicorn bare_webhook:app --app-dir bench/apps --http httptools
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Message = MutableMapping[str, Any]
KEY = os.environ["BENCH_WEBHOOK_SECRET"].encode()
JSON = (b"content-type", b"application/json")


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        status, body = 200, msgspec.json.encode({"hello": scope["path"].rsplit("/", 1)[-1]})
    else:
        status, body = await verify(scope, receive)
    headers = [JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def verify(scope: Message, receive: Callable[[], Awaitable[Message]]) -> tuple[int, bytes]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    headers = dict(scope["headers"])
    expected = b"sha256=" + hmac.new(KEY, raw, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, headers.get(b"x-hub-signature-256", b"")):
        return 401, b'{"error":"bad signature"}'
    delivery = headers.get(b"x-github-delivery", b"").decode()
    return 202, msgspec.json.encode({"delivery_id": delivery, "status": "queued"})
