"""The worker's end of the service socket: every SDK handle call becomes one request/reply.

Calls are synchronous (like boto3 in a Lambda function) and safe from any thread; the socket is
the instance's own, so the controller knows which function calls and checks its permissions.
"""

from __future__ import annotations

import itertools
import socket
import threading
from typing import Any, TypeVar

import msgspec

from nimbus.compute.protocol import ServiceCall, ServiceReply, SocketReader, pack
from nimbus.errors import SERVICE_ERRORS, NimbusError, PlatformUnavailable

T = TypeVar("T")
_encoder = msgspec.msgpack.Encoder()
_reply_decoder: msgspec.msgpack.Decoder[ServiceReply] = msgspec.msgpack.Decoder(ServiceReply)
_current_request: Any = None  # the worker's contextvar of the running request id, when set


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = SocketReader(sock, _reply_decoder)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def call(self, resource: str, op: msgspec.Struct) -> bytes:
        request_id = _current_request.get() if _current_request is not None else ""
        frame = ServiceCall(next(self._ids), request_id, resource, _encoder.encode(op))
        with self._lock:
            self._sock.sendall(pack(frame))
            reply = self._reader.next()
        if not isinstance(reply, ServiceReply):
            raise PlatformUnavailable("the platform closed this instance's service connection")
        if reply.error is not None:
            error_type = SERVICE_ERRORS.get(reply.error.type, NimbusError)
            raise error_type(reply.error.message)
        return reply.value


_connection: _Connection | None = None


def install(sock: socket.socket, current_request: Any) -> None:
    """Called once by the worker at start: service calls go through `sock`."""
    global _connection, _current_request
    _connection = _Connection(sock)
    _current_request = current_request


def call(resource: str, op: msgspec.Struct, result: type[T]) -> T:
    """Send `op` on `resource` to the controller and return its answer decoded as `result`."""
    if _connection is None:
        raise PlatformUnavailable(
            f"{resource!r} can be used only inside a function that nimbus runs"
        )
    return msgspec.msgpack.decode(_connection.call(resource, op), type=result)
