"""Structured logs on a real `nimbus up`: the JSON shape of a line (trace id of the invocation,
fields given with `extra=`), each filter of `nimbus logs` and the logs API, refusals of bad
filters, and retention by size that drops the oldest lines first."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from conftest import APPS, Platform

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def lines(platform: Platform, *args: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = platform.cli_json("logs", "--limit", "1000", *args)
    return result


def test_a_line_is_structured_with_its_trace_and_fields(launch: Callable[..., Platform]) -> None:
    platform = launch(APPS / "logs_app.py", "--no-reload")
    response = platform.http.get("/checkout", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    found = platform.wait_for(
        lambda: len(got := lines(platform, "checkout")) >= 3 and got, "the checkout's logs"
    )
    started = next(line for line in found if line["message"] == "checkout started")
    assert set(started) == {
        "seq", "time", "function", "request_id", "level", "message", "trace_id", "extra",
    }  # fmt: skip
    assert started["function"] == "checkout" and started["level"] == "INFO"
    assert started["trace_id"] == TRACE_ID  # the invocation continues the caller's trace
    assert started["extra"]["user"] == "u-1" and started["extra"]["items"] == 3
    assert started["extra"]["when"].startswith("<object object")  # not JSON: its str
    assert {line["trace_id"] for line in found} == {TRACE_ID}
    assert {line["request_id"] for line in found} == {started["request_id"]}
    assert started["request_id"] == response.headers["x-nimbus-request-id"]
    printed = next(line for line in found if line["message"] == "printed line")
    assert printed["extra"] == {} and printed["level"] == "INFO"
    text = platform.cli("logs", "checkout", check=True).stdout
    assert "checkout started user=u-1 items=3" in text


def test_each_filter(launch: Callable[..., Platform]) -> None:
    platform = launch(APPS / "logs_app.py", "--no-reload")
    assert platform.http.get("/checkout").status_code == 200
    platform.http.post("/_nimbus/functions/failing/invoke", json=None)
    platform.wait_for(lambda: lines(platform, "--grep", "no such cart"), "the failure's logs")
    middle = time.time()
    platform.wait_for(lambda: time.time() > middle + 0.01, "the clock to move on")
    platform.invoke("chatty", {"first": 0, "count": 2})

    warnings = lines(platform, "--level", "warning")
    assert {line["level"] for line in warnings} == {"WARNING", "ERROR"}
    assert {"stock is low", "about to fail"} <= {line["message"] for line in warnings}
    assert {line["level"] for line in lines(platform, "--level", "ERROR")} == {"ERROR"}

    only = lines(platform, "--function", "failing")
    assert only and {line["function"] for line in only} == {"failing"}
    assert lines(platform, "failing") == only  # the positional form too

    grepped = lines(platform, "--grep", "stock")
    assert [line["message"] for line in grepped] == ["stock is low"]
    assert lines(platform, "--grep", "STOCK") == []  # as grep: case matters

    since = str(middle)
    recent = lines(platform, "--since", since)
    assert recent and {line["function"] for line in recent} == {"chatty"}
    before = lines(platform, "--until", since)
    assert "chatty" not in {line["function"] for line in before}
    assert {"checkout", "failing"} <= {line["function"] for line in before}
    assert lines(platform, "--since", "1h", "--function", "chatty") == recent

    api = platform.http.get("/_nimbus/logs", params={"level": "ERROR", "function": "failing"})
    assert api.status_code == 200 and {e["level"] for e in api.json()} == {"ERROR"}


def test_bad_filters_are_refused_clearly(launch: Callable[..., Platform]) -> None:
    platform = launch(APPS / "logs_app.py", "--no-reload")
    for args, message in (
        (("--level", "LOUD"), "level 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
        (("--since", "last tuesday"), "since 'last tuesday' is not a time"),
        (("--until", "soon"), "until 'soon' is not a time"),
    ):
        result = platform.cli("logs", *args)
        assert result.returncode != 0
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.stderr
    response = platform.http.get("/_nimbus/logs", params={"grep": "x" * 2000})
    assert response.status_code == 400


def test_logs_are_kept_within_their_size_oldest_dropped_first(
    launch: Callable[..., Platform],
) -> None:
    platform = launch(APPS / "logs_app.py", "--no-reload", "--log-limit", "20KB")
    for first in range(0, 300, 100):
        assert platform.invoke("chatty", {"first": first, "count": 100})["error"] is None

    def trimmed() -> list[dict[str, Any]] | None:
        kept = [line for line in lines(platform, "chatty") if line["message"].startswith("line")]
        return kept if kept and not kept[0]["message"].startswith("line 00000") else None

    kept = platform.wait_for(trimmed, "the oldest lines to be dropped")
    numbers = [int(line["message"].split()[1]) for line in kept]
    assert numbers == list(range(numbers[0], 300))  # what is kept is the newest, in order
    size = sum(len(json.dumps(line)) for line in kept)
    assert size <= 20_000 * 1.5  # about the limit (its count of a line's bytes is not JSON's)
    assert len(kept) >= 50  # and not much less: it trims to 90 % of the limit


def test_a_bad_log_limit_stops_nimbus_up(launch: Callable[..., Platform]) -> None:
    try:
        launch(APPS / "logs_app.py", "--no-reload", "--log-limit", "a lot")
    except AssertionError as error:
        assert "--log-limit 'a lot' is not a size" in str(error)
        assert "Traceback" not in str(error)
    else:
        raise AssertionError("nimbus up started with --log-limit 'a lot'")
