"""An invocation's part of its trace, taken by the invoker on the hot path: which trace and
parent it continues, when it started, was dispatched and ended, and the handler span's id,
which is sent to the worker as its trace context so that the service calls the handler makes,
and the events they write, hang under it. Nothing runs in the worker for this.

A batch (queue messages, stream records, table changes) continues the trace of one record and
links to the contexts of the others, as OpenTelemetry's messaging conventions model a batch's
"process" span, so that each record's trace can show the invocation that processed it.

It ends as one `InvocationEntry`; `expand.py` makes its spans when they are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from nimbus.compute.protocol import HttpEvent, Result
from nimbus.events.trace import KNOWN_FLAGS, TraceParent, format_traceparent, random_bits
from nimbus.events.trace import parse as parse_traceparent
from nimbus.ops.store import InvocationRecord
from nimbus.ops.tracing.sampler import Sampler
from nimbus.ops.tracing.spans import Entry, InvocationEntry, Links
from nimbus.spec.model import FunctionSpec

NEW_TRACE_FLAGS = 0x03  # sampled, random trace id (W3C Trace Context level 2)
DELIVERY, INVOCATION, HANDLER, COLD_START = range(4)
"""Each span's offset from the invocation's `span_base`."""
BASE_MASK = (1 << 64) - 4
GATEWAY_STATUS = {"Timeout": 504, "Throttled": 429}  # else 502: what the gateway answers
MAX_LINKS = 128
"""Links one delivery keeps at most: OpenTelemetry's default span link limit."""


def begin(
    record: Callable[[Entry], None],
    sampler: Sampler,
    trigger: str,
    traceparent: str | None,
    http: HttpEvent | None,
    links: Sequence[str] = (),
) -> InvocationSpans | None:
    """The spans of an invocation starting now, continuing `traceparent` (or an HTTP request's
    `traceparent` header); a new trace without one, if `sampler` picks it. None when the trace
    is not sampled: as OpenTelemetry's parent-based sampling, a caller's trace that is not
    sampled is not recorded either. `links`: the contexts of a batch's records, the one it
    continues among them, which its delivery links to (see `links_of`)."""
    if traceparent is None and http is not None:
        traceparent = _header(http, b"traceparent")
    parent = parse_traceparent(traceparent)
    if parent is None:
        if not sampler.sample():
            return None
        bits = random_bits(192)  # a new trace id and the span ids' base, in one draw
        trace_id, parent_id, flags = f"{bits >> 64 or 1:032x}", None, NEW_TRACE_FLAGS
    elif not parent.sampled:
        return None
    else:
        trace_id, parent_id, flags = parent.trace_id, parent.span_id, parent.flags & KNOWN_FLAGS
        bits = random_bits(64)
    linked = links_of(parent, links) if len(links) > 1 else ()  # one: the parent itself
    return InvocationSpans(record, trigger, http, trace_id, parent_id, bits, flags, linked)


def links_of(parent: TraceParent | None, traceparents: Iterable[str]) -> Links:
    """What a batch's delivery links to: each valid, sampled context among `traceparents` (its
    records'), once, but the one it continues (`parent`), the first MAX_LINKS. A context that
    is not sampled is left out, as its trace is not recorded anywhere."""
    own = None if parent is None else (parent.trace_id, parent.span_id)
    found: dict[tuple[str, str], None] = {}
    for traceparent in traceparents:
        context = parse_traceparent(traceparent)
        if context is None or not context.sampled:
            continue
        pair = (context.trace_id, context.span_id)
        if pair != own:
            found[pair] = None
            if len(found) == MAX_LINKS:
                break
    return tuple(found)


class InvocationSpans:
    __slots__ = (
        "_base", "_dispatched_ns", "_flags", "_http", "_links", "_parent_id", "_record",
        "_started_ns", "_trigger", "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        record: Callable[[Entry], None],
        trigger: str,
        http: HttpEvent | None,
        trace_id: str,
        parent_id: str | None,
        bits: int,
        flags: int,
        links: Links = (),
    ) -> None:
        self._record = record
        self._trigger = trigger
        self._http = http
        self.trace_id = trace_id
        self._parent_id = parent_id
        self._flags = flags
        self._started_ns = time.time_ns()
        self._base = bits & BASE_MASK or 4  # 64 random bits, the two lowest for the offset
        self._dispatched_ns = 0
        self._links = links

    def dispatched(self) -> str:
        """The invocation goes to its instance now: the handler span's trace context, which
        the worker uses as its own."""
        self._dispatched_ns = time.time_ns()
        return format_traceparent(self.trace_id, f"{self._base | HANDLER:016x}", self._flags)

    def context(self) -> str:
        """The invocation span's trace context: the parent of what the platform does because
        of the invocation once it has ended (its on-success or on-failure destination)."""
        return format_traceparent(self.trace_id, span_id(self._base, INVOCATION), self._flags)

    def finish(self, spec: FunctionSpec, record: InvocationRecord, result: Result) -> None:
        error, http = result.error, self._http
        answered = None
        if http is not None and self._trigger == "http":
            status = result.http.status if result.http is not None and error is None else 502
            status = GATEWAY_STATUS.get(error.kind, status) if error is not None else status
            answered = (http.method, http.path, http.route, status)
        self._record(
            InvocationEntry(
                self.trace_id, self._parent_id, self._base, self._started_ns,
                self._dispatched_ns, time.time_ns(), spec.name,
                spec.handler, self._trigger, record.id, record.cold_start, record.init_ms,
                result.duration_ms, record.billed_ms, record.memory_mb, record.peak_memory_mb,
                record.outcome, None if error is None else error.kind,
                None if error is None else f"{error.type}: {error.message}",
                None if error is None else error.type, answered, self._links,
            )
        )  # fmt: skip


def span_id(base: int, offset: int) -> str:
    return f"{base | offset:016x}"


def _header(http: HttpEvent, name: bytes) -> str | None:
    for key, value in http.headers:
        if key == name:
            return value.decode("latin-1")
    return None
