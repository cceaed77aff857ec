"""What tracing keeps: compact entries made on the hot path, and the spans they stand for.

An invocation leaves one `InvocationEntry` and a service call one `CallEntry`: a few fields
copied from what the invoker already has, no names, no attributes. They are stored as they are
and expanded into OpenTelemetry-shaped `Span`s (ids as lower-case hex, times in ns since the
epoch, kind, status, attributes) only when someone reads them or they are exported, so an
invocation costs the platform a struct, not four spans.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SpanKind = Literal["server", "client", "producer", "consumer", "internal"]
Status = Literal["unset", "error"]
Attributes = dict[str, str | int | float | bool]
Links = tuple[tuple[str, str], ...]
"""Span links: the (trace id, span id) of each context a span links to."""


class Span(msgspec.Struct, frozen=True, kw_only=True):
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    function: str | None = None
    """The function it belongs to (the invoked one, or the one making a service call)."""
    status: Status = "unset"
    message: str | None = None
    """Why it failed, with status error."""
    attributes: Attributes = {}
    links: Links = ()
    """Other spans it is causally related to: a batch's delivery links to each record's."""


class InvocationEntry(msgspec.Struct, array_like=True, frozen=True, tag="invocation"):
    """One invocation: its trigger delivery, the invocation, its cold start and its handler."""

    trace_id: str
    parent_id: str | None
    """The cause's span (the span that wrote the event, or an HTTP caller's), if any."""
    span_base: int
    """Its spans' ids are this with the two lowest bits 0 (delivery) to 3 (cold start)."""
    start_ns: int
    dispatched_ns: int
    """When the invocation was sent to its instance; 0 if it never was (throttled, init)."""
    end_ns: int
    function: str
    handler: str
    trigger: str
    request_id: str
    cold: bool
    init_ms: float
    duration_ms: float
    billed_ms: int
    memory_mb: int
    peak_memory_mb: float
    outcome: str
    error_kind: str | None
    error: str | None
    """`type: message` of the failure."""
    error_type: str | None
    http: tuple[str, str, str, int] | None
    """method, path, route and the status answered, for an HTTP request."""
    links: Links = ()
    """The contexts of the batch's other records, which its delivery span links to (last, with
    a default, so that entries stored before it existed still decode)."""


class CallEntry(msgspec.Struct, array_like=True, frozen=True, tag="call"):
    """One SDK service call of a function."""

    trace_id: str
    parent_id: str
    span_id: str
    function: str
    kind: str
    """The resource's kind: queue, topic, stream, table, bucket, websocket."""
    resource: str
    operation: str
    """The operation's tag, e.g. `queue.send`."""
    entries: int | None
    """How many entries a batch operation carried."""
    start_ns: int
    end_ns: int
    error_type: str | None
    error: str | None


Entry = InvocationEntry | CallEntry
