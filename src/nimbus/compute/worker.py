"""The worker main loop: one function instance, in a process forked from the zygote.

It reads Invoke frames from its socket, runs the handler, and writes Result and Log frames back.
Sync handlers run one at a time on the main thread; async handlers on an event loop, as many at
once as the controller sends (it enforces `concurrency`).
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec

from nimbus.compute import handlers
from nimbus.compute.protocol import (
    Cancel,
    FrameBuffer,
    InitFailed,
    Invoke,
    Log,
    Ready,
    Result,
    SocketReader,
    ToWorker,
    WorkerConfig,
    pack,
)
from nimbus.context import Context
from nimbus.errors import HTTPError
from nimbus.sdk import client

current_request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="")
current_trace: contextvars.ContextVar[handlers.InvocationTrace | None] = contextvars.ContextVar(
    "trace", default=None
)
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ToWorker)


class Channel:
    """Sends frames to the controller; safe from any thread the handler starts."""

    def __init__(self, sock: socket.socket) -> None:
        self._write: Callable[[bytes], None] = sock.sendall
        self._lock = threading.Lock()

    def send(self, frame: Log | Ready | InitFailed | Result) -> None:
        data = pack(frame)
        with self._lock:
            self._write(data)

    def use_transport(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        """From now on write through the event loop (from its own thread, or handed to it)."""
        loop_thread = threading.get_ident()

        def write(data: bytes) -> None:
            if threading.get_ident() == loop_thread:
                transport.write(data)
            else:
                loop.call_soon_threadsafe(transport.write, data)

        self._write = write


class LogStream(io.TextIOBase):
    """Replaces sys.stdout / sys.stderr: each line becomes a Log frame of the current request."""

    def __init__(self, channel: Channel, level: str) -> None:
        self._channel = channel
        self._level = level
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._send(line)

    def _send(self, line: str) -> None:
        frame = Log(current_request.get(), self._level, line, time.time(), _trace_id())
        self._channel.send(frame)


class FrameLogHandler(logging.Handler):
    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._channel.send(
                Log(
                    current_request.get(), record.levelname, message, record.created,
                    _trace_id(), _extra(record),
                )
            )  # fmt: skip
        except Exception:
            self.handleError(record)


_RECORD_FIELDS = frozenset(
    [*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"]
)
"""What every LogRecord holds: any other attribute came from the call's `extra=`."""


def _extra(record: logging.LogRecord) -> str | None:
    """The fields given with `extra=`, as a JSON object (a value JSON cannot hold: its str)."""
    fields = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}
    return msgspec.json.encode(fields, enc_hook=str).decode() if fields else None


def _trace_id() -> str:
    """The trace id of the running invocation (empty outside of one)."""
    invocation = current_trace.get()
    return invocation.trace_id() if invocation is not None else ""


class Runner:
    """Runs one invocation: context, handler call, result shaping, error capture."""

    def __init__(self, config: WorkerConfig, channel: Channel, handler: handlers.HandlerFunc):
        self.config = config
        self.channel = channel
        self.handler = handler
        self.with_context = handlers.wants_context(handler)
        self.logger = logging.getLogger(config.function)

    def prepare(self, frame: Invoke) -> tuple[Any, ...]:
        current_request.set(frame.id)
        current_trace.set(handlers.InvocationTrace(frame))
        style = self.config.style
        event = handlers.make_event(frame.http, frame.payload, frame.trigger, style)
        if not self.with_context:
            return (event,)
        context = Context(
            frame.id,
            self.config.function,
            self.config.memory_mb,
            frame.deadline,
            frame.cold,
            frame.trigger,
            self.logger,
        )
        return (event, handlers.make_context(style, context))

    def finish(self, frame: Invoke, started: float, value: Any) -> Result:
        duration = (time.perf_counter() - started) * 1000
        try:
            if frame.http is not None:
                return Result(
                    frame.id,
                    duration,
                    _peak_kb(),
                    http=handlers.shape_reply(self.config.style, value),
                )
            return Result(frame.id, duration, _peak_kb(), value=msgspec.json.encode(value))
        except Exception as error:  # not JSON-able, or not a valid HTTP response
            wrapped = TypeError(f"the handler's result cannot be sent back: {error}")
            return self.failure(frame, started, wrapped)

    def failure(self, frame: Invoke, started: float, error: BaseException) -> Result:
        duration = (time.perf_counter() - started) * 1000
        if isinstance(error, HTTPError) and frame.http is not None:
            return Result(frame.id, duration, _peak_kb(), http=handlers.http_error_reply(error))
        if isinstance(error, asyncio.CancelledError):  # the controller's Cancel after a timeout
            info = handlers.error_info("Timeout", error)
            info.message = "cancelled after its timeout"
            return Result(frame.id, duration, _peak_kb(), error=info)
        if isinstance(error, MemoryError):
            info = handlers.error_info("OutOfMemory", error)
            info.message = f"the instance ran out of its {self.config.memory_mb} MB"
            return Result(frame.id, duration, _peak_kb(), error=info, exiting=True)
        if isinstance(error, SystemExit | KeyboardInterrupt):
            info = handlers.error_info("Crash", error)
            info.message = (
                f"the handler tried to exit the process ({type(error).__name__}: {error})"
            )
            return Result(frame.id, duration, _peak_kb(), error=info, exiting=True)
        return Result(frame.id, duration, _peak_kb(), error=handlers.error_info("Handler", error))

    def run_sync(self, frame: Invoke) -> Result:
        started = time.perf_counter()
        try:
            value = self.handler(*self.prepare(frame))
        except BaseException as error:
            return self.failure(frame, started, error)
        return self.finish(frame, started, value)

    async def run_async(self, frame: Invoke) -> Result:
        started = time.perf_counter()
        try:
            value = await self.handler(*self.prepare(frame))
        except BaseException as error:
            return self.failure(frame, started, error)
        return self.finish(frame, started, value)


def main(sock: socket.socket, services: socket.socket, config: WorkerConfig) -> NoReturn:
    """Entry point in the forked child. Never returns."""
    started = time.perf_counter()
    channel = Channel(sock)
    client.install(services, current_request, current_trace)
    _limit_memory(config.memory_mb)
    _set_environment(config)
    _capture_output(channel)
    try:
        handler = handlers.load_handler(config.handler)
        if not handlers.concurrency_allowed(handler, config.concurrency):
            raise TypeError(handlers.SYNC_CONCURRENCY)
    except BaseException as error:
        channel.send(InitFailed(handlers.error_info("Init", error)))
        os._exit(1)
    runner = Runner(config, channel, handler)
    channel.send(Ready(os.getpid(), (time.perf_counter() - started) * 1000))
    if asyncio.iscoroutinefunction(handler):
        asyncio.run(_serve_async(sock, runner))
    else:
        _serve_sync(sock, runner)
    os._exit(0)


def _serve_sync(sock: socket.socket, runner: Runner) -> None:
    reader = SocketReader(sock, _decoder)
    while (frame := reader.next()) is not None:
        if not isinstance(frame, Invoke):
            continue  # a single-slot instance is killed on timeout, never asked to cancel
        result = runner.run_sync(frame)
        runner.channel.send(result)
        if result.exiting:
            return


async def _serve_async(sock: socket.socket, runner: Runner) -> None:
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    buffer = FrameBuffer(_decoder)
    tasks: dict[str, asyncio.Task[None]] = {}

    async def run(frame: Invoke) -> None:
        try:
            result = await runner.run_async(frame)
        finally:
            tasks.pop(frame.id, None)
        runner.channel.send(result)
        if result.exiting and not closed.done():
            closed.set_result(None)

    class Protocol(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            for frame in buffer.feed(data):
                if isinstance(frame, Cancel):
                    if frame.id in tasks:
                        tasks[frame.id].cancel()
                elif isinstance(frame, Invoke):
                    tasks[frame.id] = loop.create_task(run(frame))

        def connection_lost(self, exc: Exception | None) -> None:
            if not closed.done():
                closed.set_result(None)

    transport, _ = await loop.connect_accepted_socket(Protocol, sock)
    runner.channel.use_transport(loop, transport)
    await closed
    transport.close()


def _limit_memory(memory_mb: int) -> None:
    """Cap private data (heap and anonymous maps): allocation beyond raises MemoryError."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _set_environment(config: WorkerConfig) -> None:
    os.environ.update(
        handlers.instance_environment(config.function, config.memory_mb, config.environment)
    )
    if config.root not in sys.path:
        sys.path.insert(0, config.root)
    os.chdir(config.root)  # like Lambda's /var/task: relative paths are the app's, not ours


def _capture_output(channel: Channel) -> None:
    sys.stdout = LogStream(channel, "INFO")
    sys.stderr = LogStream(channel, "ERROR")
    root = logging.getLogger()
    root.handlers[:] = [FrameLogHandler(channel)]
    root.setLevel(logging.INFO)


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
