"""The span of one SDK service call, timed around the backend's work in the controller.

The worker stamps what a call writes (a message, an event, a record, an object, an item) with
the handler span's context; here that context is replaced by the service call's own, so the
invocations the write triggers hang under the call that wrote it, as OpenTelemetry's
messaging conventions ask of a producer span. A context the function set itself is kept.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from nimbus.errors import NimbusError
from nimbus.events.trace import KNOWN_FLAGS, format_traceparent, new_span_id
from nimbus.events.trace import parse as parse_traceparent
from nimbus.ops.tracing.spans import CallEntry, Entry
from nimbus.sdk.client import traced

Run = Callable[[Any, str], Awaitable[Any]]
"""Performs the operation with the trace context what it writes carries."""


async def traced_call(
    record: Callable[[Entry], None],
    function: str,
    kind: str,
    resource: str,
    op: Any,
    traceparent: str,
    run: Run,
) -> Any:
    parent = parse_traceparent(traceparent)
    if parent is None or not parent.sampled:
        return await run(op, traceparent)
    span_id = new_span_id()
    own = format_traceparent(parent.trace_id, span_id, parent.flags & KNOWN_FLAGS)
    error_type = message = None
    start = time.time_ns()
    try:
        return await run(traced(op, own, replacing=traceparent), own)
    except Exception as error:
        error_type = type(error).__name__
        message = error.message if isinstance(error, NimbusError) else repr(error)
        raise
    finally:
        entries = getattr(op, "entries", None)
        record(
            CallEntry(
                parent.trace_id, parent.span_id, span_id, function, kind, resource,
                type(op).__struct_config__.tag, len(entries) if entries is not None else None,
                start, time.time_ns(), error_type, message,
            )
        )  # fmt: skip
