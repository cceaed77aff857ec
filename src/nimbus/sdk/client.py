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
Op = TypeVar("Op", bound=msgspec.Struct)
_encoder = msgspec.msgpack.Encoder()
_reply_decoder: msgspec.msgpack.Decoder[ServiceReply] = msgspec.msgpack.Decoder(ServiceReply)


class _Connection:
    def __init__(self, sock: socket.socket, current_request: Any, current_trace: Any) -> None:
        self._sock = sock
        self._current_request = current_request  # the worker's context variables
        self._current_trace = current_trace
        self._reader = SocketReader(sock, _reply_decoder)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def call(self, resource: str, op: msgspec.Struct) -> bytes:
        request_id = "" if self._current_request is None else self._current_request.get()
        holder = None if self._current_trace is None else self._current_trace.get()
        trace = None if holder is None else holder.get()
        op = traced(op, trace)  # here, in the instance: the controller's core has less to do
        frame = ServiceCall(next(self._ids), request_id, resource, _encoder.encode(op), trace)
        with self._lock:
            self._sock.sendall(pack(frame))
            reply = self._reader.next()
            while isinstance(reply, ServiceReply) and reply.id != frame.id:
                reply = self._reader.next()  # the answer to a call that was interrupted
        if not isinstance(reply, ServiceReply):
            raise PlatformUnavailable("the platform closed this instance's service connection")
        if reply.error is not None:
            error_type = SERVICE_ERRORS.get(reply.error.type, NimbusError)
            raise error_type(reply.error.message)
        return reply.value


class _Installed:
    connection: _Connection | None = None


def install(sock: socket.socket, current_request: Any = None, current_trace: Any = None) -> None:
    """Called once by the worker at start: service calls go through `sock`, tagged with the
    running request's id and trace context (two context variables of the worker)."""
    _Installed.connection = _Connection(sock, current_request, current_trace)


def call(resource: str, op: msgspec.Struct, result: type[T]) -> T:
    """Send `op` on `resource` to the controller and return its answer decoded as `result`."""
    connection = _Installed.connection
    if connection is None:
        raise PlatformUnavailable(
            f"{resource!r} can be used only inside a function that nimbus runs"
        )
    return msgspec.msgpack.decode(connection.call(resource, op), type=result)


def traced(op: Op, traceparent: str | None, *, replacing: str | None = None) -> Op:
    """The operation with the caller's trace context on what it writes (on the operation, or
    on each entry of a batch), unless the caller set one itself. With `replacing`, a context
    equal to it is replaced too: the controller moves what the handler's span writes to the
    span of the service call that writes it."""
    if traceparent is None:
        return op
    if getattr(op, "traceparent", "") in (None, replacing):
        op = msgspec.structs.replace(op, traceparent=traceparent)
    entries = getattr(op, "entries", None)
    if isinstance(entries, list | tuple) and all(
        isinstance(entry, msgspec.Struct) for entry in entries
    ):
        stamped = [traced(entry, traceparent, replacing=replacing) for entry in entries]
        op = msgspec.structs.replace(op, entries=type(entries)(stamped))
    return op
