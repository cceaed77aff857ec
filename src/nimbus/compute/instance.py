"""Controller side of one function instance: send invocations, enforce the timeout, notice death."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from nimbus.compute.protocol import (
    Cancel,
    ErrorInfo,
    FrameBuffer,
    FromWorker,
    InitFailed,
    Invoke,
    Log,
    Ready,
    Result,
    ServiceCall,
    ServiceReply,
    WorkerConfig,
    pack,
)
from nimbus.compute.spawner import Zygote, ZygoteError
from nimbus.errors import NimbusError

LogSink = Callable[[str, Log], None]
ServiceHandler = Callable[[str, ServiceCall], Awaitable[ServiceReply]]


@dataclass(frozen=True, slots=True)
class Host:
    """What the controller gives every instance: where its logs go, who answers its service
    calls (with the calling function's name, so that permissions can be checked)."""

    on_log: LogSink
    on_call: ServiceHandler


EXIT_STATUS_WAIT = 2.0
INIT_LIMIT = 10.0  # seconds to fork and load the handler (AWS Lambda's init phase limit)
CANCEL_GRACE = 2.0  # seconds a cancelled async invocation gets to stop before the kill
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(FromWorker)
_call_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ServiceCall)


class InitError(NimbusError):
    """The instance could not load its handler (import error, missing name, bad memory limit)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(f"{info.type}: {info.message}")
        self.info = info


def describe_exit(status: int | None) -> str:
    if status is None:
        return "the instance exited unexpectedly"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"the instance was killed by {name}"
    return f"the instance exited with status {status}"


class Instance:
    """A running worker process of one function."""

    def __init__(self, config: WorkerConfig, zygote: Zygote, host: Host) -> None:
        self.config = config
        self.function = config.function
        self.capacity = config.concurrency
        self.zygote = zygote
        self.pid = 0
        self.init_ms = 0.0
        self.leases = 0
        self.last_used = time.monotonic()
        self.alive = True
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_log = host.on_log
        self._host = host
        self._services: asyncio.Transport | None = None
        self._ready: asyncio.Future[Ready] = asyncio.get_running_loop().create_future()
        self._inflight: dict[str, tuple[asyncio.Future[Result], asyncio.TimerHandle]] = {}
        self._transport: asyncio.Transport | None = None
        self._killed_by_us: str | None = None
        self._burial: asyncio.Task[None] | None = None
        self._cancelling: dict[str, asyncio.TimerHandle] = {}
        self.on_slot_free: Callable[[Instance], None] | None = None

    @classmethod
    async def start(cls, config: WorkerConfig, zygote: Zygote, host: Host) -> Instance:
        """Fork an instance and wait until its handler is loaded (raises InitError if not,
        or if loading takes longer than INIT_LIMIT, like Lambda's init phase)."""
        instance = cls(config, zygote, host)
        try:
            async with asyncio.timeout(INIT_LIMIT):
                instance.pid, sock, services = await zygote.spawn(config)
                await instance._serve_services(services)
                loop = asyncio.get_running_loop()
                instance._transport, _ = await loop.connect_accepted_socket(
                    lambda: _Protocol(instance), sock
                )
                ready = await asyncio.shield(instance._ready)
        except TimeoutError:
            instance.kill("init timeout")
            message = f"the handler did not load within {INIT_LIMIT:g} s"
            raise InitError(ErrorInfo("Init", "InitTimeout", message)) from None
        except ZygoteError as error:
            raise InitError(ErrorInfo("Init", "ZygoteUnavailable", error.message)) from None
        instance.init_ms = ready.init_ms
        return instance

    async def _serve_services(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        protocol = _ServiceProtocol(self.function, self._host.on_call, self.kill)
        self._services, _ = await loop.connect_accepted_socket(lambda: protocol, sock)

    @property
    def has_free_slot(self) -> bool:
        """A cancelled call keeps its slot until it has really stopped."""
        return self.alive and self.leases + len(self._cancelling) < self.capacity

    def invoke(self, frame: Invoke, timeout: float) -> asyncio.Future[Result]:
        """Send an invocation; the future always resolves with a Result, never raises."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if not self.alive or self._transport is None:
            future.set_result(_failed(frame.id, "Crash", "InstanceGone", describe_exit(None)))
            return future
        timer = loop.call_later(timeout, self._time_out, frame.id, timeout)
        self._inflight[frame.id] = (future, timer)
        self._transport.write(pack(frame))
        return future

    def stop(self) -> None:
        """Ask the instance to exit: closing its socket ends the worker loop."""
        self.alive = False
        if self._transport is not None:
            self._transport.close()
        if self._services is not None:
            self._services.close()

    def kill(self, reason: str) -> None:
        self.alive = False
        self._killed_by_us = reason
        if self.pid and not self.closed.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _time_out(self, request_id: str, timeout: float) -> None:
        """Report the timeout now. A single-slot instance is killed at once; one that runs
        several invocations cancels this one and is killed only if it does not stop in time."""
        entry = self._inflight.pop(request_id, None)
        if entry is None:
            return
        message = f"the invocation exceeded its timeout of {timeout:g} s"
        result = _failed(request_id, "Timeout", "Timeout", message)
        result.duration_ms = timeout * 1000
        if not entry[0].done():  # its caller may have stopped waiting (a trigger stopped)
            entry[0].set_result(result)
        if self.capacity == 1 or self._transport is None:
            self.kill("timeout")
            return
        self._transport.write(pack(Cancel(request_id)))
        self._cancelling[request_id] = asyncio.get_running_loop().call_later(
            CANCEL_GRACE, self.kill, "a timed-out invocation ignored its cancellation"
        )

    def on_frame(self, frame: Any) -> None:
        if isinstance(frame, Result):
            cancelled = self._cancelling.pop(frame.id, None)
            if cancelled is not None:
                cancelled.cancel()  # it stopped: the instance lives on, its slot is free again
                if self.on_slot_free is not None:
                    self.on_slot_free(self)
            entry = self._inflight.pop(frame.id, None)
            if entry is not None:
                entry[1].cancel()
                if not entry[0].done():  # its caller may have stopped waiting
                    entry[0].set_result(frame)
            if frame.exiting:
                self.alive = False
        elif isinstance(frame, Log):
            self._on_log(self.function, frame)
        elif isinstance(frame, Ready) and not self._ready.done():
            self._ready.set_result(frame)
        elif isinstance(frame, InitFailed) and not self._ready.done():
            self.alive = False
            self._ready.set_exception(InitError(frame.error))
            self._ready.exception()  # marked retrieved: the start may have timed out already

    def on_lost(self) -> None:
        self.alive = False
        if self._burial is None:
            self._burial = asyncio.get_running_loop().create_task(self._bury())

    async def _bury(self) -> None:
        """Fail what was in flight with the reason the process died, then report closed."""
        status: int | None = None
        if self.pid:
            try:
                status = await asyncio.wait_for(
                    asyncio.shield(self.zygote.exit_status(self.pid)), EXIT_STATUS_WAIT
                )
            except (TimeoutError, asyncio.CancelledError):
                status = None
            self.zygote.forget(self.pid)
        if self._services is not None:
            self._services.close()
        reason = describe_exit(status)
        if self._killed_by_us:
            reason = f"{reason} ({self._killed_by_us})"
        if not self._ready.done():
            info = ErrorInfo("Init", "InstanceExited", f"{reason} while starting")
            self._ready.set_exception(InitError(info))
            self._ready.exception()  # marked retrieved: a start that timed out waits no more
        for timer in self._cancelling.values():
            timer.cancel()
        for request_id, (future, timer) in self._inflight.items():
            timer.cancel()
            if not future.done():  # its caller may have stopped waiting
                future.set_result(_failed(request_id, "Crash", "InstanceExited", reason))
        self._inflight.clear()
        if not self.closed.done():
            self.closed.set_result(None)


def _failed(request_id: str, kind: Any, type_: str, message: str) -> Result:
    return Result(request_id, 0.0, 0, error=ErrorInfo(kind, type_, message))


class _Protocol(asyncio.Protocol):
    def __init__(self, instance: Instance) -> None:
        self._instance = instance
        self._buffer = FrameBuffer(_decoder)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._buffer.feed(data)
        except (msgspec.DecodeError, ValueError):
            self._instance.kill("it sent a frame that cannot be read")
            return
        for frame in frames:
            self._instance.on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._instance.on_lost()


class _ServiceProtocol(asyncio.Protocol):
    """The controller's end of an instance's service socket: each call is answered by the host
    in a task of its own, replies go back tagged with the call's id."""

    def __init__(self, function: str, on_call: ServiceHandler, kill: Callable[[str], None]):
        self._function = function
        self._on_call = on_call
        self._kill = kill
        self._buffer = FrameBuffer(_call_decoder)
        self._transport: asyncio.WriteTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream socket's: writable

    def data_received(self, data: bytes) -> None:
        try:
            calls = self._buffer.feed(data)
        except (msgspec.DecodeError, ValueError):
            self._kill("it sent a service call that cannot be read")
            return
        for call in calls:
            assert isinstance(call, ServiceCall)
            task = asyncio.get_running_loop().create_task(self._answer(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: ServiceCall) -> None:
        reply = await self._on_call(self._function, call)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(pack(reply))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for task in self._tasks:
            task.cancel()
