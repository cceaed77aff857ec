"""The HTTP gateway: a raw ASGI app (hot path) routing requests to functions.

Bad input gets a clear answer and harms nothing: 404 unknown route, 405 wrong method, 413 body
over the limit (refused before it is buffered), 429 saturated, 502 handler failure, 504 timeout.
Paths under /_nimbus go to the admin API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import msgspec

from nimbus.compute.protocol import HttpEvent
from nimbus.edge.router import MethodNotAllowed, path_segments
from nimbus.edge.websockets import WebSocketGateway
from nimbus.errors import NimbusError, NotFound, Throttled

if TYPE_CHECKING:
    from nimbus.controller import Controller

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/_nimbus"
REQUEST_ID = b"x-nimbus-request-id"
JSON = (b"content-type", b"application/json")
NO_BODY_STATUSES = frozenset({204, 304})


class BodyTooLarge(NimbusError):
    status = 413


class ClientGone(NimbusError):
    """The client went away before its request was whole: nothing runs."""


class Gateway:
    def __init__(self, controller: Controller, admin: ASGIApp) -> None:
        self._controller = controller
        self._admin = admin
        self._websockets = WebSocketGateway(controller)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return
        path: str = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self._admin(scope, receive, send)
        elif kind == "websocket":
            await self._websockets(scope, receive, send)
        else:
            await self._serve(scope, receive, send, path)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        controller = self._controller
        method: str = scope["method"]
        segments = path_segments(scope)
        hook = controller.router.webhook(segments)
        if hook is not None:
            await controller.webhooks.serve(scope, receive, send, *hook, controller.max_body_bytes)
            return
        try:
            function, params, route = controller.router.match(method, segments)
            body = await _read_body(scope, receive, controller.max_body_bytes)
        except MethodNotAllowed as error:
            allow = ", ".join(error.allowed).encode()
            await _error(send, 405, f"method {method} not allowed on {path}", [(b"allow", allow)])
            return
        except NotFound:
            await _error(send, 404, f"no route for {method} {path}")
            return
        except BodyTooLarge as error:
            await _error(send, 413, error.message, [(b"connection", b"close")])
            return
        except ClientGone:
            return
        event = HttpEvent(
            method, path, params, scope["query_string"], scope["headers"], body, route
        )
        try:
            invocation = await controller.invoker.invoke(function, trigger="http", http=event)
        except Throttled as error:
            await _error(
                send, 429, error.message, [(b"retry-after", str(error.retry_after).encode())]
            )
            return
        except NotFound:
            await _error(send, 404, f"no route for {method} {path}")
            return
        result = invocation.result
        request_id = result.id.encode()
        if result.error is not None or result.http is None:
            failure = result.error
            status = 504 if failure is not None and failure.kind == "Timeout" else 502
            detail = (
                {"kind": failure.kind, "type": failure.type, "message": failure.message}
                if failure
                else {}
            )
            await _send(
                send,
                status,
                [JSON, (REQUEST_ID, request_id)],
                msgspec.json.encode({"error": detail, "request_id": result.id}),
            )
            return
        reply = result.http
        out = reply.headers
        out.append((REQUEST_ID, request_id))
        await _send(send, reply.status, out, reply.body, head=method == "HEAD")


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing before buffering it when it is (or turns out) over `limit`."""
    has_body = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
            has_body = value != b"0"
        elif name == b"transfer-encoding":
            has_body = True
    if not has_body:  # HTTP/1.1: no Content-Length and no Transfer-Encoding means no body
        return b""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("the client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = msgspec.json.encode({"error": message})
    await _send(send, status, [JSON, *(headers or [])], body)


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
) -> None:
    """Send a whole response; HEAD gets the length of the body it does not get (RFC 9110)."""
    if status in NO_BODY_STATUSES:
        body = b""
    else:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
