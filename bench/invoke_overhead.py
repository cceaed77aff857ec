"""Warm invoke overhead: controller -> worker -> controller, no HTTP.

nimbus: `controller.invoker.invoke("noop")` in-process, on a warm instance of a no-op function
(this includes writing the invocation record, which a background thread commits to SQLite).
Baseline: a raw round trip to a second Python process over a socketpair, one length-prefixed
msgspec msgpack frame each way, the peer answering with blocking reads (bench/echo_peer.py).
Both are timed the same way, one call after the other, with asyncio (uvloop) on this side.
Target: nimbus p50 <= 100 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import msgspec
import uvloop

from common import (
    BENCH_DIR,
    PYTHON,
    Metric,
    Report,
    Runs,
    Target,
    argument_parser,
    finish,
    latency_summary,
    median_of_runs,
    time_calls_us,
)
from echo_peer import HEADER, Ping, Pong, pack, take_frames
from nimbus.controller import Controller
from nimbus_harness import invocation_records, invoke_ok, running_controller

NAME = "invoke_overhead"
FUNCTION = "noop"
TARGET_P50_US = 100.0
PAYLOAD = b"null"

Call = Callable[[], Awaitable[object]]


class EchoClient(asyncio.Protocol):
    """The baseline's controller side: one request in flight, answered by the next frame."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Pong] | None = None
        self._decoder = msgspec.msgpack.Decoder(Pong)
        self._next_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for frame in take_frames(self._buffer):
            assert self._waiter is not None
            self._waiter.set_result(self._decoder.decode(frame))

    async def call(self) -> Pong:
        assert self._transport is not None
        self._next_id += 1
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(pack(Ping(self._next_id, PAYLOAD)))
        return await self._waiter


@contextlib.asynccontextmanager
async def echo_peer() -> AsyncIterator[EchoClient]:
    """The baseline's peer process, connected over a socketpair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    process = subprocess.Popen(
        [PYTHON, str(BENCH_DIR / "echo_peer.py"), str(theirs.fileno())],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    loop = asyncio.get_running_loop()
    transport, client = await loop.connect_accepted_socket(EchoClient, ours)
    try:
        yield client
    finally:
        transport.close()
        await asyncio.to_thread(process.wait, 10)


def nimbus_call(controller: Controller) -> Call:
    return lambda: invoke_ok(controller, FUNCTION)


async def measure_runs(calls: dict[str, Call], args: argparse.Namespace) -> Runs:
    """Warm both up, then alternate them run by run so that both see the same machine load."""
    for call in calls.values():
        await time_calls_us(call, args.warmup)
    runs: Runs = {side: [] for side in calls}
    for run in range(args.runs):
        for side, call in calls.items():
            summary = latency_summary(await time_calls_us(call, args.invocations))
            runs[side].append(summary)
            print(f"run {run + 1}/{args.runs} {side}: p50 {summary['p50']:.1f} µs", flush=True)
    return runs


async def measure(args: argparse.Namespace) -> Report:
    async with running_controller() as controller, echo_peer() as peer:
        runs = await measure_runs({"nimbus": nimbus_call(controller), "baseline": peer.call}, args)
        records = await invocation_records(controller, FUNCTION)
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    return Report(
        name=NAME,
        title="warm invoke overhead, controller -> worker -> controller, no HTTP",
        baseline="raw socketpair round trip to a Python echo process, "
        f"length-prefixed ({HEADER.size}-byte) msgspec msgpack frames",
        runs=args.runs,
        parameters={"invocations_per_run": args.invocations, "warmup": args.warmup},
        metrics=[Metric(key, "µs", nimbus[key], baseline[key]) for key in ("p50", "p99", "mean")],
        target=Target(f"nimbus p50 <= {TARGET_P50_US:g} µs", nimbus["p50"], TARGET_P50_US, "µs"),
        details={"invocation records committed": records},
        per_run=runs,
    )


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--invocations", type=int, default=5000, help="timed calls per run")
    parser.add_argument("--warmup", type=int, default=500, help="untimed calls before the runs")
    finish(uvloop.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
