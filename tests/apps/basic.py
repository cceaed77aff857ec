"""A test app with one function per behaviour the runtime must show."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("basic", max_body_bytes=1024)


@app.http("GET", "/hello/{name}")
@app.http("POST", "/hello/{name}")
def hello(request: nimbus.Request, context: nimbus.Context) -> dict[str, Any]:
    return {
        "name": request.params["name"],
        "method": request.method,
        "query": request.query,
        "agent": request.headers.get("User-Agent"),
        "request_id": context.request_id,
        "cold_start": context.cold_start,
        "remaining": context.remaining_time(),
    }


@app.http("GET", "/paths/fixed/route")
@app.http("GET", "/paths/{name}.txt")
def paths(request: nimbus.Request) -> dict[str, Any]:
    """What routing made of the path: its parameters, beside the request's (decoded) path."""
    return {"params": request.params, "path": request.path}


@app.http("POST", "/json")
def echo_json(request: nimbus.Request) -> Any:
    return {"got": request.json()}


@app.http("GET", "/text")
def text(request: nimbus.Request) -> str:
    return "plain words"


@app.http("GET", "/bytes")
def raw(request: nimbus.Request) -> bytes:
    return b"\x00\x01binary"


@app.http("GET", "/teapot")
def teapot(request: nimbus.Request) -> nimbus.Response:
    return nimbus.Response({"short": "stout"}, status=418, headers={"x-kind": "teapot"})


@app.http("DELETE", "/nothing")
def nothing(request: nimbus.Request) -> None:
    return None


@app.http("GET", "/fail")
def fail(request: nimbus.Request) -> None:
    raise ValueError("the handler broke")


@app.http("GET", "/slow", timeout=0.5)
def slow_http(request: nimbus.Request) -> str:
    time.sleep(30)
    return "too late"


@app.http("GET", "/busy", max_instances=1, timeout=30)
def busy(request: nimbus.Request) -> dict[str, int]:
    print(f"busy in {os.getpid()}", flush=True)
    time.sleep(float(request.query.get("sleep", "0")))
    if "until" in request.query:
        _wait_for(lambda: Path(request.query["until"]).exists())
    return {"pid": os.getpid()}


@app.function(timeout=30)
def rendezvous(event: dict[str, Any]) -> int:
    """Returns only once `count` instances are in here at the same time."""
    folder = Path(event["dir"])
    (folder / str(os.getpid())).touch()
    _wait_for(lambda: len(list(folder.iterdir())) >= event["count"])
    return os.getpid()


def _wait_for(condition: Any, limit: float = 25.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.01)


@app.function()
def echo(event: Any, context: nimbus.Context) -> dict[str, Any]:
    print(f"echo got {event!r}")
    logging.getLogger("user").warning("a warning from %s", context.function_name)
    return {
        "event": event,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "request_id": context.request_id,
        "function": context.function_name,
        "memory_mb": context.memory_mb,
        "cold_start": context.cold_start,
        "env": os.environ.get("GREETING"),
        "secret": os.environ.get("NIMBUS_TEST_SECRET"),
    }


@app.function(environment={"GREETING": "hi"})
def other(event: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "env": os.environ.get("GREETING")}


@app.function(timeout=1)
def sleeper(event: dict[str, float]) -> dict[str, int]:
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}


@app.function()
def crash(event: str) -> None:
    if event == "exit":
        os._exit(3)
    if event == "segfault":
        ctypes.string_at(0)
    if event == "sysexit":
        raise SystemExit(4)
    os.kill(os.getpid(), signal.SIGKILL)


@app.function(memory_mb=128)
def hog(event: int) -> int:
    blob = bytearray(event * 1024 * 1024)
    return len(blob)


@app.function()
def pid(event: Any) -> int:
    return os.getpid()


@app.function(concurrency=4, max_instances=1, timeout=30)
async def together(event: dict[str, float]) -> dict[str, int]:
    await asyncio.sleep(event["seconds"])
    return {"pid": os.getpid()}


@app.function(keep_alive=0.5)
def ephemeral(event: Any) -> int:
    return os.getpid()


@app.function(min_instances=2, keep_alive=0.1)
def warm(event: Any) -> int:
    return os.getpid()


@app.function(failure=nimbus.FailurePolicy(retries=2, backoff=0.05))
def flaky(event: dict[str, Any]) -> str:
    raise RuntimeError(f"flaky failed on {event['id']}")


@app.function()
def unserializable(event: Any) -> object:
    return object()


@app.function(concurrency=4, max_instances=1, timeout=1)
async def patient(event: dict[str, Any]) -> dict[str, int]:
    if event.get("block"):
        time.sleep(event["block"])  # blocks the event loop: cancellation cannot reach it
    await asyncio.sleep(event.get("seconds", 0))
    return {"pid": os.getpid()}


@app.function()
def where(event: Any) -> str:
    return os.getcwd()


RUNNING = {"now": 0, "peak": 0}


@app.function(concurrency=2, max_instances=1, timeout=1)
async def slow_to_stop(event: dict[str, Any]) -> dict[str, int]:
    """Counts calls running at once; when cancelled, takes a while to stop."""
    RUNNING["now"] += 1
    RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        await asyncio.sleep(event.get("seconds", 0))
    except asyncio.CancelledError:
        await asyncio.sleep(1.5)
        raise
    finally:
        RUNNING["now"] -= 1
    return {"peak": RUNNING["peak"], "pid": os.getpid()}


@app.http("GET", "/bad-response")
def bad_response(request: nimbus.Request) -> nimbus.Response:
    kind = request.query.get("kind")
    if kind == "status":
        return nimbus.Response("x", status=99)
    if kind == "text-status":
        return nimbus.Response("x", status="200")  # type: ignore[arg-type]
    if kind == "crlf":
        return nimbus.Response("x", headers={"x-a": "1\r\nset-cookie: evil"})
    if kind == "unicode":
        return nimbus.Response("x", headers={"x-a": "\u2603"})
    return nimbus.Response("x", headers={"bad name": "1"})


@app.http("POST", "/record-body")
def record_body(request: nimbus.Request) -> int:
    print(f"got {len(request.body)} bytes")
    return len(request.body)
