"""Export to an OpenTelemetry collector over OTLP/HTTP (protobuf), with the SDK's own
BatchSpanProcessor: it queues spans and posts them in batches from its thread, retrying with
backoff, and drops what does not fit its queue rather than slowing the platform down.

Imported only when export is configured: the rest of nimbus never loads OpenTelemetry.
The exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout,
compression, certificates), the processor `OTEL_BSP_*` and the resource `OTEL_SERVICE_NAME`
and `OTEL_RESOURCE_ATTRIBUTES`, as the OpenTelemetry SDK documents them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from nimbus.ops.tracing.expand import spans_of
from nimbus.ops.tracing.spans import Entry, Span

KINDS = {
    "server": SpanKind.SERVER, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL,
}  # fmt: skip
STATUS = {"error": StatusCode.ERROR, "unset": StatusCode.UNSET}
SCOPE = InstrumentationScope("nimbus")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
SHUTDOWN_LIMIT = 10.0  # seconds the last spans get to leave at shutdown


class OtlpExport:
    def __init__(self, endpoint: str | None, service_name: str) -> None:
        """`endpoint`: the traces URL; None: from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
        OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces."""
        named = "OTEL_SERVICE_NAME" in os.environ  # else the app's name, not `unknown_service`
        self._resource = Resource.create({} if named else {"service.name": service_name})
        self._processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))

    def export(self, entries: Sequence[Entry]) -> None:
        for span in spans_of(entries):
            self._processor.on_end(self._readable(span))

    async def close(self) -> None:
        """Send what is queued; a collector that does not answer is not waited for long."""
        flushing = asyncio.ensure_future(asyncio.to_thread(self._processor.shutdown))
        await asyncio.wait([flushing], timeout=SHUTDOWN_LIMIT)

    def _readable(self, span: Span) -> ReadableSpan:
        trace_id = int(span.trace_id, 16)
        parent = None if span.parent_id is None else _context(trace_id, span.parent_id)
        attributes = span.attributes
        if span.function is not None:
            attributes = {"faas.name": span.function, **attributes}
        return ReadableSpan(
            span.name,
            context=_context(trace_id, span.span_id),
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            kind=KINDS[span.kind],
            status=Status(STATUS[span.status], span.message),
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=SCOPE,
            links=[Link(_context(int(trace, 16), linked)) for trace, linked in span.links],
        )


def _context(trace_id: int, span_id: str) -> SpanContext:
    """Every span recorded or linked to is sampled: unsampled traces are not recorded at all."""
    return SpanContext(trace_id, int(span_id, 16), is_remote=False, trace_flags=SAMPLED)
