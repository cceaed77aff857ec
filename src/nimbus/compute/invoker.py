"""The invoker: run one invocation on the function's pool and leave a record of it."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from nimbus.compute.instance import InitError
from nimbus.compute.pool import Pool, PoolClosed
from nimbus.compute.protocol import ErrorInfo, HttpEvent, Invoke, Result
from nimbus.errors import NotFound, Throttled
from nimbus.ops.logs import LogSink
from nimbus.ops.store import InvocationRecord, Outcome, Store

OUTCOMES: dict[str, Outcome] = {
    "Handler": "error",
    "Timeout": "timeout",
    "OutOfMemory": "oom",
    "Crash": "crash",
    "Init": "init_error",
    "Throttled": "throttled",
}


@dataclass(slots=True)
class Invocation:
    record: InvocationRecord
    result: Result

    @property
    def error(self) -> ErrorInfo | None:
        return self.result.error


def new_request_id() -> str:
    return str(uuid.uuid4())


class Invoker:
    def __init__(self, pools: Mapping[str, Pool], store: Store, logs: LogSink) -> None:
        self._pools = pools
        self._store = store
        self._logs = logs

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
    ) -> Invocation:
        """Run once. With `wait`, queue for capacity; without, raise Throttled when saturated."""
        request_id = new_request_id()
        started_at = time.time()
        while True:
            pool = self.pool(function)
            try:
                lease = await pool.acquire(wait=wait)
                break
            except PoolClosed:
                continue  # the function was redeployed meanwhile: use its new pool
            except Throttled as error:
                result = Result(request_id, 0.0, 0, error=ErrorInfo("Throttled", "Throttled", error.message))
                self._finish(pool, request_id, trigger, started_at, result, False, 0.0, job_id)
                raise
            except InitError as error:
                result = Result(request_id, 0.0, 0, error=error.info)
                return self._finish(pool, request_id, trigger, started_at, result, True, 0.0, job_id)
        spec = pool.spec
        frame = Invoke(request_id, trigger, time.time() + spec.timeout, lease.cold, payload, http)
        try:
            result = await lease.instance.invoke(frame, spec.timeout)
        finally:
            pool.release(lease)
        init_ms = lease.instance.init_ms if lease.cold else 0.0
        return self._finish(pool, request_id, trigger, started_at, result, lease.cold, init_ms, job_id)

    def _finish(
        self,
        pool: Pool,
        request_id: str,
        trigger: str,
        started_at: float,
        result: Result,
        cold: bool,
        init_ms: float,
        job_id: str | None,
    ) -> Invocation:
        spec = pool.spec
        error = result.error
        record = InvocationRecord(
            id=request_id,
            function=spec.name,
            trigger=trigger,
            started_at=started_at,
            duration_ms=result.duration_ms,
            billed_ms=math.ceil(result.duration_ms) if error is None or error.kind != "Throttled" else 0,
            memory_mb=spec.memory_mb,
            peak_memory_mb=round(result.peak_memory_kb / 1024, 1),
            cold_start=cold,
            init_ms=init_ms,
            outcome="success" if error is None else OUTCOMES[error.kind],
            error=error,
            job_id=job_id,
        )
        self._store.record_invocation(record)
        if error is not None:
            self._logs.error(spec.name, request_id, error)
        return Invocation(record, result)
