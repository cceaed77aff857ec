"""One client's WebSocket connection on the gateway: a bounded outbox and the task writing it.

Senders only append to the outbox. One writer per connection waits for the client (the ASGI
server pauses it while the socket's buffer is full), so a slow client slows only itself; when
its backlog would pass `limit` bytes it is dropped at once, its socket aborted rather than
drained, so a client that stopped reading holds no memory or file beyond that point.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from nimbus.services.websockets import ConnectionInfo, Outgoing

if TYPE_CHECKING:
    from nimbus.edge.gateway import Send

MESSAGE_OVERHEAD = 64
"""Bytes a queued message costs besides its payload, so that a flood of empty messages is
bounded too."""
TOO_SLOW = 1008  # policy violation (RFC 6455 7.4.1): how a dropped client's close is recorded


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ClientSession:
    """Implements `nimbus.services.websockets.Session` for a connection this gateway holds."""

    def __init__(self, info: ConnectionInfo, limit: int, abort: Callable[[], None]) -> None:
        self.info = info
        self._limit = limit
        self._abort = abort
        self._outbox: deque[Outgoing | _Close] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self.ended = asyncio.Event()
        """Set when the connection is over: the client left, was dropped, or was closed."""
        self.close_code: int | None = None
        self.close_reason = ""
        self._closing = False

    @property
    def open(self) -> bool:
        return not self._closing and not self.ended.is_set()

    def deliver(self, message: Outgoing) -> bool:
        if not self.open:
            return False
        cost = message.size + MESSAGE_OVERHEAD
        if self._queued + cost > self._limit:
            self.drop(f"too slow: over {self._limit} bytes waiting to be sent")
            return False
        self._outbox.append(message)
        self._queued += cost
        self._wakeup.set()
        return True

    def end(self, code: int, reason: str) -> None:
        if not self.open:
            return
        self._closing = True
        self.close_code, self.close_reason = code, reason
        self._outbox.append(_Close(code, reason))
        self._wakeup.set()

    def drop(self, reason: str) -> None:
        """End the connection now, unsent messages and all (a slow or dead client)."""
        if self.ended.is_set():
            return
        self._closing = True
        self.close_code, self.close_reason = TOO_SLOW, reason
        self._outbox.clear()
        self._queued = 0
        self.ended.set()
        self._abort()

    def client_left(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._closing = True
        self.ended.set()

    async def write(self, send: Send) -> None:
        """Send the outbox in order until the connection ends."""
        try:
            while not self.ended.is_set():
                if not self._outbox:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item = self._outbox.popleft()
                if isinstance(item, _Close):
                    await send(
                        {"type": "websocket.close", "code": item.code, "reason": item.reason}
                    )
                    return
                self._queued -= item.size + MESSAGE_OVERHEAD
                if isinstance(item.frame, str):
                    await send({"type": "websocket.send", "text": item.frame})
                else:
                    await send({"type": "websocket.send", "bytes": item.frame})
        except OSError:  # the client went away under the send (uvicorn's ClientDisconnected)
            self.client_left(1006, "")
        finally:
            self.ended.set()
