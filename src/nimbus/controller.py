"""The controller: owns the pools, the invoker, the store and the deployed spec.

Function code never runs here. Applying a spec starts a new zygote when the code may have
changed, gives changed functions new pools, and drains the old ones in the background.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, TextIO

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.invoker import Invoker
from nimbus.compute.pool import Pool
from nimbus.compute.spawner import Zygote
from nimbus.edge.router import Router
from nimbus.ops.logs import LogSink
from nimbus.ops.store import Store
from nimbus.spec.model import AppSpec
from nimbus.spec.plan import Plan, make_plan

TICK = 0.5  # seconds between scale-to-zero / keep-warm passes
SPEC_KEY = "spec"
STOP_GRACE = 5.0  # seconds to let killed instances report before the store closes


class Controller:
    def __init__(self, data_dir: Path, *, echo: TextIO | None = None, fsync: bool = False) -> None:
        self.store = Store(data_dir, fsync=fsync)
        self.logs = LogSink(self.store, echo)
        self.pools: dict[str, Pool] = {}
        self.invoker = Invoker(self.pools, self.store, self.logs)
        self.jobs = AsyncInvoker(self.invoker, self.store)
        self.spec: AppSpec | None = None
        self.router = Router()
        self.max_body_bytes = AppSpec.model_fields["gateway"].default.max_body_bytes
        self._zygote: Zygote | None = None
        self._old_zygotes: dict[Zygote, list[Pool]] = {}
        self._apply_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, spec: AppSpec) -> None:
        """Deploy `spec`, resume unfinished async invocations, start scaling passes."""
        await self.apply(spec)
        await self.jobs.recover()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.jobs.stop()
        for task in list(self._tasks):
            task.cancel()
        pools = [*self.pools.values(), *(p for ps in self._old_zygotes.values() for p in ps)]
        closing = [instance.closed for pool in pools for instance in pool.instances]
        for zygote in [*self._old_zygotes, *([self._zygote] if self._zygote else [])]:
            zygote.close()  # its instances die with it
        if closing:
            await asyncio.wait(closing, timeout=STOP_GRACE)
        self.store.close()

    def plan(self, spec: AppSpec) -> Plan:
        return make_plan(self.spec, spec)

    async def apply(self, spec: AppSpec, *, code_changed: bool = False) -> Plan:
        """Make the running platform match `spec`. Applying the same spec twice changes nothing."""
        async with self._apply_lock:
            plan = make_plan(self.spec, spec)
            if plan.empty and not code_changed and self._zygote is not None:
                return plan
            old_zygote = self._zygote
            if code_changed or old_zygote is None or self._preload_changed(spec):
                self._zygote = await Zygote.start(spec.root, _preload_modules(spec))
            zygote = self._zygote
            assert zygote is not None
            retired: list[Pool] = []
            for name, function in spec.functions.items():
                current = self.pools.get(name)
                if current is None or current.spec != function or current.zygote is not zygote:
                    if current is not None:
                        retired.append(current)
                    self.pools[name] = Pool(function, spec.root, zygote, self.logs)
                    self.pools[name].ensure_minimum()
            for name in [n for n in self.pools if n not in spec.functions]:
                retired.append(self.pools.pop(name))
            self.spec = spec
            self.router = Router(spec)
            self.max_body_bytes = spec.gateway.max_body_bytes
            await self.store.put_state(SPEC_KEY, spec.model_dump_json().encode())
            if old_zygote is not None and old_zygote is not zygote:
                draining = [p for p in retired if p.zygote is old_zygote]
                if draining:
                    self._old_zygotes[old_zygote] = draining
                else:
                    old_zygote.close()
            for pool in retired:
                self._background(self._retire(pool))
            return plan

    def describe_functions(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "handler": pool.spec.handler,
                "triggers": [t.model_dump() for t in pool.spec.triggers],
                "instances": len(pool.instances),
                "busy": pool.busy_instances,
                "waiting": pool.waiting,
                "cold_starts": pool.cold_starts,
                "min_instances": pool.spec.min_instances,
                "max_instances": pool.spec.max_instances,
                "concurrency": pool.spec.concurrency,
                "timeout": pool.spec.timeout,
                "memory_mb": pool.spec.memory_mb,
                "keep_alive": pool.spec.keep_alive,
            }
            for name, pool in sorted(self.pools.items())
        ]

    def _preload_changed(self, spec: AppSpec) -> bool:
        return (
            self.spec is None
            or _preload_modules(self.spec) != _preload_modules(spec)
            or (self.spec.root != spec.root)
        )

    async def _retire(self, pool: Pool) -> None:
        await pool.drain()
        zygote = pool.zygote
        remaining = self._old_zygotes.get(zygote)
        if remaining is not None:
            if pool in remaining:
                remaining.remove(pool)
            if not remaining:
                del self._old_zygotes[zygote]
                zygote.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for pool in list(self.pools.values()):
                pool.reap_idle(now)
                pool.ensure_minimum()

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _preload_modules(spec: AppSpec) -> list[str]:
    modules = {f.handler.partition(":")[0] for f in spec.functions.values() if f.preload}
    return sorted(modules)
