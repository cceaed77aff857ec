"""The zygote: a process that has imported the runtime (and preloaded modules) once, then forks
a new function instance per Spawn request, so that a cold start is a fork, not an interpreter start.

    python -m nimbus.compute.zygote CMD_FD EVENT_FD ROOT [MODULE ...]

CMD_FD is a SEQPACKET socket: one Spawn frame per message, the instance's two sockets attached
(invocations, and service calls from the function's code).
EVENT_FD is a stream socket for Spawned / Exited frames back to the controller.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec

import nimbus  # noqa: F401  (the runtime and SDK, shared copy-on-write by every instance)
from nimbus.compute import worker
from nimbus.compute.protocol import Exited, Spawn, Spawned, ZygoteReady, pack

PR_SET_PDEATHSIG = 1
_spawn_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(Spawn)


def _find_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _find_prctl()  # looked up once here, not in every forked instance


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def preload(root: str, modules: list[str]) -> None:
    """Import modules now so instances inherit them; a failing one is left to the instance."""
    sys.path.insert(0, root)
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[loaded]


def main(argv: list[str]) -> NoReturn:
    die_with_parent()
    commands = socket.socket(fileno=int(argv[0]))
    events = socket.socket(fileno=int(argv[1]))
    preload(argv[2], argv[3:])
    gc.collect()
    gc.freeze()  # keep the collector from dirtying shared pages in every instance
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    events.sendall(pack(ZygoteReady(os.getpid())))
    while True:
        readable, _, _ = select.select([commands.fileno(), wake_read], [], [])
        if wake_read in readable:
            _drain(wake_read)
            _reap(events)
        if commands.fileno() in readable:
            message, fds, _, _ = socket.recv_fds(commands, 1 << 20, 2)
            if not message:
                os._exit(0)
            spawn = _spawn_decoder.decode(message)
            _fork(spawn, fds, events, (commands, events), (wake_read, wake_write))


def _fork(
    spawn: Spawn,
    fds: list[int],
    events: socket.socket,
    sockets: tuple[socket.socket, ...],
    pipe: tuple[int, int],
) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sock in sockets:
                sock.close()
            for end in pipe:
                os.close(end)
            die_with_parent()
            invocations, services = (socket.socket(fileno=fd) for fd in fds)
            worker.main(invocations, services, spawn.config)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    events.sendall(pack(Spawned(spawn.token, pid)))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(events: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        events.sendall(pack(Exited(pid, os.waitstatus_to_exitcode(status))))


if __name__ == "__main__":
    main(sys.argv[1:])
