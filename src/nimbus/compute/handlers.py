"""Worker side: find the user's handler, call it the way it wants, shape what it returns."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from nimbus.compute.protocol import ErrorInfo, ErrorKind, HttpEvent, HttpReply, Invoke
from nimbus.context import Context
from nimbus.errors import HTTPError
from nimbus.events import aws, trace
from nimbus.events.lambda_context import LambdaContext
from nimbus.events.types import PAYLOADS
from nimbus.http import Request, Response

HandlerFunc = Callable[..., Any]
_PLATFORM_FRAMES = (
    os.path.dirname(__file__) + os.sep,  # the runtime (nimbus/compute)
    os.path.join(os.path.dirname(os.path.dirname(__file__)), "sdk") + os.sep,
)
JSON = "application/json"
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def load_handler(reference: str) -> HandlerFunc:
    """Import `module:qualified.name` and return the callable."""
    module_name, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{reference} is not callable")
    return target  # type: ignore[no-any-return]


SYNC_CONCURRENCY = "concurrency > 1 needs an `async def` handler"


def concurrency_allowed(handler: HandlerFunc, concurrency: int) -> bool:
    """A sync handler holds its instance's only thread for a whole call: one call at a time."""
    return concurrency <= 1 or asyncio.iscoroutinefunction(handler)


def instance_environment(
    function: str, memory_mb: int, environment: Mapping[str, str]
) -> dict[str, str]:
    """What an instance adds to its environment before it imports its handler."""
    return {
        **environment,
        "NIMBUS_FUNCTION_NAME": function,
        "NIMBUS_FUNCTION_MEMORY_MB": str(memory_mb),
    }


def wants_context(handler: HandlerFunc) -> bool:
    """Handlers take `(event)` or `(event, context)`; look once, at load time."""
    code = getattr(handler, "__code__", None)
    if code is not None and not inspect.ismethod(handler):
        return code.co_argcount >= 2 or bool(code.co_flags & inspect.CO_VARARGS)
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def make_event(http: HttpEvent | None, payload: bytes, trigger: str, style: str) -> Any:
    """The handler's event: a Request, a typed event of `nimbus.events.types`, or (style aws,
    and for direct invocations) the JSON payload as it is. A WebSocket route's invocation
    carries its handshake as `http` (so that it answers like an HTTP handler) and its event as
    the payload."""
    if http is not None and trigger == "http":
        if style == "aws":
            route = f"{http.method} {http.route}" if http.route else "$default"
            return aws.http_api_event(http, route=route)
        return Request(
            http.method, http.path, http.params, http.query_string, http.headers, http.body
        )
    typed = PAYLOADS.get(trigger.partition(":")[0]) if style != "aws" else None
    if typed is None:
        return msgspec.json.decode(payload)
    return msgspec.json.decode(payload, type=typed)


class InvocationTrace:
    """The invocation's trace context: the cause's (an HTTP request's `traceparent` header, or
    the event's), continued with a span of its own; a new trace when there is none (not
    sampled when the controller's sampler left it out). Worked out on first use, so that
    invocations which never call a service pay nothing for it."""

    __slots__ = ("_frame", "_trace_id", "_value")

    def __init__(self, frame: Invoke) -> None:
        self._frame = frame
        self._value: str | None = None
        self._trace_id: str | None = None

    def get(self) -> str:
        if self._value is None:
            frame, parent = self._frame, self._frame.traceparent
            if frame.traced and parent is not None:
                self._value = parent  # the handler span the controller records
                return parent
            if parent is None and frame.http is not None:
                for name, value in frame.http.headers:
                    if name == b"traceparent":
                        parent = value.decode("latin-1")
                        break
            self._value = trace.child(parent, sampled=not frame.unsampled)
        return self._value

    def trace_id(self) -> str:
        """The trace id of `get()`'s context (empty if that is not valid), worked out once:
        every log line of the invocation carries it."""
        if self._trace_id is None:
            parent = trace.parse(self.get())
            self._trace_id = parent.trace_id if parent is not None else ""
        return self._trace_id


def make_context(style: str, context: Context) -> Any:
    return LambdaContext.from_context(context) if style == "aws" else context


def shape_reply(style: str, value: Any) -> HttpReply:
    return aws.http_reply(value) if style == "aws" else shape_http(value)


def shape_http(value: Any) -> HttpReply:
    """Turn what an HTTP handler returned into status, headers and body."""
    status: int = 200
    headers: dict[str, str] = {}
    if isinstance(value, Response):
        status = value.status
        headers = {str(name).lower(): str(text) for name, text in value.headers.items()}
        headers.pop("content-length", None)  # the gateway sets it from the body
        value = value.body
    if value is None:
        body, content_type = b"", None
        status = 204 if status == 200 else status
    elif isinstance(value, bytes | bytearray | memoryview):
        body, content_type = bytes(value), "application/octet-stream"
    elif isinstance(value, str):
        body, content_type = value.encode(), "text/plain; charset=utf-8"
    else:
        body, content_type = msgspec.json.encode(value), JSON
    if content_type is not None:
        headers.setdefault("content-type", content_type)
    return HttpReply(_checked_status(status), _checked_headers(headers), body)


def _checked_status(status: object) -> int:
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"the response status {status!r} is not a whole number from 200 to 599")
    return status


def _checked_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Header names must be tokens, values ISO-8859-1 without line breaks (RFC 9110)."""
    pairs = []
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"the value of header {name!r} contains a line break or NUL")
        try:
            pairs.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ValueError(f"the value of header {name!r} is not ISO-8859-1 text") from None
    return pairs


def http_error_reply(error: HTTPError) -> HttpReply:
    body = msgspec.json.encode({"error": error.detail or f"HTTP {error.status}"})
    return HttpReply(error.status, [(b"content-type", JSON.encode())], body)


def error_info(kind: ErrorKind, error: BaseException) -> ErrorInfo:
    """The error as the caller and the logs see it; the platform's own frames left out (the
    runtime's that called the handler, the SDK's that raised a service's error)."""
    summary = traceback.TracebackException.from_exception(error)
    link: traceback.TracebackException | None = summary
    while link is not None:  # the error, and what it was raised from or during
        link.stack[:] = [f for f in link.stack if not f.filename.startswith(_PLATFORM_FRAMES)]
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    text = "".join(summary.format()).rstrip("\n")
    return ErrorInfo(kind, type(error).__name__, str(error), text.split("\n"))
