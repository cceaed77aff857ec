"""The spans an entry stands for, made when they are read or exported:

    trigger delivery (SERVER / CONSUMER)        from the invoker's call to its result; a
                                                batch's links to its other records' contexts
    └── invocation (named after the function)   from the instance's start (cold) or dispatch
        ├── cold start                          the instance's init time, when it was cold
        └── handler                             the duration the worker measured
            └── service call                    one CallEntry each

The handler span is placed from the worker's own `duration_ms`, ending when its result was
taken; a service call of it that started earlier moves its start back (the event loop may
have taken the result late), so that a span never starts before its parent.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from nimbus.ops.tracing.invocations import COLD_START, DELIVERY, HANDLER, INVOCATION, span_id
from nimbus.ops.tracing.semconv import service_call_span, trigger_span
from nimbus.ops.tracing.spans import (
    CallEntry,
    Entry,
    InvocationEntry,
    Links,
    Span,
    SpanKind,
    Status,
)


def spans_of(entries: Iterable[Entry]) -> list[Span]:
    """The spans of `entries` (a trace's, or a batch of them)."""
    spans: list[Span] = []
    first_call: dict[str, int] = {}  # by the calling handler span's id
    for entry in entries:
        if isinstance(entry, CallEntry):
            spans.append(call_span(entry))
            known = first_call.get(entry.parent_id, entry.start_ns)
            first_call[entry.parent_id] = min(known, entry.start_ns)
        else:
            spans += invocation_spans(entry)
    return [
        msgspec.structs.replace(span, start_ns=first_call[span.span_id])
        if span.span_id in first_call and first_call[span.span_id] < span.start_ns
        else span
        for span in spans
    ]


def call_span(entry: CallEntry) -> Span:
    name, kind, attributes = service_call_span(
        entry.kind, entry.resource, entry.operation, entry.entries
    )
    if entry.error_type is not None:
        attributes["error.type"] = entry.error_type
    return Span(
        trace_id=entry.trace_id, span_id=entry.span_id, parent_id=entry.parent_id, name=name,
        kind=kind, start_ns=entry.start_ns, end_ns=entry.end_ns, function=entry.function,
        status="unset" if entry.error is None else "error", message=entry.error,
        attributes=attributes,
    )  # fmt: skip


def invocation_spans(entry: InvocationEntry) -> list[Span]:
    ids = [span_id(entry.span_base, offset) for offset in range(4)]
    failed: Status = "unset" if entry.error is None else "error"
    end, dispatched = entry.end_ns, entry.dispatched_ns or entry.start_ns
    name, kind, attributes = trigger_span(entry.trigger, entry.function, entry.http)
    status = failed
    if entry.http is not None:  # an HTTP server span fails on 5xx only
        status = "error" if entry.http[3] >= 500 else "unset"
    init_ns = int(entry.init_ms * 1e6)
    began = dispatched - init_ns if entry.cold and entry.dispatched_ns else dispatched
    invocation: dict[str, str | int | float | bool] = {
        "faas.trigger": attributes["faas.trigger"], "faas.invocation_id": entry.request_id,
        "faas.coldstart": entry.cold, "nimbus.outcome": entry.outcome,
        "nimbus.billed_ms": entry.billed_ms, "nimbus.memory_mb": entry.memory_mb,
        "nimbus.peak_memory_mb": round(entry.peak_memory_mb, 3),
    }  # fmt: skip
    if entry.error_type is not None:
        invocation["error.type"] = entry.error_type

    def span(
        offset: int, parent: str | None, name: str, kind: SpanKind, start: int, end: int,
        attributes: dict[str, str | int | float | bool], status: Status, links: Links = (),
    ) -> Span:  # fmt: skip
        return Span(
            trace_id=entry.trace_id, span_id=ids[offset], parent_id=parent, name=name,
            kind=kind, start_ns=start, end_ns=end, function=entry.function, status=status,
            message=entry.error if status == "error" else None, attributes=attributes,
            links=links,
        )  # fmt: skip

    spans = [
        span(DELIVERY, entry.parent_id, name, kind, entry.start_ns, end, attributes, status,
             entry.links),
        span(INVOCATION, ids[DELIVERY], entry.function, "internal", began, end, invocation,
             failed),
    ]  # fmt: skip
    if entry.cold:
        init_failed: Status = "error" if entry.error_kind == "Init" else "unset"
        spans.append(
            span(COLD_START, ids[INVOCATION], "cold start", "internal", began,
                 dispatched if entry.dispatched_ns else end,
                 {"faas.coldstart": True, "nimbus.init_ms": round(entry.init_ms, 3)},
                 init_failed)
        )  # fmt: skip
    if entry.dispatched_ns:
        started = max(dispatched, end - int(entry.duration_ms * 1e6))
        spans.append(
            span(HANDLER, ids[INVOCATION], "handler", "internal", started, end,
                 {"code.function.name": entry.handler}, failed)
        )  # fmt: skip
    return spans
