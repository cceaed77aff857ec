"""WebSocket connections, backend-neutral: the registry every send goes through, the operations
function code may call (`nimbus.sdk.websocket.WebSocket`), and how a message picks its route.

The gateway that holds a client's socket *attaches* a `Session` for it; functions then reach
it by connection id, group or API, wherever they run. `Connections` is the one place that knows
which sessions exist, so a cluster backend can route a send to the node holding the socket
without the gateway, the SDK or the triggers changing. A send never waits for a client: it
queues the message on the session (bounded), and a session that cannot keep up is dropped.
Sending to a connection that is not (or no longer) there raises `Gone`, as API Gateway's
`PostToConnection` answers 410 GoneException.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import msgspec

from nimbus.errors import Gone, InvalidRequest, PayloadTooLarge
from nimbus.json_input import decode_json
from nimbus.spec.websockets import DEFAULT, WebSocketSpec

MAX_GROUPS = 100
"""Groups one connection may be in: membership costs memory on the gateway."""
GROUP = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_EXCLUDED = 1000


class Outgoing(msgspec.Struct, frozen=True):
    """One message to a client: a text frame (str) or a binary frame (bytes), made once and
    shared by every connection it goes to."""

    frame: str | bytes
    size: int
    """Bytes on the wire (UTF-8 for text)."""


class ConnectionInfo(msgspec.Struct, kw_only=True, frozen=True):
    """What the platform knows of a connection (API Gateway's GetConnection, plus groups)."""

    connection_id: str
    api: str
    connected_at: float
    source_ip: str = ""
    user_agent: str = ""
    groups: list[str] = []
    """Sorted."""


class Session(Protocol):
    """One client's connection, as the gateway holding its socket offers it to the registry."""

    @property
    def info(self) -> ConnectionInfo: ...

    def deliver(self, message: Outgoing) -> bool:
        """Queue `message` for the client without waiting; False if the session is closed or
        was just dropped because its backlog would pass the API's send buffer."""

    def end(self, code: int, reason: str) -> None:
        """Close the connection after the messages already queued (a close frame with `code`)."""


class Connections(Protocol):
    """Every connection of every WebSocket API of one platform."""

    async def create(self, spec: WebSocketSpec) -> None:
        """Declare the API, or update its limits (new connections get them)."""

    async def close(self) -> None:
        """The platform stops: close every connection (1001, going away)."""

    def attach(self, api: str, connection_id: str, session: Session) -> None:
        """Register a new connection of `api` (before its `$connect` runs, so that the handler
        can put it in groups). Throttled when the API has `max_connections` already."""

    def detach(self, api: str, connection_id: str) -> None:
        """Forget the connection and its groups: sends to it raise Gone from now on."""

    async def send(self, api: str, connection_id: str, message: Outgoing) -> None:
        """Queue a message for one connection; Gone if it is not connected (or is dropped
        because it is too far behind)."""

    async def send_to_group(
        self, api: str, group: str, message: Outgoing, exclude: frozenset[str] = frozenset()
    ) -> int:
        """Queue a message for every member of `group` but `exclude`; how many took it."""

    async def broadcast(
        self, api: str, message: Outgoing, exclude: frozenset[str] = frozenset()
    ) -> int:
        """Queue a message for every connection of the API but `exclude`; how many took it."""

    async def join(self, api: str, connection_id: str, group: str) -> None:
        """Add the connection to `group` (idempotent); Gone if it is not connected,
        InvalidRequest past MAX_GROUPS."""

    async def leave(self, api: str, connection_id: str, group: str) -> None:
        """Take the connection out of `group` (idempotent); Gone if it is not connected."""

    async def disconnect(self, api: str, connection_id: str, code: int, reason: str) -> None:
        """Close the connection once what is queued for it is sent (API Gateway's
        DeleteConnection); Gone if it is not connected."""

    async def info(self, api: str, connection_id: str) -> ConnectionInfo:
        """The connection's details; Gone if it is not connected."""

    async def members(self, api: str, group: str | None = None) -> list[str]:
        """The ids of the API's connections (of one group), sorted."""


def gone(api: str, connection_id: str) -> Gone:
    return Gone(f"connection {connection_id!r} of websocket {api!r} is gone (or never was)")


# The operations function code may call (through `nimbus.sdk.websocket.WebSocket`).


class _Payload(msgspec.Struct, kw_only=True, frozen=True):
    data: bytes
    binary: bool = False


class Send(_Payload, tag="websocket.send", kw_only=True, frozen=True):
    connection_id: str


class SendToGroup(_Payload, tag="websocket.send_to_group", kw_only=True, frozen=True):
    group: str
    exclude: tuple[str, ...] = ()


class Broadcast(_Payload, tag="websocket.broadcast", kw_only=True, frozen=True):
    exclude: tuple[str, ...] = ()


class Join(msgspec.Struct, tag="websocket.join", kw_only=True, frozen=True):
    connection_id: str
    group: str


class Leave(msgspec.Struct, tag="websocket.leave", kw_only=True, frozen=True):
    connection_id: str
    group: str


class Disconnect(msgspec.Struct, tag="websocket.disconnect", kw_only=True, frozen=True):
    connection_id: str
    code: int = 1000
    reason: str = ""


class Info(msgspec.Struct, tag="websocket.info", kw_only=True, frozen=True):
    connection_id: str


class Members(msgspec.Struct, tag="websocket.members", kw_only=True, frozen=True):
    group: str | None = None


WebSocketOp = Send | SendToGroup | Broadcast | Join | Leave | Disconnect | Info | Members


async def perform(service: Connections, api: str, op: WebSocketOp) -> Any:
    """Check and run one SDK operation on WebSocket API `api`; the result is msgspec-encodable.
    Bad arguments raise InvalidRequest before anything is sent."""
    match op:
        case Send():
            return await service.send(api, _checked_id(op.connection_id), _message(op))
        case SendToGroup():
            excluded = _excluded(op.exclude)
            return await service.send_to_group(api, checked_group(op.group), _message(op), excluded)
        case Broadcast():
            return await service.broadcast(api, _message(op), _excluded(op.exclude))
        case Join():
            return await service.join(api, _checked_id(op.connection_id), checked_group(op.group))
        case Leave():
            return await service.leave(api, _checked_id(op.connection_id), checked_group(op.group))
        case Disconnect():
            code, reason = checked_close(op.code, op.reason)
            return await service.disconnect(api, _checked_id(op.connection_id), code, reason)
        case Info():
            return await service.info(api, _checked_id(op.connection_id))
        case Members():
            group = None if op.group is None else checked_group(op.group)
            return await service.members(api, group)


def check_size(spec: WebSocketSpec, message: Outgoing) -> None:
    """What every backend checks before sending: the API's message limit applies both ways."""
    if message.size > spec.max_message_bytes:
        raise PayloadTooLarge(
            f"the message is {message.size} bytes; websocket {spec.name!r} takes at most "
            f"{spec.max_message_bytes}"
        )


def _message(payload: _Payload) -> Outgoing:
    size = len(payload.data)
    if payload.binary:
        return Outgoing(payload.data, size)
    try:
        return Outgoing(payload.data.decode(), size)
    except UnicodeDecodeError:
        raise InvalidRequest("a text message must be UTF-8; send bytes for a binary one") from None


def _checked_id(connection_id: object) -> str:
    if not isinstance(connection_id, str) or not CONNECTION_ID.match(connection_id):
        raise InvalidRequest(f"{connection_id!r} is not a connection id")
    return connection_id


def checked_group(group: object) -> str:
    if not isinstance(group, str) or not GROUP.match(group):
        raise InvalidRequest(
            f"group {group!r} is not a name of 1 to 128 characters without control characters"
        )
    return group


def _excluded(ids: tuple[str, ...]) -> frozenset[str]:
    if len(ids) > MAX_EXCLUDED:
        raise InvalidRequest(f"exclude names at most {MAX_EXCLUDED} connections")
    return frozenset(_checked_id(connection_id) for connection_id in ids)


def checked_close(code: int, reason: str) -> tuple[int, str]:
    """A close code an application may send (1000, or 3000-4999: RFC 6455 7.4) and a reason
    that fits in a close frame (123 bytes)."""
    if code != 1000 and not 3000 <= code <= 4999:
        raise InvalidRequest(f"close code {code} is not 1000 or 3000-4999 (RFC 6455)")
    if len(reason.encode()) > 123:
        raise InvalidRequest("a close reason is at most 123 bytes of UTF-8")
    return code, reason


# Route selection


def select_route(message: str | bytes, route_key: str, routes: frozenset[str]) -> str | None:
    """The route of an incoming message (API Gateway's `$request.body.<route_key>`): the
    string at `route_key` (dotted: nested) of a JSON object text message, when `routes` has
    it; else `$default` if declared; else None (nothing handles it). Never raises."""
    if isinstance(message, str) and message.lstrip().startswith("{"):
        try:
            value: Any = decode_json(message)
        except msgspec.DecodeError:
            value = None
        for part in route_key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value in routes and not value.startswith("$"):
            return value
    return DEFAULT if DEFAULT in routes else None
