"""WebSocket APIs on the gateway: the handshake, `$connect`, messages to routes, `$disconnect`.

As API Gateway's WebSocket APIs: `$connect` runs while the upgrade request waits, and a status
of 300 or more (or a failed handler) refuses it with that status; each message goes to the route
its `route_key` field names, else to `$default`, and what the handler returns is sent back to
the sender (its route response); `$disconnect` runs once the connection is gone, whoever closed
it (best effort: not when the platform itself dies).

Bounded everywhere: a message over the API's `max_message_bytes` closes the connection (1009);
at most `max_inflight` messages of one connection run at once, and meanwhile the gateway stops
reading it, so a fast sender is held back by TCP rather than buffered; what is sent to a client
waits in its session's bounded outbox (`ws_session.py`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec

from nimbus.compute.protocol import HttpEvent, HttpReply
from nimbus.edge.router import Segments, path_segments, split
from nimbus.edge.ws_protocol import EXTENSION
from nimbus.edge.ws_session import ClientSession
from nimbus.errors import NimbusError, NotFound, Throttled
from nimbus.events import aws
from nimbus.events.types import WebSocketEvent, WebSocketKind
from nimbus.http import Headers
from nimbus.services.websockets import ConnectionInfo, Outgoing, select_route
from nimbus.spec.model import AppSpec, FunctionSpec
from nimbus.spec.websockets import CONNECT, DISCONNECT, WebSocketSpec, WebSocketTrigger

if TYPE_CHECKING:
    from nimbus.controller import Controller
    from nimbus.edge.gateway import Receive, Scope, Send

MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1
GOING_AWAY = 1001
HTTP_RESPONSE = "websocket.http.response"  # the ASGI extension for refusing with a response
HIDDEN_REPLY_HEADERS = frozenset({b"content-type", b"content-length", b"sec-websocket-protocol"})


@dataclass(frozen=True, slots=True)
class _Api:
    spec: WebSocketSpec
    routes: dict[str, FunctionSpec]
    keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Handshake:
    path: str
    headers: list[tuple[bytes, bytes]]
    query: bytes


class WebSocketGateway:
    """The ASGI app for `websocket` scopes; connections are registered in the platform's
    `Connections` service, where functions reach them."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller
        self._seen: AppSpec | None = None
        self._by_name: dict[str, _Api] = {}
        self._by_path: dict[Segments, _Api] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        self._refresh()
        api = self._by_path.get(path_segments(scope))
        if api is None:
            await _refuse(scope, send, 404, _error_body(f"no websocket at {scope['path']}"))
            return
        await self._serve(api, scope, receive, send)

    async def _serve(self, api: _Api, scope: Scope, receive: Receive, send: Send) -> None:
        registry = self._controller.services.websockets
        extension: dict[str, Any] = scope.get("extensions", {}).get(EXTENSION) or {}
        handshake = _Handshake(scope["path"], scope["headers"], scope["query_string"])
        headers = dict(Headers(handshake.headers))
        client = scope.get("client") or ("", 0)
        info = ConnectionInfo(
            connection_id=secrets.token_urlsafe(12),  # 96 random bits: not guessable
            api=api.spec.name,
            connected_at=time.time(),
            source_ip=client[0],
            user_agent=headers.get("user-agent", ""),
        )
        session = ClientSession(info, api.spec.send_buffer_bytes, extension.get("abort", _nothing))
        try:
            registry.attach(info.api, info.connection_id, session)
        except (Throttled, NotFound) as error:
            await _refuse(scope, send, error.status, _error_body(error.message))
            return
        connected = False
        try:
            reply = await self._connect(api, session, handshake, headers, scope)
            if reply.status >= 300:
                await _refuse(scope, send, reply.status, reply.body, reply.headers)
                return
            connected = True
            if "keepalive" in extension:
                extension["keepalive"](api.spec.ping_interval, api.spec.ping_timeout)
            await send(_accept(reply))
            await self._converse(api.spec, session, receive, send)
        except OSError:  # the client left before the handshake was answered
            session.client_left(1006, "")
        finally:
            registry.detach(info.api, info.connection_id)
            if connected:
                await self._disconnected(info.api, session, handshake)

    async def _connect(
        self,
        api: _Api,
        session: ClientSession,
        handshake: _Handshake,
        headers: dict[str, str],
        scope: Scope,
    ) -> HttpReply:
        if CONNECT not in api.routes:
            return HttpReply(200, [], b"")
        query = dict(parse_qsl(handshake.query.decode("latin-1"), keep_blank_values=True))
        offered = list(scope.get("subprotocols", []))
        event = _event(
            session, CONNECT, "connect", headers=headers, query=query, subprotocols=offered
        )
        reply = await self._run(api.spec.name, CONNECT, event, handshake)
        chosen = _header(reply, b"sec-websocket-protocol")
        if chosen is not None and chosen not in event.subprotocols:
            message = f"the $connect handler chose subprotocol {chosen!r}, which was not offered"
            return HttpReply(502, [], _error_body(message))
        return reply

    async def _converse(
        self, spec: WebSocketSpec, session: ClientSession, receive: Receive, send: Send
    ) -> None:
        """Read and write until the connection ends; then let running messages finish."""
        running: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        writer = loop.create_task(session.write(send))
        reader = loop.create_task(self._read(spec, session, receive, running))
        try:
            await session.ended.wait()
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await asyncio.gather(*running, return_exceptions=True)

    async def _read(
        self,
        spec: WebSocketSpec,
        session: ClientSession,
        receive: Receive,
        running: set[asyncio.Task[None]],
    ) -> None:
        slots = asyncio.Semaphore(spec.max_inflight)
        loop = asyncio.get_running_loop()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        while session.open:
            await slots.acquire()  # while it waits, uvicorn stops reading the socket
            message = await receive()
            if message["type"] == "websocket.disconnect":
                session.client_left(message.get("code", 1005), message.get("reason") or "")
                return
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if data is not None else len((text or "").encode())
            if size > spec.max_message_bytes:
                session.end(MESSAGE_TOO_BIG, f"a message is at most {spec.max_message_bytes} B")
                return
            task = loop.create_task(self._on_message(spec.name, session, text, data))
            running.add(task)
            task.add_done_callback(finished)

    async def _on_message(
        self, name: str, session: ClientSession, text: str | None, data: bytes | None
    ) -> None:
        self._refresh()
        api = self._by_name.get(name)
        if api is None:
            session.end(GOING_AWAY, f"websocket {name!r} was removed")
            return
        route = select_route(
            text if text is not None else (data or b""), api.spec.route_key, api.keys
        )
        if route is None:
            message = f"no route for this message, and websocket {name!r} has no $default route"
            session.deliver(_text(_error_body(message)))
            return
        event = _event(session, route, "message", text=text, data=data)
        handshake = _Handshake(api.spec.path, [], b"")
        reply = await self._run(name, route, event, handshake)
        if reply.body:
            if len(reply.body) > api.spec.max_message_bytes:
                limit = api.spec.max_message_bytes
                problem = f"the reply of route {route!r} is over the {limit} bytes limit"
                session.deliver(_text(_error_body(problem)))
                return
            session.deliver(_frame(reply))

    async def _disconnected(self, name: str, session: ClientSession, handshake: _Handshake) -> None:
        """Run `$disconnect` (waiting for capacity: it has nowhere to report a throttle)."""
        self._refresh()
        api = self._by_name.get(name)
        if api is None or DISCONNECT not in api.routes:
            return
        code = session.close_code if session.close_code is not None else 1005
        event = _event(session, DISCONNECT, "disconnect", code=code, reason=session.close_reason)
        await self._run(name, DISCONNECT, event, handshake, wait=True)

    async def _run(
        self,
        name: str,
        route: str,
        event: WebSocketEvent,
        handshake: _Handshake,
        *,
        wait: bool = False,
    ) -> HttpReply:
        """Invoke the route's function; its answer as an HTTP reply (an error as 429/502/504
        with the gateway's JSON error body)."""
        api = self._by_name.get(name)
        function = api.routes.get(route) if api is not None else None
        if function is None:
            return HttpReply(404, [], _error_body(f"websocket {name!r} has no route {route!r}"))
        if function.style == "aws":
            shaped: Any = aws.websocket_event(
                event, raw_headers=handshake.headers, query_string=handshake.query
            )
        else:
            shaped = event
        http = HttpEvent("GET", handshake.path, {}, handshake.query, handshake.headers, b"", route)
        try:
            invocation = await self._controller.invoker.invoke(
                function.name,
                trigger=f"websocket:{name}",
                payload=msgspec.json.encode(shaped),
                http=http,
                wait=wait,
            )
        except Throttled as error:
            return HttpReply(429, [(b"retry-after", str(error.retry_after).encode())],
                             _error_body(error.message))  # fmt: skip
        except NimbusError as error:
            return HttpReply(error.status, [], _error_body(error.message))
        result = invocation.result
        if result.error is None and result.http is not None:
            return result.http
        failure = result.error
        if failure is None:  # cannot happen: a route's invocation always carries `http`
            return HttpReply(502, [], _error_body("the handler's answer was lost"))
        status = 504 if failure.kind == "Timeout" else 502
        detail = {"kind": failure.kind, "type": failure.type, "message": failure.message}
        return HttpReply(
            status, [], msgspec.json.encode({"error": detail, "request_id": result.id})
        )

    def _refresh(self) -> None:
        """The APIs and their routes, worked out again only when a new spec was applied."""
        spec = self._controller.spec
        if spec is self._seen:
            return
        self._seen = spec
        routes: dict[str, dict[str, FunctionSpec]] = {}
        for function in spec.functions.values() if spec else ():
            for trigger in function.triggers:
                if isinstance(trigger, WebSocketTrigger):
                    routes.setdefault(trigger.websocket, {})[trigger.route] = function
        apis = {
            name: _Api(api, routes.get(name, {}), frozenset(routes.get(name, {})))
            for name, api in (spec.websockets.items() if spec else ())
        }
        self._by_name = apis
        self._by_path = {split(api.spec.path): api for api in apis.values()}


def _event(
    session: ClientSession, route: str, kind: WebSocketKind, **fields: Any
) -> WebSocketEvent:
    info = session.info
    return WebSocketEvent(
        source=f"nimbus:websocket:{info.api}",
        type=f"nimbus.websocket.{kind}",
        api=info.api,
        connection_id=info.connection_id,
        route=route,
        kind=kind,
        connected_at=info.connected_at,
        source_ip=info.source_ip,
        **fields,
    )


def _accept(reply: HttpReply) -> dict[str, Any]:
    headers = [(n, v) for n, v in reply.headers if n not in HIDDEN_REPLY_HEADERS]
    message: dict[str, Any] = {"type": "websocket.accept", "headers": headers}
    chosen = _header(reply, b"sec-websocket-protocol")
    if chosen is not None:
        message["subprotocol"] = chosen
    return message


def _header(reply: HttpReply, name: bytes) -> str | None:
    for key, value in reply.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _frame(reply: HttpReply) -> Outgoing:
    """A route response as a frame: binary for `bytes` (octet-stream), else text."""
    if _header(reply, b"content-type") != "application/octet-stream":
        try:
            return Outgoing(reply.body.decode(), len(reply.body))
        except UnicodeDecodeError:
            pass
    return Outgoing(reply.body, len(reply.body))


def _text(body: bytes) -> Outgoing:
    return Outgoing(body.decode(), len(body))


def _error_body(message: str) -> bytes:
    return msgspec.json.encode({"error": message})


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer the upgrade request with an HTTP response (403 on a server without the ASGI
    extension for it)."""
    if HTTP_RESPONSE not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    out = [(n, v) for n, v in headers or [] if n != b"content-length"]
    if not any(name == b"content-type" for name, _ in out):
        out.append((b"content-type", b"application/json"))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": status, "headers": out})
    await send({"type": "websocket.http.response.body", "body": body})


def _nothing() -> None:
    """Without the server's abort, a dropped client's socket closes when it drains."""
