"""`nimbus up`: the controller behind uvicorn, with the app reloaded when its code changes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import uvicorn
import watchfiles

from nimbus import discovery
from nimbus.compute.spawner import START_TIMEOUT
from nimbus.controller import Controller
from nimbus.edge.admin import create_admin
from nimbus.edge.auth import TokenAuth
from nimbus.edge.gateway import Gateway
from nimbus.edge.ws_protocol import NimbusWebSocketProtocol
from nimbus.errors import NimbusError, SpecError
from nimbus.ops.config import DEFAULT_OPS, OpsConfig
from nimbus.ops.tracing.config import DEFAULT_TRACING, TracingConfig
from nimbus.spec.loader import resolve_target
from nimbus.spec.model import AppSpec
from nimbus.spec.websockets import MAX_MESSAGE_LIMIT


async def extract_spec(target: str) -> AppSpec:
    """Load the app in a separate process: user code never runs in the controller. Its imports
    get as long as the zygote's preloading does: code slower than that could not run anyway."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nimbus.spec.extract",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(START_TIMEOUT):
            out, err = await process.communicate()
    except TimeoutError:
        raise SpecError(
            f"{target}: loading the app took over {START_TIMEOUT:g} s (does a module hang "
            "when it is imported?)"
        ) from None
    finally:
        if process.returncode is None:  # timed out, or the platform stops meanwhile
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise SpecError(err.decode(errors="replace").strip() or f"cannot load {target}")
    return AppSpec.model_validate_json(out)


async def serve(
    target: str,
    *,
    host: str,
    port: int,
    data_dir: Path,
    reload: bool,
    fsync: bool = False,
    token: str | None = None,
    tracing: TracingConfig = DEFAULT_TRACING,
    metrics: bool = True,
    ops: OpsConfig = DEFAULT_OPS,
) -> None:
    """Run the platform; its API (/_nimbus) wants `token`, or one generated now."""
    token = discovery.check_token(token) if token else discovery.new_token()
    lock = _lock(data_dir)
    spec = await extract_spec(target)
    listener = _listen(host, port)
    controller = Controller(
        data_dir, echo=sys.stderr, fsync=fsync, tracing=tracing, metrics=metrics, ops=ops
    )
    await controller.start(spec)
    app = Gateway(controller, TokenAuth(create_admin(controller), token))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
        http="httptools",
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,  # nimbus is not behind a proxy unless one is configured
        ws=NimbusWebSocketProtocol,  # can drop a slow client; keepalive per WebSocket API
        ws_max_size=MAX_MESSAGE_LIMIT,  # refused before buffering; each API may set less
        ws_per_message_deflate=False,  # fan-out would compress each copy apart, per client
    )
    server = uvicorn.Server(config)
    found_at = data_dir / discovery.DISCOVERY_FILE
    watcher = asyncio.get_running_loop().create_task(_watch(target, controller)) if reload else None
    try:
        serving = asyncio.get_running_loop().create_task(server.serve(sockets=[listener]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started:
            url = _url(host, listener.getsockname()[1])
            discovery.write(data_dir, url, token)
            sys.stderr.write(_banner(spec, url, found_at))
        await serving
    finally:
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(FileNotFoundError):
            found_at.unlink()
        await controller.stop()
        lock.close()


def _banner(spec: AppSpec, url: str, found_at: Path) -> str:
    """What a person sees at start: where the app answers, and which function serves what."""
    lines = [
        f"nimbus: app {spec.name!r} on {url} (platform API and CLI: {url}/_nimbus, "
        f"with the token in {found_at})"
    ]
    for function in spec.functions.values():
        routes = [t.label for t in function.triggers] or ["(invoke only)"]
        lines += [f"  {route:<40} -> {function.name}" for route in routes]
    return "\n".join(lines) + "\n"


def _lock(data_dir: Path) -> TextIO:
    """Hold the data folder for this process: two platforms on one store would run jobs twice."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = (data_dir / "lock").open("w")
    except OSError as error:
        raise NimbusError(f"cannot use the data folder {data_dir}: {error.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise NimbusError(
            f"another nimbus platform is running with the data folder {data_dir}"
        ) from None
    return handle


def _listen(host: str, port: int) -> socket.socket:
    """Bind the gateway's socket first, so a taken port is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise NimbusError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _watch(target: str, controller: Controller) -> None:
    root = resolve_target(target).parent
    reported = ""  # the last failure: an editor's save can come as two changes failing alike
    async for _ in watchfiles.awatch(root, watch_filter=_is_app_file):
        try:
            spec = await extract_spec(target)
            plan = await controller.apply(spec, code_changed=True)
        except Exception as error:  # keep watching: the next save may fix it
            message = error.message if isinstance(error, NimbusError) else repr(error)
            if message != reported:
                sys.stderr.write(
                    f"nimbus: reload failed, still running the previous version:\n{message}\n"
                )
            reported = message
            continue
        reported = ""
        sys.stderr.write(f"nimbus: reloaded ({_summary(plan.add, plan.change, plan.remove)})\n")


def _summary(add: Sequence[str], change: Sequence[object], remove: Sequence[str]) -> str:
    return f"{len(add)} added, {len(change)} changed, {len(remove)} removed"


def _is_app_file(change: watchfiles.Change, path: str) -> bool:
    return (
        path.endswith((".py", ".yaml", ".yml")) and "/." not in path and "__pycache__" not in path
    )
