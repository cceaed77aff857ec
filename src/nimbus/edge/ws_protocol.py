"""uvicorn's WebSocket protocol, plus what ASGI cannot say: drop a connection at once, and
set its keepalive.

ASGI can only close a WebSocket politely, and closing waits for the socket's buffer to drain,
which never happens with a client that stopped reading: its socket and buffers would stay until
the client goes. The gateway drops such a client with `abort` instead. Keepalive pings are
uvicorn's; `keepalive` sets their interval and timeout per connection (each WebSocket API has
its own), and a peer that misses a pong is aborted too.

Both are offered in the scope's extensions under EXTENSION; the gateway works without them
(on another ASGI server), only less firmly.
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

EXTENSION = "nimbus.websocket"


class NimbusWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, giving the gateway `abort` and `keepalive` in the
    scope's extensions."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set only when the handshake was valid
        if scope is not None:  # the ASGI task has not run yet: it sees this
            scope["extensions"][EXTENSION] = {"abort": self.abort, "keepalive": self.keepalive}

    def abort(self) -> None:
        """Close the socket now, dropping whatever is still buffered for the client."""
        self.close_sent = True  # nothing more is written or handed to the app
        self.transport.abort()

    def keepalive(self, interval: float, timeout: float) -> None:
        """Ping every `interval` seconds once accepted; no pong within `timeout`: abort."""
        self.ping_interval = interval
        self.ping_timeout = timeout

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True  # refused with a response: uvicorn forgets to note it

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.transport.abort()
