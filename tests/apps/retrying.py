"""Functions that fail a given number of times (counted in a file), one per retry setting."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("retrying")


def _countdown(event: dict[str, Any]) -> int:
    """Fail the first `fail_times` attempts of this event, then succeed with the attempt number."""
    counter = Path(event["dir"]) / "attempts"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= event["fail_times"]:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


@app.function(failure=nimbus.FailurePolicy(retries=0, backoff=0.01))
def retries0(event: dict[str, Any]) -> int:
    return _countdown(event)


@app.function(failure=nimbus.FailurePolicy(retries=1, backoff=0.01))
def retries1(event: dict[str, Any]) -> int:
    return _countdown(event)


@app.function(failure=nimbus.FailurePolicy(retries=2, backoff=0.01))
def retries2(event: dict[str, Any]) -> int:
    return _countdown(event)


@app.function(failure=nimbus.FailurePolicy(retries=3, backoff=0.01))
def retries3(event: dict[str, Any]) -> int:
    return _countdown(event)


@app.function(max_instances=1, timeout=30)
def one_at_a_time(event: dict[str, Any]) -> dict[str, Any]:
    time.sleep(event.get("sleep", 0))
    return event


@app.function(failure=nimbus.FailurePolicy(retries=5, backoff=0.5, max_event_age=1))
def short_lived(event: Any) -> None:
    raise RuntimeError("always")


@app.function()
def pid(event: Any) -> int:
    return os.getpid()


@app.function(max_instances=1, timeout=30, failure=nimbus.FailurePolicy(max_event_age=1))
def expiring(event: dict[str, Any]) -> dict[str, Any]:
    time.sleep(event.get("sleep", 0))
    return event
