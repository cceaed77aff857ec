"""Controller side of the zygote: start it, ask it for instances, learn how they exited."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from nimbus.compute.protocol import (
    Exited,
    FrameBuffer,
    FromZygote,
    Spawn,
    Spawned,
    WorkerConfig,
    ZygoteReady,
    encode,
)
from nimbus.errors import NimbusError

# What instances may see of the controller's environment: no credentials, no platform paths.
PASSED_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)
START_TIMEOUT = 60.0
KEPT_EXITS = 4096  # exit statuses nobody asked for, kept for a late question


class ZygoteError(NimbusError):
    """The zygote could not be started or stopped answering."""


class Zygote:
    """One zygote process per app generation (code version)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        commands: socket.socket,
        on_exit: Callable[[Zygote], None] | None,
    ) -> None:
        self.process = process
        self.closed = False
        self._on_exit = on_exit
        self._commands = commands
        self._tokens = itertools.count(1)
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.BaseTransport | None = None

    @classmethod
    async def start(
        cls, root: str, preload: list[str], on_exit: Callable[[Zygote], None] | None = None
    ) -> Zygote:
        """Start a zygote importing from `root`; `on_exit` hears of its unexpected death."""
        commands, commands_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        events, events_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-m", "nimbus.compute.zygote"]
        argv += [str(commands_child.fileno()), str(events_child.fileno()), root, *preload]
        environment = {k: v for k, v in os.environ.items() if k in PASSED_ENVIRONMENT}
        process = subprocess.Popen(
            argv,
            pass_fds=(commands_child.fileno(), events_child.fileno()),
            env=environment,
            stdin=subprocess.DEVNULL,
            cwd=root,  # preloaded modules import where their instances will run
            start_new_session=True,  # a terminal's Ctrl-C is for the controller, not instances
        )
        commands_child.close()
        events_child.close()
        commands.settimeout(10.0)
        zygote = cls(process, commands, on_exit)
        loop = asyncio.get_running_loop()
        zygote._transport, _ = await loop.connect_accepted_socket(
            lambda: _ZygoteProtocol(zygote), events
        )
        try:
            await asyncio.wait_for(asyncio.shield(zygote._ready), START_TIMEOUT)
        except (TimeoutError, ZygoteError):
            zygote.close()
            raise ZygoteError(f"the zygote did not start (exit status {process.poll()})") from None
        return zygote

    async def spawn(self, config: WorkerConfig) -> tuple[int, socket.socket, socket.socket]:
        """Fork a new instance; returns its pid and the controller's ends of its two sockets:
        invocations, and the service calls its code makes."""
        if self.closed:
            raise ZygoteError("the zygote has exited")
        token = next(self._tokens)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        services, services_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spawned = asyncio.get_running_loop().create_future()
        self._spawning[token] = spawned
        try:
            try:
                socket.send_fds(
                    self._commands,
                    [encode(Spawn(token, config))],
                    [child.fileno(), services_child.fileno()],
                )
            except OSError as error:
                raise ZygoteError(f"the zygote does not answer: {error}") from None
            pid = await spawned
        except BaseException:
            self._spawning.pop(token, None)
            parent.close()
            services.close()
            raise
        finally:
            child.close()
            services_child.close()
        return pid, parent, services

    def exit_status(self, pid: int) -> asyncio.Future[int | None]:
        """Resolves with the instance's exit status (negative: killed by that signal), or None
        when the zygote is gone before it could tell."""
        if pid not in self._exits:
            self._exits[pid] = asyncio.get_running_loop().create_future()
            if self.closed:  # no Exited frame can come any more
                self._exits[pid].set_result(None)
        return self._exits[pid]

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    def close(self) -> None:
        """Stop the zygote; its instances die with it (PDEATHSIG)."""
        self.closed = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._commands.close()
        if self._transport is not None:
            self._transport.close()
        self.on_lost()

    def on_frame(self, frame: Any) -> None:
        if isinstance(frame, Spawned):
            future = self._spawning.pop(frame.token, None)
            if future is not None and not future.done():
                future.set_result(frame.pid)
        elif isinstance(frame, Exited):
            exit_status = self.exit_status(frame.pid)
            if not exit_status.done():
                exit_status.set_result(frame.status)
            while len(self._exits) > KEPT_EXITS:  # statuses of instances nobody asked about
                del self._exits[next(iter(self._exits))]
        elif isinstance(frame, ZygoteReady) and not self._ready.done():
            self._ready.set_result(frame.pid)

    def on_lost(self) -> None:
        error = ZygoteError("the zygote has exited")
        for future in [self._ready, *self._spawning.values()]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting
        self._spawning.clear()
        for exit_status in self._exits.values():
            if not exit_status.done():
                exit_status.set_result(None)
        unexpected, self.closed = not self.closed, True
        if unexpected and self._on_exit is not None:
            self.process.poll()  # reap it if it is gone already
            self._on_exit(self)


class _ZygoteProtocol(asyncio.Protocol):
    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote
        self._buffer = FrameBuffer(msgspec.msgpack.Decoder(FromZygote))

    def data_received(self, data: bytes) -> None:
        for frame in self._buffer.feed(data):
            self._zygote.on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._zygote.on_lost()
