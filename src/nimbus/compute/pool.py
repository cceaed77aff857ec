"""The instance pool of one function: scale up on demand, keep warm, scale to zero, throttle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from nimbus.compute.instance import Host, Instance
from nimbus.compute.protocol import Log, WorkerConfig
from nimbus.compute.spawner import Zygote
from nimbus.errors import NimbusError, Throttled
from nimbus.spec.model import FunctionSpec

MAX_RETRY_DELAY = 30.0  # seconds between attempts to keep a failing function warm
RETUNABLE = ("max_instances", "owner", "tags", "budget")
"""FunctionSpec fields a pool reads as it goes: a change to them needs no new instances."""


class PoolClosed(NimbusError):
    """The pool is draining (its function changed or was removed); ask the current one."""


@dataclass(slots=True)
class Lease:
    """A slot on an instance, held for one invocation; give it back with `Pool.release`."""

    instance: Instance
    cold: bool


class _Start:
    """An instance being started, and how many invocations already wait for its slots."""

    def __init__(self) -> None:
        self.claims = 0
        self.done: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()


class Pool:
    def __init__(self, spec: FunctionSpec, root: str, zygote: Zygote, host: Host) -> None:
        self.spec = spec
        self.zygote = zygote
        self.config = WorkerConfig(
            spec.name, spec.handler, root, spec.memory_mb, spec.concurrency,
            dict(spec.environment), spec.style,
        )  # fmt: skip
        self.instances: list[Instance] = []
        self.cold_starts = 0
        self._host = host
        self._starts: list[_Start] = []
        self._waiters: deque[asyncio.Future[Lease]] = deque()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_failures = 0
        self._retry_at = 0.0  # no background start before this (monotonic) time

    @property
    def size(self) -> int:
        return len(self.instances) + len(self._starts)

    @property
    def busy_instances(self) -> int:
        return sum(1 for instance in self.instances if instance.leases)

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self, *, wait: bool) -> Lease:
        """A slot to run one invocation. `wait=False` (sync callers) raises Throttled when full."""
        if self._draining:
            raise PoolClosed(self.spec.name)
        instance = self._free_instance()
        if instance is not None:
            instance.leases += 1
            return Lease(instance, cold=False)
        start = next((s for s in self._starts if s.claims < self.spec.concurrency), None)
        if start is None and self.size < self.spec.max_instances:
            start = self._begin_start()
        if start is not None:
            start.claims += 1
            return Lease(await self._claimed(start), cold=True)
        if not wait:
            raise Throttled(
                f"function {self.spec.name!r} is at its limit of "
                f"{self.spec.max_instances} instance(s)"
            )
        waiter: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())
            raise

    def release(self, lease: Lease) -> None:
        instance = lease.instance
        instance.last_used = time.monotonic()
        instance.leases -= 1
        if self._draining:
            if instance.leases == 0:
                instance.stop()
        else:
            self._hand_to_waiters(instance)

    def can_retune(self, spec: FunctionSpec) -> bool:
        """Whether `spec` differs from this pool's only in what running instances do not hold
        (`RETUNABLE`), so that the pool can take it and keep its instances."""
        return (
            spec != self.spec
            and spec.model_copy(update={field: getattr(self.spec, field) for field in RETUNABLE})
            == self.spec
        )

    def retune(self, spec: FunctionSpec) -> None:
        """Take `spec` (see `can_retune`); a higher `max_instances` serves waiters at once."""
        self.spec = spec
        self._replace()

    def ensure_minimum(self) -> None:
        """Start instances in the background until `min_instances` are up (backing off while
        starts keep failing)."""
        if time.monotonic() < self._retry_at or self.zygote.closed:
            return
        for _ in range(self.spec.min_instances - self.size):
            self._begin_start()

    def reap_idle(self, now: float) -> None:
        """Stop instances idle for `keep_alive`, most idle first, keeping `min_instances`."""
        idle = [
            i for i in self.instances if i.leases == 0 and now - i.last_used >= self.spec.keep_alive
        ]
        idle.sort(key=lambda i: i.last_used)
        for instance in idle[: max(0, len(self.instances) - self.spec.min_instances)]:
            self.instances.remove(instance)
            instance.stop()

    async def drain(self) -> None:
        """Stop taking work; idle instances stop now, busy ones once their work is done."""
        self._draining = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed(self.spec.name))
        await asyncio.gather(
            *(asyncio.shield(s.done) for s in self._starts), return_exceptions=True
        )
        for instance in list(self.instances):
            if instance.leases == 0:
                instance.stop()
        await asyncio.gather(*(i.closed for i in list(self.instances)), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    def _free_instance(self) -> Instance | None:
        """The most recently used instance with a free slot, so that the others can go idle."""
        best = None
        for instance in self.instances:
            if instance.has_free_slot and (best is None or instance.last_used > best.last_used):
                best = instance
        return best

    def _begin_start(self) -> _Start:
        start = _Start()
        self._starts.append(start)
        self._background(self._run_start(start))
        return start

    async def _run_start(self, start: _Start) -> None:
        try:
            instance = await Instance.start(self.config, self.zygote, self._host)
        except BaseException as error:
            self._starts.remove(start)
            self._start_failures += 1
            self._retry_at = time.monotonic() + min(MAX_RETRY_DELAY, 0.5 * 2**self._start_failures)
            start.done.set_exception(error)
            start.done.exception()  # marked retrieved: its claimants may have gone
            if start.claims == 0:
                message = f"an instance failed to start: {error}"
                self._host.on_log(self.spec.name, Log("", "ERROR", message, time.time()))
                self._fail_one_waiter(error)  # the waiter it was started for
            elif self._waiters:
                self._replace()  # its slot is free again: start for those still waiting
            raise
        self._starts.remove(start)
        self._start_failures, self._retry_at = 0, 0.0
        self.cold_starts += 1
        instance.leases = start.claims
        self.instances.append(instance)
        self._watch(instance)
        start.done.set_result(instance)
        self._hand_to_waiters(instance, cold=True)

    def _fail_one_waiter(self, error: BaseException) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
                break
        if self._waiters:
            self._replace()

    async def _claimed(self, start: _Start) -> Instance:
        try:
            return await asyncio.shield(start.done)
        except asyncio.CancelledError:

            def give_back(done: asyncio.Future[Instance]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self.release(Lease(done.result(), cold=True))

            start.done.add_done_callback(give_back)
            raise

    def _hand_to_waiters(self, instance: Instance, *, cold: bool = False) -> None:
        while self._waiters and instance.has_free_slot:
            waiter = self._waiters.popleft()
            if not waiter.done():
                instance.leases += 1
                waiter.set_result(Lease(instance, cold=cold))

    def _watch(self, instance: Instance) -> None:
        instance.on_slot_free = self._hand_to_waiters

        def closed(_: object) -> None:
            if instance in self.instances:
                self.instances.remove(instance)
            if not self._draining:
                self._replace()

        instance.closed.add_done_callback(closed)

    def _replace(self) -> None:
        """After an instance died: serve the waiters and keep the minimum."""
        if self.zygote.closed:
            return  # the controller is moving every function to a new zygote
        shortfall = max(self.waiting, self.spec.min_instances - self.size)
        for _ in range(min(shortfall, self.spec.max_instances - self.size)):
            self._begin_start()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            # a failure was reported to whoever claimed the start; the next demand starts another
            with contextlib.suppress(Exception):
                await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
