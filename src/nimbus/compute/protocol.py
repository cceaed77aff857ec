"""Frames exchanged between controller, zygote and workers: msgpack (msgspec), length-prefixed.

A frame on the wire is a 4-byte big-endian length followed by one tagged msgspec Struct.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from typing import Literal

import msgspec

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30
RECV_SIZE = 1 << 16

ErrorKind = Literal["Handler", "Timeout", "OutOfMemory", "Crash", "Init", "Throttled"]


class Frame(msgspec.Struct, array_like=True, tag=True, omit_defaults=True):
    pass


class ErrorInfo(msgspec.Struct, omit_defaults=True):
    kind: ErrorKind
    type: str
    message: str
    traceback: list[str] = []


class HttpEvent(msgspec.Struct, array_like=True):
    """As the ASGI server gave it: bytes are decoded in the worker, off the controller's core."""

    method: str
    path: str
    params: dict[str, str]
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    route: str = ""
    """The path template of the route that matched, e.g. `/orders/{id}`."""


class HttpReply(msgspec.Struct, array_like=True):
    """Ready for the ASGI server: header names lower-case, no content-length (the gateway's)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class WorkerConfig(msgspec.Struct, array_like=True):
    """All a new instance needs to know; no paths to platform state, no credentials."""

    function: str
    handler: str
    root: str
    memory_mb: int
    concurrency: int
    environment: dict[str, str]
    style: str = "nimbus"
    """`aws`: events shaped as AWS Lambda documents them, and a Lambda-like context."""


# controller -> worker
class Invoke(Frame):
    id: str
    trigger: str
    deadline: float
    cold: bool
    payload: bytes = b"null"
    http: HttpEvent | None = None
    traceparent: str | None = None
    """W3C trace context of what caused this invocation (an HTTP request carries its own)."""
    traced: bool = False
    """The controller records this invocation's spans: `traceparent` is then the handler
    span's own context, which the worker uses as it is instead of starting a hop of its own."""
    unsampled: bool = False
    """The controller's sampler left out the trace this invocation starts: a trace the worker
    starts (there is no caller's) is not sampled, so that nothing it causes is recorded."""


class Cancel(Frame):
    """Stop this invocation (async instances only): it ran past its timeout."""

    id: str


# worker -> controller
class Ready(Frame):
    pid: int
    init_ms: float


class InitFailed(Frame):
    error: ErrorInfo


class Result(Frame):
    id: str
    duration_ms: float
    peak_memory_kb: int
    value: bytes = b"null"
    http: HttpReply | None = None
    error: ErrorInfo | None = None
    exiting: bool = False
    """The worker exits after this frame (its state can no longer be trusted)."""


class Log(Frame):
    id: str
    level: str
    message: str
    time: float
    trace_id: str = ""
    """The trace of the invocation that logged it."""
    extra: str | None = None
    """The fields a `logging` call gave with `extra=`, as a JSON object."""


# controller -> zygote (the new worker's socket travels beside the frame, SCM_RIGHTS)
class Spawn(Frame):
    token: int
    config: WorkerConfig


# zygote -> controller
class ZygoteReady(Frame):
    pid: int


class Spawned(Frame):
    token: int
    pid: int


class Exited(Frame):
    pid: int
    status: int
    """As `subprocess` returncodes: exit code, or minus the signal number."""


# worker -> controller on the instance's service socket, and the answer back
class ServiceCall(Frame):
    """A function calls a service through its SDK handle: `op` is the service's own tagged
    operation struct, msgpack-encoded; the controller decodes it by the resource's kind."""

    id: int
    request_id: str
    resource: str
    op: bytes
    traceparent: str | None = None
    """The calling invocation's trace context: what the call writes carries it on."""


class ServiceReply(Frame):
    id: int
    value: bytes = b"\xc0"  # msgpack nil
    error: ErrorInfo | None = None


ToWorker = Invoke | Cancel
FromWorker = Ready | InitFailed | Result | Log
FromZygote = ZygoteReady | Spawned | Exited

_encoder = msgspec.msgpack.Encoder()


def pack(frame: Frame) -> bytes:
    payload = _encoder.encode(frame)
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Accumulates bytes from a stream and yields the complete frames in them."""

    def __init__(self, decoder: msgspec.msgpack.Decoder[object]) -> None:
        self._decoder = decoder
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        while len(buffer) - offset >= 4:
            (size,) = HEADER.unpack_from(buffer, offset)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the limit")
            end = offset + 4 + size
            if len(buffer) < end:
                break
            frames.append(self._decoder.decode(buffer[offset + 4 : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return frames


class SocketReader:
    """Blocking frame reader with its own buffer: one recv usually brings a whole frame."""

    def __init__(self, sock: socket.socket, decoder: msgspec.msgpack.Decoder[object]) -> None:
        self._sock = sock
        self._buffer = FrameBuffer(decoder)
        self._frames: deque[object] = deque()

    def next(self) -> object | None:
        """The next frame; None when the peer has closed the socket."""
        while not self._frames:
            data = self._sock.recv(RECV_SIZE)
            if not data:
                return None
            self._frames.extend(self._buffer.feed(data))
        return self._frames.popleft()


def encode(frame: Frame) -> bytes:
    """A frame without its length prefix, for message-oriented (SEQPACKET) sockets."""
    return _encoder.encode(frame)
