"""Runs the nimbus controller inside the benchmark's own process: `nimbus up` minus HTTP.

The spec is loaded in this process (`nimbus up` loads it in a subprocess, which a benchmark
need not do); function code still runs only in instances forked from the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from common import APPS_DIR
from nimbus.compute.invoker import Invocation
from nimbus.compute.pool import Pool
from nimbus.controller import Controller
from nimbus.spec.loader import load_app

BENCH_APP = APPS_DIR / "bench_app.py"
CLOSE_LIMIT = 10.0  # seconds for stopped instances to exit


@contextlib.asynccontextmanager
async def running_controller(app: Path = BENCH_APP, **options: Any) -> AsyncIterator[Controller]:
    """A started controller with `app` deployed, its state in a temporary folder; `options`
    go to `Controller` (e.g. `metrics=False`)."""
    spec = load_app(str(app))
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as data_dir:
        controller = Controller(Path(data_dir), **options)
        await controller.start(spec)
        try:
            yield controller
        finally:
            await controller.stop()


async def invoke_ok(controller: Controller, function: str, payload: bytes = b"null") -> Invocation:
    """Invoke `function` directly (no HTTP) and fail loudly if the invocation failed."""
    invocation = await controller.invoker.invoke(function, trigger="invoke", payload=payload)
    if invocation.error is not None:
        error = invocation.error
        raise RuntimeError(f"{function} failed: {error.kind} {error.type}: {error.message}")
    return invocation


async def stop_idle_instances(pool: Pool) -> None:
    """Stop every idle instance of `pool` now and wait until their processes have exited."""
    instances = list(pool.instances)
    pool.reap_idle(math.inf)
    if not instances:
        return
    _, pending = await asyncio.wait([i.closed for i in instances], timeout=CLOSE_LIMIT)
    if pending:
        raise RuntimeError(f"{len(pending)} instance(s) still running {CLOSE_LIMIT:g} s after stop")


async def invocation_records(controller: Controller, function: str) -> int:
    """How many invocation records of `function` the store has committed."""
    controller.store.flush()  # records gather on the loop before they are written
    await controller.store.db.barrier()
    rows = await controller.store.db.read(
        "SELECT count(*) AS n FROM invocations WHERE function = ?", (function,)
    )
    return int(rows[0]["n"])
