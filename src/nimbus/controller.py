"""The controller: owns the pools, the invoker, the store and the deployed spec.

Function code never runs here. Applying a spec starts a new zygote when the code may have
changed, gives changed functions new pools, and drains the old ones in the background. A zygote
is closed once no pool uses it any more; one that dies unexpectedly is replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO

from nimbus.backends.embedded import open_services
from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.failures import Destinations, FailureRouter
from nimbus.compute.instance import Host
from nimbus.compute.invoker import Invoker
from nimbus.compute.pool import Pool
from nimbus.compute.service_calls import ServiceCalls
from nimbus.compute.spawner import Zygote
from nimbus.edge.router import Router
from nimbus.errors import NimbusError
from nimbus.ops.dead_letters import DeadLetters
from nimbus.ops.logs import LogSink
from nimbus.ops.store import Store
from nimbus.spec.model import AppSpec
from nimbus.spec.plan import Plan, make_plan
from nimbus.triggers.base import Platform
from nimbus.triggers.supervisor import Triggers

TICK = 0.5  # seconds between scale-to-zero / keep-warm passes
STOP_GRACE = 10.0  # seconds running async invocations get to finish at shutdown
RECOVERY_DELAY_LIMIT = 30.0  # longest pause between attempts to replace a dead zygote


class Controller:
    def __init__(self, data_dir: Path, *, echo: TextIO | None = None, fsync: bool = False) -> None:
        self.store = Store(data_dir, fsync=fsync)
        self.logs = LogSink(self.store, echo)
        self.services = open_services(data_dir, fsync=fsync)
        self.pools: dict[str, Pool] = {}
        self.invoker = Invoker(self.pools, self.store, self.logs)
        self.jobs = AsyncInvoker(self.invoker, self.store, self.logs)
        destinations = Destinations(self.services, self._current_spec, self.jobs.submit)
        self.failures = FailureRouter(destinations, self.store, self.logs)
        self.jobs.failures = self.failures
        self._host = Host(self.logs, ServiceCalls(self.services, self._current_spec, self.logs))
        self.triggers = Triggers(
            Platform(
                self.invoker, self.jobs, self.services, self.store, self.logs,
                self.failures, self._current_spec,
            )
        )  # fmt: skip
        self.dead_letters = DeadLetters(
            self.store, self.jobs, self.services.queues, self._queue_names, self._dead_letter_queues
        )
        self.spec: AppSpec | None = None
        self.router = Router()
        self.max_body_bytes = AppSpec.model_fields["gateway"].default.max_body_bytes
        self._zygote: Zygote | None = None
        self._pools_of: dict[Zygote, set[Pool]] = {}  # live and draining pools of each zygote
        self._apply_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, spec: AppSpec) -> None:
        """Deploy `spec`, resume unfinished async invocations, start scaling passes."""
        await self.apply(spec)
        await self.jobs.recover()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        await self.triggers.stop(STOP_GRACE)
        await self.jobs.stop(STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        closing = [
            i.closed for pools in self._pools_of.values() for p in pools for i in p.instances
        ]
        for zygote in list(self._pools_of):
            zygote.close()  # its instances die with it
        if closing:
            await asyncio.wait(closing, timeout=5.0)
        await self.services.close()
        self.store.close()

    def plan(self, spec: AppSpec) -> Plan:
        return make_plan(self.spec, spec)

    async def apply(self, spec: AppSpec, *, code_changed: bool = False) -> Plan:
        """Make the running platform match `spec`. Applying the same spec twice changes nothing."""
        async with self._apply_lock:
            plan = make_plan(self.spec, spec)
            current = self._zygote
            fresh = code_changed or current is None or current.closed or self._preload_changed(spec)
            if plan.empty and not fresh:
                return plan
            await self.triggers.create_resources(spec, self.spec)
            zygote = await self._new_zygote(spec) if fresh else current
            assert zygote is not None
            retired: list[Pool] = []
            for name, function in spec.functions.items():
                pool = self.pools.get(name)
                if pool is None or pool.spec != function or pool.zygote is not zygote:
                    if pool is not None:
                        retired.append(pool)
                    self.pools[name] = Pool(function, spec.root, zygote, self._host)
                    self._pools_of[zygote].add(self.pools[name])
                    self.pools[name].ensure_minimum()
            retired += [
                self.pools.pop(name) for name in list(self.pools) if name not in spec.functions
            ]
            self.spec = spec
            self.router = Router(spec)
            self.max_body_bytes = spec.gateway.max_body_bytes
            for pool in retired:
                self._background(self._retire(pool))
            self._close_unused_zygotes()
            await self.triggers.reconcile(spec)
            return plan

    def _current_spec(self) -> AppSpec | None:
        return self.spec

    def _queue_names(self) -> list[str]:
        return list(self.spec.queues) if self.spec else []

    def _dead_letter_queues(self) -> set[str]:
        queues = self.spec.queues.values() if self.spec else ()
        return {q.dead_letter for q in queues if q.dead_letter is not None}

    def describe_functions(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "handler": pool.spec.handler,
                "triggers": [t.model_dump(mode="json") for t in pool.spec.triggers],
                "trigger_labels": [t.label for t in pool.spec.triggers],
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

    async def _new_zygote(self, spec: AppSpec) -> Zygote:
        zygote = await Zygote.start(spec.root, _preload_modules(spec), on_exit=self._zygote_died)
        self._pools_of[zygote] = set()
        self._zygote = zygote
        return zygote

    def _preload_changed(self, spec: AppSpec) -> bool:
        return (
            self.spec is None
            or _preload_modules(self.spec) != _preload_modules(spec)
            or (self.spec.root != spec.root)
        )

    async def _retire(self, pool: Pool) -> None:
        await pool.drain()
        self._pools_of.get(pool.zygote, set()).discard(pool)
        self._close_unused_zygotes()

    def _close_unused_zygotes(self) -> None:
        for zygote, pools in list(self._pools_of.items()):
            if not pools and zygote is not self._zygote:
                del self._pools_of[zygote]
                zygote.close()

    def _zygote_died(self, zygote: Zygote) -> None:
        if zygote is self._zygote and not self._stopping:
            self.logs.platform(f"the zygote (pid {zygote.process.pid}) died; replacing it")
            self._background(self._recover())

    async def _recover(self) -> None:
        """Bring every function back on a new zygote, retrying with backoff until it works."""
        delay = 0.5
        while not self._stopping and self.spec is not None:
            try:
                await self.apply(self.spec, code_changed=True)
                self.logs.platform("the zygote was replaced; every function runs again", "INFO")
                return
            except NimbusError as error:
                self.logs.platform(f"cannot replace the zygote: {error.message}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECOVERY_DELAY_LIMIT)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for pool in list(self.pools.values()):
                pool.reap_idle(now)
                pool.ensure_minimum()
            self.triggers.maintain()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _preload_modules(spec: AppSpec) -> list[str]:
    modules = {f.handler.partition(":")[0] for f in spec.functions.values() if f.preload}
    return sorted(modules)
