"""The invoker: run one invocation on the function's pool and leave a record of it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nimbus.compute.instance import InitError
from nimbus.compute.pool import Pool, PoolClosed
from nimbus.compute.protocol import ErrorInfo, HttpEvent, Invoke, Result
from nimbus.errors import NimbusError, NotFound, Throttled
from nimbus.events.trace import new_traceparent
from nimbus.events.trace import parse as parse_traceparent
from nimbus.ids import new_id
from nimbus.ops.logs import LogSink
from nimbus.ops.store import InvocationRecord, Outcome, Store

if TYPE_CHECKING:
    from nimbus.ops.tracing.invocations import InvocationSpans
    from nimbus.ops.tracing.tracer import Tracer
    from nimbus.ops.usage.budgets import Budgets
    from nimbus.ops.usage.meter import UsageMeter

OUTCOMES: dict[str, Outcome] = {
    "Handler": "error",
    "Timeout": "timeout",
    "OutOfMemory": "oom",
    "Crash": "crash",
    "Init": "init_error",
    "Throttled": "throttled",
}


class EventExpired(NimbusError):
    """An asynchronous event outlived its max_event_age before it could run."""


@dataclass(slots=True)
class Invocation:
    record: InvocationRecord
    result: Result
    spans: InvocationSpans | None = None
    """Its part of its trace, when that is recorded."""
    cause: str | None = None
    """The trace context it continued."""
    unsampled: bool = False
    """Tracing is on and left its trace out."""

    @property
    def error(self) -> ErrorInfo | None:
        return self.result.error

    @property
    def traceparent(self) -> str | None:
        """The trace context of what the platform does because of it after its result (its
        on-success or on-failure destination): its invocation span's, when recorded; else the
        context it continued, or a new one left out as its trace was (None: tracing is off and
        it continued none). Made only when asked for: most invocations have no destination."""
        if self.spans is not None:
            return self.spans.context()
        if parse_traceparent(self.cause) is not None:
            return self.cause
        return new_traceparent(sampled=False) if self.unsampled else None


class Invoker:
    def __init__(self, pools: Mapping[str, Pool], store: Store, logs: LogSink) -> None:
        self._pools = pools
        self._store = store
        self._logs = logs
        self.on_failure: Callable[[InvocationRecord], None] | None = None  # throttles too
        self.tracer: Tracer | None = None  # None: tracing is off
        self.on_record: Callable[[InvocationRecord], None] | None = None  # metrics
        self.usage: UsageMeter | None = None  # None: metering is off
        self.budgets: Budgets | None = None  # closes functions over a budget

    def pool(self, function: str) -> Pool:
        pool = self._pools.get(function)
        if pool is None:
            raise NotFound(f"no function named {function!r}")
        return pool

    async def invoke(
        self,
        function: str,
        *,
        trigger: str,
        payload: bytes = b"null",
        http: HttpEvent | None = None,
        wait: bool = False,
        job_id: str | None = None,
        expires_at: float | None = None,
        traceparent: str | None = None,
        links: Sequence[str] = (),
    ) -> Invocation:
        """Run once. With `wait`, queue for capacity; without, raise Throttled when saturated.
        An event still waiting at `expires_at` is not run: EventExpired. `traceparent`: the
        context it continues; `links`: a batch's record contexts, which its trace links to."""
        budgets = self.budgets
        if budgets is not None and function in budgets.closed:
            await budgets.admit(function, wait=wait, expires_at=expires_at)
        attempt = _Attempt(new_id(), trigger, time.time(), job_id, traceparent)
        if self.tracer is not None:
            attempt.spans = self.tracer.invocation(trigger, traceparent, http, links)
        while True:
            pool = self.pool(function)
            try:
                lease = await pool.acquire(wait=wait)
                break
            except PoolClosed:
                continue  # the function was redeployed meanwhile: use its new pool
            except Throttled as error:
                info = ErrorInfo("Throttled", "Throttled", error.message)
                self._finish(pool, attempt, Result(attempt.request_id, 0.0, 0, error=info))
                raise
            except InitError as error:
                attempt.cold = True
                result = Result(attempt.request_id, 0.0, 0, error=error.info)
                return self._finish(pool, attempt, result)
        if expires_at is not None and time.time() > expires_at:
            pool.release(lease)
            raise EventExpired(f"the event expired while it waited for {function!r}")
        spec = pool.spec
        attempt.cold = lease.cold
        attempt.init_ms = lease.instance.init_ms if lease.cold else 0.0
        spans = attempt.spans
        if spans is not None:
            traceparent = spans.dispatched()  # the handler span's: the worker takes it as is
        frame = Invoke(
            attempt.request_id, trigger, time.time() + spec.timeout, lease.cold, payload, http,
            traceparent, spans is not None, spans is None and self.tracer is not None,
        )  # fmt: skip
        running = lease.instance.invoke(frame, spec.timeout)
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            # the caller went away (a trigger stopped); the call runs on: its slot is taken
            # until it ends, or the instance would be handed work while still busy
            running.add_done_callback(lambda _: pool.release(lease))
            raise
        pool.release(lease)
        return self._finish(pool, attempt, result)

    def _finish(self, pool: Pool, attempt: _Attempt, result: Result) -> Invocation:
        spec = pool.spec
        error = result.error
        record = InvocationRecord(
            id=attempt.request_id,
            function=spec.name,
            trigger=attempt.trigger,
            started_at=attempt.started_at,
            duration_ms=result.duration_ms,
            billed_ms=math.ceil(result.duration_ms),
            memory_mb=spec.memory_mb,
            peak_memory_mb=result.peak_memory_kb / 1024,
            cold_start=attempt.cold,
            init_ms=attempt.init_ms,
            outcome="success" if error is None else OUTCOMES[error.kind],
            error=error,
            job_id=attempt.job_id,
            trace_id=attempt.spans.trace_id if attempt.spans is not None else None,
        )
        self._store.record_invocation(record)
        if self.on_record is not None:
            self.on_record(record)
        if self.usage is not None:
            self.usage.invocation(record)
        if attempt.spans is not None:
            attempt.spans.finish(spec, record, result)
        if error is not None:
            self._logs.error(spec.name, attempt.request_id, error)
            if self.on_failure is not None:
                self.on_failure(record)
        unsampled = attempt.spans is None and self.tracer is not None
        return Invocation(record, result, attempt.spans, attempt.cause, unsampled)


@dataclass(slots=True)
class _Attempt:
    request_id: str
    trigger: str
    started_at: float
    job_id: str | None
    cause: str | None
    """The trace context it continues."""
    cold: bool = False
    init_ms: float = 0.0
    spans: InvocationSpans | None = None
