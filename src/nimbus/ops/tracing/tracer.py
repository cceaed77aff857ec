"""The controller's tracer: takes an entry per invocation and service call, gathers them on
the event loop for a moment and hands them on in batches, to traces.db's writer thread and,
when configured, to the OTLP exporter's thread. The hot path only appends to a list."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nimbus.compute.protocol import HttpEvent
from nimbus.ops.tracing.config import TracingConfig
from nimbus.ops.tracing.invocations import InvocationSpans, begin
from nimbus.ops.tracing.sampler import Sampler
from nimbus.ops.tracing.service_spans import Run, traced_call
from nimbus.ops.tracing.spans import Entry
from nimbus.ops.tracing.store import TraceStore

if TYPE_CHECKING:
    from nimbus.ops.tracing.otlp import OtlpExport

FLUSH_DELAY = 0.05  # seconds spans gather on the loop before they are handed on together


class Tracer:
    def __init__(self, data_dir: Path, config: TracingConfig, *, fsync: bool = False) -> None:
        self.store = TraceStore(data_dir, keep=config.keep, fsync=fsync)
        self._config = config
        self._sampler = Sampler(config.per_second, config.ratio)
        self._export: OtlpExport | None = None
        self._pending: list[Entry] = []
        self._flush_scheduled = False

    def start(self, service_name: str) -> None:
        """Start exporting, if configured, as OpenTelemetry service `service_name` (the app)."""
        if self._config.export and self._export is None:
            from nimbus.ops.tracing.otlp import OtlpExport

            self._export = OtlpExport(self._config.endpoint, service_name)

    def invocation(
        self, trigger: str, traceparent: str | None, http: HttpEvent | None, links: Sequence[str]
    ) -> InvocationSpans | None:
        """The spans of an invocation starting now (None: its trace is not sampled); `links`:
        a batch's record contexts, which its delivery links to."""
        return begin(self.record, self._sampler, trigger, traceparent, http, links)

    async def service_call(
        self, function: str, kind: str, resource: str, op: Any, traceparent: str, run: Run
    ) -> Any:
        """Run a function's service call (`run(op, traceparent)`) inside a span of its own."""
        return await traced_call(self.record, function, kind, resource, op, traceparent, run)

    def record(self, entry: Entry) -> None:
        self._pending.append(entry)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        entries, self._pending = self._pending, []
        if not entries:
            return
        self.store.export(entries)
        if self._export is not None:
            self._export.export(entries)

    async def caught_up(self) -> None:
        """Make every entry recorded so far visible to the next read."""
        self.flush()
        await self.store.db.barrier()

    async def close(self) -> None:
        self.flush()
        if self._export is not None:
            await self._export.close()
        self.store.close()
