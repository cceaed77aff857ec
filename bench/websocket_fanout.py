"""WebSocket fan-out: messages/s delivered to N connected clients, and delivery latency.

nimbus: `python -m nimbus up bench/apps/ws_fanout_app.py --no-reload`; N clients connect to
the `fan` WebSocket API, then POST /fanout runs the `fanout` function, which calls
`fan.broadcast(...)` once per message: from the worker, through the SDK and the controller's
connection registry, to each client's outbox and socket. Baseline: bare uvicorn serving a raw
ASGI app (bench/apps/bare_ws_fanout.py) that writes each message to each connection itself, no
functions (same uvicorn WebSocket implementation, uvloop, no compression).
Two phases per run: a burst of messages sent as fast as the sender can (messages/s delivered =
N x messages / time from the first send to the last delivery), and messages paced `--interval`
apart (delivery latency: a client's receive time minus the send time in the message, p50/p99).
The clients run in this process on asyncio (the same for both sides).
No target: the issue asks for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from common import (
    Metric,
    Report,
    Runs,
    Summary,
    alternate_runs,
    argument_parser,
    bare_uvicorn,
    finish,
    median_of_runs,
    nimbus_server,
    percentile,
)

NAME = "websocket_fanout"
TITLE = "WebSocket fan-out: messages/s delivered to N clients, delivery latency"
BASELINE = "bare uvicorn (websockets-sansio, uvloop) + raw ASGI app broadcasting, no functions"
READY = "/clients"  # both servers answer it
DELIVERY_LIMIT = 300.0
WS_OPTIONS = ("--ws", "websockets-sansio", "--ws-per-message-deflate", "false")  # as nimbus's


# clients


async def receive(client: ClientConnection, count: int, latencies: list[float]) -> float:
    """Take `count` messages; note each one's delivery latency (ms); the last arrival time."""
    last = 0.0
    for _ in range(count):
        message = await client.recv()
        last = time.time()
        sent = float(str(message).split("|", 2)[1])
        latencies.append((last - sent) * 1000)
    return last


async def fan_out(
    http: httpx.AsyncClient,
    clients: list[ClientConnection],
    count: int,
    size: int,
    interval: float,
) -> tuple[list[float], float, float]:
    """One phase: the latencies, when the first send began and when the last delivery came."""
    latencies: list[float] = []
    readers = [asyncio.create_task(receive(c, count, latencies)) for c in clients]
    started = time.time()
    order = {"count": count, "size": size, "interval": interval}
    answer = await http.post("/fanout", json=order, timeout=DELIVERY_LIMIT)
    answer.raise_for_status()
    if answer.json()["reached"] != len(clients):
        raise RuntimeError(f"a broadcast reached {answer.json()['reached']} of {len(clients)}")
    finished = await asyncio.wait_for(asyncio.gather(*readers), DELIVERY_LIMIT)
    return latencies, started, max(finished)


async def one_run(url: str, args: argparse.Namespace) -> Summary:
    ws_url = url.replace("http://", "ws://", 1) + "/fan"
    async with httpx.AsyncClient(base_url=url) as http, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(ws_url, max_queue=None, compression=None))
            for _ in range(args.clients)
        ]
        while (await http.get("/clients")).json() != args.clients:
            await asyncio.sleep(0.01)
        await fan_out(http, clients, args.warmup, args.size, 0.0)
        _, started, last = await fan_out(http, clients, args.messages, args.size, 0.0)
        paced, _, _ = await fan_out(http, clients, args.paced, args.size, args.interval)
    return {
        "messages_per_s": args.clients * args.messages / (last - started),
        "latency_p50_ms": percentile(paced, 50),
        "latency_p99_ms": percentile(paced, 99),
    }


def run_side(url: str, args: argparse.Namespace) -> Summary:
    return asyncio.run(one_run(url, args))


def measure_runs(urls: dict[str, str], args: argparse.Namespace) -> Runs:
    sides = {side: functools.partial(run_side, url, args) for side, url in urls.items()}
    return alternate_runs(
        sides,
        args.runs,
        lambda r: f"{r['messages_per_s']:,.0f} msgs/s, p99 {r['latency_p99_ms']:.2f} ms",
    )


def report(args: argparse.Namespace, runs: Runs) -> Report:
    nimbus, baseline = median_of_runs(runs["nimbus"]), median_of_runs(runs["baseline"])
    return Report(
        name=NAME,
        title=TITLE,
        baseline=BASELINE,
        runs=args.runs,
        parameters={
            "clients": args.clients,
            "burst_messages": args.messages,
            "paced_messages": args.paced,
            "interval_s": args.interval,
            "padding_bytes": args.size,
            "warmup_messages": args.warmup,
        },
        metrics=[
            Metric(
                "msgs/s delivered", "msgs/s", nimbus["messages_per_s"], baseline["messages_per_s"]
            ),
            Metric(
                "latency p50 (paced)", "ms", nimbus["latency_p50_ms"], baseline["latency_p50_ms"]
            ),
            Metric(
                "latency p99 (paced)", "ms", nimbus["latency_p99_ms"], baseline["latency_p99_ms"]
            ),
        ],
        per_run=runs,
    )


def measure(args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with (
            nimbus_server("ws_fanout_app.py", data_dir, READY) as nimbus,
            bare_uvicorn("bare_ws_fanout:app", Path(tmp) / "bare.log", READY, *WS_OPTIONS) as bare,
        ):
            runs = measure_runs({"nimbus": nimbus, "baseline": bare}, args)
    return report(args, runs)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--clients", type=int, default=50, help="connected clients (N)")
    parser.add_argument("--messages", type=int, default=400, help="messages of the burst")
    parser.add_argument("--paced", type=int, default=200, help="messages of the paced phase")
    parser.add_argument("--interval", type=float, default=0.01, help="paced: seconds apart")
    parser.add_argument("--size", type=int, default=100, help="padding bytes per message")
    parser.add_argument("--warmup", type=int, default=50, help="messages before each run")
    finish(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
