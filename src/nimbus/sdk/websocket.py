"""`WebSocket(name)`: push to connected clients from any function, e.g.
`chat.send(event.connection_id, {"hello": "you"})` or `chat.send_to_group("room-1", "hi")`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.sdk.client import call
from nimbus.services.websockets import (
    Broadcast,
    ConnectionInfo,
    Disconnect,
    Info,
    Join,
    Leave,
    Members,
    Send,
    SendToGroup,
)


class WebSocket:
    """A WebSocket API the function declared in `uses`. A `str` is sent as a text frame,
    `bytes` as a binary frame, anything else as JSON text. Sends return once the message is
    queued for the client, never waiting for a slow one; `nimbus.Gone` says the connection is
    no longer there."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, connection_id: str, data: Any) -> None:
        """Send to one connection; Gone if it is not connected."""
        payload, binary = _frame(data)
        call(self.name, Send(connection_id=connection_id, data=payload, binary=binary), type(None))

    def send_to_group(self, group: str, data: Any, *, exclude: Iterable[str] = ()) -> int:
        """Send to every connection in `group` except `exclude`; how many it was queued for."""
        payload, binary = _frame(data)
        op = SendToGroup(group=group, data=payload, binary=binary, exclude=tuple(exclude))
        return call(self.name, op, int)

    def broadcast(self, data: Any, *, exclude: Iterable[str] = ()) -> int:
        """Send to every connection of the API except `exclude`; how many it was queued for."""
        payload, binary = _frame(data)
        return call(self.name, Broadcast(data=payload, binary=binary, exclude=tuple(exclude)), int)

    def join(self, connection_id: str, group: str) -> None:
        """Put the connection in `group` (it leaves every group when it disconnects)."""
        call(self.name, Join(connection_id=connection_id, group=group), type(None))

    def leave(self, connection_id: str, group: str) -> None:
        call(self.name, Leave(connection_id=connection_id, group=group), type(None))

    def close(self, connection_id: str, code: int = 1000, reason: str = "") -> None:
        """Close the connection once what was sent to it has gone out; `$disconnect` runs."""
        op = Disconnect(connection_id=connection_id, code=code, reason=reason)
        call(self.name, op, type(None))

    def info(self, connection_id: str) -> ConnectionInfo:
        """When and from where it connected, and its groups; Gone if it is not connected."""
        return call(self.name, Info(connection_id=connection_id), ConnectionInfo)

    def connections(self, group: str | None = None) -> list[str]:
        """The ids of the connected clients (of `group`), sorted."""
        return call(self.name, Members(group=group), list[str])


def _frame(data: Any) -> tuple[bytes, bool]:
    """The message's bytes and whether it is binary; InvalidRequest if it cannot be sent."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), True
    try:
        return (data.encode() if isinstance(data, str) else msgspec.json.encode(data)), False
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError) as error:
        raise InvalidRequest(f"a message is a str, bytes or JSON data: {error}") from None
