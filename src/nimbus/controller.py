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
from nimbus.backends.embedded.sizes import EmbeddedSizes
from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.failures import Destinations, FailureRouter
from nimbus.compute.instance import Host
from nimbus.compute.invoker import Invoker
from nimbus.compute.pool import Pool
from nimbus.compute.service_calls import ServiceCalls
from nimbus.compute.spawner import Zygote
from nimbus.edge.mqtt import MqttBridges
from nimbus.edge.router import Router
from nimbus.edge.webhooks import Webhooks
from nimbus.errors import NimbusError, NotFound
from nimbus.ops.config import DEFAULT_OPS, OpsConfig
from nimbus.ops.control import Control
from nimbus.ops.dead_letters import DeadLetters
from nimbus.ops.log_retention import LogRetention
from nimbus.ops.logs import LogSink
from nimbus.ops.metrics.exposition import Metrics
from nimbus.ops.platform_events import PlatformEvents
from nimbus.ops.runtime_settings import RuntimeSettings, Setting
from nimbus.ops.store import Store
from nimbus.ops.tracing.config import DEFAULT_TRACING, TracingConfig
from nimbus.ops.tracing.tracer import Tracer
from nimbus.ops.usage.service import Usage
from nimbus.spec.model import AppSpec
from nimbus.spec.plan import Plan, make_plan
from nimbus.triggers.base import Platform
from nimbus.triggers.mqtt import MqttDelivery
from nimbus.triggers.supervisor import Triggers

TICK = 0.5  # seconds between scale-to-zero / keep-warm passes
STOP_GRACE = 10.0  # seconds running async invocations get to finish at shutdown
RECOVERY_DELAY_LIMIT = 30.0  # longest pause between attempts to replace a dead zygote
EVENTS_GRACE = 2.0  # seconds platform events still waiting get to be published at shutdown


class Controller:
    def __init__(
        self,
        data_dir: Path,
        *,
        echo: TextIO | None = None,
        fsync: bool = False,
        tracing: TracingConfig = DEFAULT_TRACING,
        metrics: bool = True,
        ops: OpsConfig = DEFAULT_OPS,
    ) -> None:
        self.store = Store(data_dir, fsync=fsync)
        self.logs = LogSink(self.store, echo)
        self.services = open_services(data_dir, fsync=fsync)
        self.pools: dict[str, Pool] = {}
        self.events = PlatformEvents(
            self.services.topics, self.store.db, self._current_spec, self.logs
        )
        self.services.queues.on_dead_letter(self.events.queue_dead_lettered)
        self.settings = RuntimeSettings(self.store.db)
        self.invoker = Invoker(self.pools, self.store, self.logs)
        self.tracer = Tracer(data_dir, tracing, fsync=fsync) if tracing.enabled else None
        self.invoker.tracer = self.tracer
        self.invoker.on_failure = self.events.invocation_failed
        self.jobs = AsyncInvoker(self.invoker, self.store, self.logs)
        destinations = Destinations(self.services, self._current_spec, self.jobs.submit)
        self.failures = FailureRouter(
            destinations, self.store, self.logs, self.events.dead_lettered
        )
        self.jobs.failures = self.failures
        self.webhooks = Webhooks(data_dir, self.jobs, self.store, self.logs, fsync=fsync)
        self.mqtt = MqttBridges(MqttDelivery(self.jobs, self.logs), self.store, self.logs)
        calls = ServiceCalls(
            self.services, self._current_spec, self.logs, progress=self.webhooks.perform,
            mqtt_brokers=self.mqtt,
        )  # fmt: skip
        self._host = Host(self.logs, calls)
        calls.tracer = self.tracer
        self.usage = Usage(
            data_dir, self.store.db, EmbeddedSizes(data_dir), ops, self._current_spec, self.logs,
            self.events,
        )  # fmt: skip
        calls.usage = self.invoker.usage = self.usage.meter
        self.invoker.budgets = self.usage.budgets if ops.metering else None
        self.log_retention = LogRetention(self.store, ops.log_limit, self.logs)
        calls.control = Control(
            self.settings, self._declared_spec, self._current_spec, self._redeploy
        )
        self.triggers = Triggers(
            Platform(
                self.invoker, self.jobs, self.services, self.store, self.logs,
                self.failures, self._current_spec, self.events,
            )
        )  # fmt: skip
        self.dead_letters = DeadLetters(
            self.store, self.jobs, self.services.queues, self._current_spec
        )
        self.metrics = Metrics(self) if metrics else None  # None: nimbus up --no-metrics
        self.invoker.on_record = self.metrics.invocations.observe if self.metrics else None
        self.spec: AppSpec | None = None  # as running: declared, with the runtime settings
        self._declared: AppSpec | None = None  # as last deployed
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
        await self.events.start()
        await self.usage.start()
        self.log_retention.start()
        if self.tracer is not None:
            self.tracer.start(spec.name)
        await self.apply(spec)
        await self.jobs.recover()
        await self.webhooks.recover()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        await self.triggers.stop(STOP_GRACE)
        await self.mqtt.stop()  # messages not yet handed on stay with the brokers' sessions
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
        await self.webhooks.close()
        await self.usage.stop()  # counts so far go to the ledger; budget events are sent
        await self.log_retention.stop()
        await self.events.stop(EVENTS_GRACE)
        await self.services.close()
        self.store.close()
        if self.tracer is not None:
            await self.tracer.close()

    def plan(self, spec: AppSpec) -> Plan:
        return make_plan(self.spec, self.settings.effective(spec)[0])

    async def apply(self, spec: AppSpec, *, code_changed: bool = False) -> Plan:
        """Make the running platform match `spec`. Applying the same spec twice changes nothing."""
        async with self._apply_lock:
            declared, (spec, stale) = spec, self.settings.effective(spec)
            plan = make_plan(self.spec, spec)
            webhooks = self.webhooks.prepare(spec)  # a missing secret fails here, first
            self.mqtt.check(spec)  # so do a broker's missing credentials, or the mqtt extra
            current = self._zygote
            fresh = code_changed or current is None or current.closed or self._preload_changed(spec)
            if plan.empty and not fresh:
                await self._deployed(declared, spec, stale)
                return plan
            await self.triggers.create_resources(spec, self.spec)
            zygote = await self._new_zygote(spec) if fresh else current
            assert zygote is not None
            retired: list[Pool] = []
            for name, function in spec.functions.items():
                pool = self.pools.get(name)
                if pool is not None and pool.zygote is zygote and pool.can_retune(function):
                    pool.retune(function)  # only its scaling or metadata changed
                elif pool is None or pool.spec != function or pool.zygote is not zygote:
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
            self.webhooks.install(webhooks)
            self.max_body_bytes = spec.gateway.max_body_bytes
            for pool in retired:
                self._background(self._retire(pool))
            self._close_unused_zygotes()
            await self.triggers.reconcile(spec)
            await self.mqtt.reconcile(spec)
            await self._deployed(declared, spec, stale)
            return plan

    async def _deployed(self, declared: AppSpec, spec: AppSpec, stale: list[Setting]) -> None:
        """After an apply: forget the runtime settings it overrode, tell who subscribed."""
        self._declared = declared
        await self.settings.forget(stale)
        await self.usage.deployed(spec)  # budgets first: their events precede the deploy's
        await self.events.deployed(spec)

    async def _redeploy(self) -> None:
        """Apply the deployed spec again, under the runtime settings as they are now."""
        if self._declared is None:
            raise NotFound("no app is deployed")
        await self.apply(self._declared)

    def _declared_spec(self) -> AppSpec | None:
        return self._declared

    def _current_spec(self) -> AppSpec | None:
        return self.spec

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
                "owner": pool.spec.owner,
                "tags": pool.spec.tags,
                "runtime": self.settings.of(name),
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
        while not self._stopping and self._declared is not None:
            try:
                await self.apply(self._declared, code_changed=True)
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
