"""Telemetry dashboard: services post telemetry, which flows into a stream, is rolled up in
near real time into per-window aggregates in a table, and is shown on a live page.

    nimbus up examples/telemetry-dashboard
    curl localhost:8080/telemetry -d '{"source": "web-1", "metric": "latency_ms", "value": 12.5}'
    open http://localhost:8080/

- `POST /telemetry` (`ingest`) checks a batch of readings and appends them to the `telemetry`
  stream, keyed by source, so each source's readings stay in order.
- `rollup` (an ordered stream consumer) folds each batch into the `aggregates` table: one item
  per metric and WINDOW-second window with count, sum, min, max and a histogram for p50/p95.
  Items are written with a version check (two partitions may update one window at once) and
  remember the last sequence applied per partition, so a retried batch is not counted twice.
- `GET /aggregates` (JSON) and `GET /` (the page, which polls it) show the latest windows.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import rollup

import nimbus

WINDOW = 10
"""Seconds per aggregation window."""
KEEP = 86400
"""Windows expire (table TTL) after a day."""
MAX_READINGS = 1000
PAGE = Path(__file__).with_name("page.html")

app = nimbus.App("telemetry-dashboard")
telemetry = app.stream("telemetry", partitions=2)
aggregates = app.table("aggregates", key="metric", sort_key="window", ttl="expires")


def reading(raw: Any, now: float) -> dict[str, Any]:
    """One reading, checked: a source, a metric, a finite number and an optional time."""
    if not isinstance(raw, dict):
        raise nimbus.BadRequest(f"a reading is a JSON object, not {raw!r}")
    source, metric, value = raw.get("source"), raw.get("metric"), raw.get("value")
    at = raw.get("time", now)
    for name, text in (("source", source), ("metric", metric)):
        if not isinstance(text, str) or not 0 < len(text) <= 100:
            raise nimbus.BadRequest(f"{name} must be a string of 1 to 100 characters")
    for name, number in (("value", value), ("time", at)):
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise nimbus.BadRequest(f"{name} must be a number, not {number!r}")
        if not math.isfinite(number):
            raise nimbus.BadRequest(f"{name} must be finite")
    return {"source": source, "metric": metric, "value": float(value), "time": float(at)}


@app.http("POST", "/telemetry", uses=[telemetry])
def ingest(request: nimbus.Request) -> nimbus.Response:
    body = request.json()
    raws = body if isinstance(body, list) else [body]
    if not 0 < len(raws) <= MAX_READINGS:
        raise nimbus.BadRequest(f"send 1 to {MAX_READINGS} readings at a time")
    now = time.time()
    readings = [reading(raw, now) for raw in raws]  # all are checked before any is stored
    telemetry.put_batch([(r["source"], r) for r in readings])
    return nimbus.Response({"accepted": len(readings)}, status=202)


@app.on_stream(telemetry, batch_size=500, start="oldest", uses=[aggregates])
def rollup_batch(batch: nimbus.StreamBatch) -> None:
    """Fold the batch into its windows' aggregates, one conditional write per window."""
    groups: dict[tuple[str, int], list[nimbus.StreamRecord]] = defaultdict(list)
    for record in batch:
        data = record.json()
        groups[(data["metric"], int(data["time"] // WINDOW * WINDOW))].append(record)
    for (metric, window), records in groups.items():
        fold(metric, window, records)


def fold(metric: str, window: int, records: list[nimbus.StreamRecord]) -> None:
    while True:
        item = aggregates.get(metric=metric, window=window)
        aggregate = item.data if item else rollup.empty(metric, window, WINDOW)
        applied: dict[str, int] = aggregate["applied"]
        for record in records:
            partition = str(record.partition)
            if record.sequence <= applied.get(partition, -1):
                continue  # a retried batch: this record is counted already
            data = record.json()
            rollup.add(aggregate, data["value"], data["source"])
            applied[partition] = record.sequence
        aggregate["expires"] = window + KEEP
        try:
            if item is None:
                aggregates.put(aggregate, condition={"metric": {"not_exists": True}})
            else:
                aggregates.put(aggregate, if_version=item.version)
            return
        except nimbus.ConditionFailed:
            continue  # the other partition updated this window first: fold into its version


@app.http("GET", "/aggregates", uses=[aggregates])
def latest(request: nimbus.Request) -> dict[str, Any]:
    """The windows of the last `minutes` (default 15) of every metric, oldest first."""
    try:
        minutes = float(request.query.get("minutes", "15"))
    except ValueError:
        raise nimbus.BadRequest("minutes must be a number") from None
    since = time.time() - minutes * 60
    metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in aggregates.scan_all(filter={"window": {">=": since - WINDOW}}):
        metrics[item.data["metric"]].append(rollup.summary(item.data))
    return {
        "window_seconds": WINDOW,
        "metrics": {
            name: sorted(w, key=lambda w: w["window"]) for name, w in sorted(metrics.items())
        },
    }


@app.http("GET", "/")
def page(request: nimbus.Request) -> nimbus.Response:
    return nimbus.Response(PAGE.read_text(), headers={"content-type": "text/html; charset=utf-8"})
