"""Usage metering, the cost model and budgets, on a real `nimbus up` (and the pure parts with
properties): GB-seconds and billed ms of real invocations, requests and messages of every
resource kind, stored bytes sampled, costs under the default and another price sheet, the
`--by` views, and a budget that notifies once and throttles until it is raised."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import APPS, Platform
from nimbus.backends.embedded.sizes import EmbeddedSizes
from nimbus.errors import InvalidRequest
from nimbus.ops.store import Store
from nimbus.ops.time_window import byte_size, moment
from nimbus.ops.usage.ledger import DAY, HOUR, HOURLY_DAYS, Ledger
from nimbus.ops.usage.measure import kinesis_gib, sqs_requests
from nimbus.ops.usage.periods import period_bounds
from nimbus.ops.usage.prices import DEFAULT_SHEET, load_sheet, parse_sheet

LAMBDA_REQUEST = 0.20 / 1_000_000
LAMBDA_GB_SECOND = 0.0000166667
OTHER_SHEET = """
name: Example cloud
currency: EUR
prices:
  function:
    requests: {price: 1.0, per: 1000000}
    gb_seconds: {price: 0.00002}
  queue:
    requests: {price: 2.0, per: 1000000}
"""


def usage(platform: Platform, **params: str) -> dict[str, Any]:
    response = platform.http.get("/_nimbus/usage", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["rows"]}


def row_where(
    platform: Platform, name: str, ready: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        row = rows(usage(platform)).get(name)
        return row if row is not None and ready(row) else None

    result: dict[str, Any] = platform.wait_for(found, what)
    return result


def test_invocations_and_service_calls_are_metered(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    platform = launch(APPS / "usage_app.py", "--no-reload", "--usage-sample-interval", "1")
    work = platform.invoke("work")
    assert work["error"] is None, work
    computed = [platform.invoke("compute", 200_000) for _ in range(2)]
    platform.cli("send", "orders", "from the CLI", check=True)  # the platform API is metered too
    platform.cli("send", "inbox", "for the trigger", check=True)
    check_functions(platform, work, computed)
    check_resources(platform, work)
    check_another_sheet(platform, tmp_path)


def check_functions(
    platform: Platform, work: dict[str, Any], computed: list[dict[str, Any]]
) -> None:
    # per invocation: one request and billed ms (1 ms steps) times memory, as Lambda bills
    report = usage(platform, by="function")
    assert {row["kind"] for row in report["rows"]} == {"function"}
    functions = rows(report)
    assert functions["work"]["usage"]["requests"] == 1
    assert functions["work"]["usage"]["billed_ms"] == work["billed_ms"]
    assert functions["work"]["usage"]["gb_seconds"] == pytest.approx(
        work["billed_ms"] / 1000 * 256 / 1024
    )
    billed = sum(record["billed_ms"] for record in computed)
    compute = functions["compute"]
    assert compute["usage"]["requests"] == 2
    assert compute["usage"]["billed_ms"] == billed
    assert compute["usage"]["gb_seconds"] == pytest.approx(billed / 1000 * 512 / 1024)
    assert compute["cost"] == pytest.approx(
        2 * LAMBDA_REQUEST + billed / 1000 * 0.5 * LAMBDA_GB_SECOND
    )


def check_resources(platform: Platform, work: dict[str, Any]) -> None:
    # per resource: requests (SQS counts each 64 KiB), messages, records, items, objects
    resources = rows(usage(platform, by="resource"))
    assert "work" not in resources
    orders = resources["orders"]
    assert orders["kind"] == "queue"
    assert orders["operations"] == {"receive": 1, "send": 3}
    assert orders["usage"]["messages_sent"] == 3
    assert orders["usage"]["messages_received"] == work["result"]["received"]
    assert orders["usage"]["requests"] == 1 + 2 + 1 + 1  # small, big (two chunks), receive, CLI
    assert orders["cost"] == pytest.approx(5 * 0.40 / 1_000_000)
    jobs = resources["jobs"]
    assert jobs["kind"] == "fifo_queue"
    assert jobs["cost"] == pytest.approx(0.50 / 1_000_000)
    assert resources["events"]["usage"]["requests"] == 1
    clicks = resources["clicks"]["usage"]
    assert clicks["records"] == 1
    assert clicks["ingested_gb"] == pytest.approx(2048 / 2**30)
    carts = resources["carts"]["usage"]
    assert (carts["write_units"], carts["read_units"]) == (1, 1)
    assert resources["files"]["usage"]["write_requests"] == 1

    # deliveries: the subscriber's invocation; storage: sampled, accruing GB-months
    row_where(platform, "events", lambda r: r["usage"]["deliveries"] >= 1, "a delivery")
    inbox = row_where(
        platform, "inbox", lambda r: r["usage"]["deliveries"] >= 1, "the queue trigger's batch"
    )
    assert inbox["usage"]["messages_received"] == 1  # the trigger's receives are requests too
    assert inbox["usage"]["requests"] >= 2
    files = row_where(
        platform, "files", lambda r: r["usage"]["gb_months"] > 0, "the bucket's storage"
    )
    assert files["stored_bytes"] == 5000
    assert files["costs"]["gb_months"] == pytest.approx(files["usage"]["gb_months"] * 0.023)


def check_another_sheet(platform: Platform, tmp_path: Path) -> None:
    # the same usage under another sheet, side by side
    other = tmp_path / "other.yaml"
    other.write_text(OTHER_SHEET)
    compared = json.loads(
        platform.cli("usage", "--json", "--prices", str(other), check=True).stdout
    )
    assert compared["currency"] == "USD"
    assert compared["compare"]["currency"] == "EUR"
    again = {row["name"]: row for row in compared["rows"]}
    prices = {row["name"]: row for row in compared["compare"]["rows"]}
    expected = again["compute"]["usage"]["requests"] * 1e-6 + (
        again["compute"]["usage"]["gb_seconds"] * 0.00002
    )
    assert prices["compute"]["cost"] == pytest.approx(expected)
    assert prices["orders"]["cost"] == pytest.approx(again["orders"]["usage"]["requests"] * 2e-6)
    assert prices["carts"]["cost"] == 0  # the other sheet does not price tables
    assert compared["compare"]["total"] == pytest.approx(
        sum(row["cost"] for row in compared["compare"]["rows"])
    )
    table = platform.cli("usage", "--prices", str(other), check=True).stdout
    assert "Example cloud (EUR)" in table and "compute" in table


def test_bad_input_is_refused_clearly(launch: Callable[..., Platform], tmp_path: Path) -> None:
    platform = launch(APPS / "usage_app.py", "--no-reload")
    refused = platform.cli("usage", "--since", "yesterday")
    assert refused.returncode != 0
    assert "is not a time" in refused.stderr and "Traceback" not in refused.stderr
    response = platform.http.get("/_nimbus/usage", params={"by": "team"})
    assert response.status_code == 400
    assert "by must be one of all, function, resource" in response.json()["error"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncurrency: USD\nprices:\n  queue:\n    requets: {price: 1}\n")
    wrong = platform.cli("usage", "--prices", str(bad))
    assert wrong.returncode != 0 and "queue has no metric 'requets'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    started = subprocess.run(
        [sys.executable, "-m", "nimbus", "up", str(APPS / "usage_app.py"), "--port", "0",
         "--data-dir", str(tmp_path / "never"), "--prices", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    assert "requets" in started.stderr and "Traceback" not in started.stderr
    assert not (tmp_path / "never" / "platform.db").exists()  # nothing started


def test_no_metering_counts_nothing(launch: Callable[..., Platform]) -> None:
    platform = launch(APPS / "usage_app.py", "--no-reload", "--no-metering")
    assert platform.invoke("compute", 10)["error"] is None
    assert usage(platform)["rows"] == []


BUDGET_APP = """
import json, os
import nimbus

app = nimbus.App("budgeted")
ENV = {{"OUT": os.environ.get("NIMBUS_TEST_OUT", "")}}


@app.http("GET", "/cheap", environment=ENV,
          budget=nimbus.Budget(amount={amount}, period="day", action="throttle"))
def cheap(request):
    return {{"ok": True}}


@app.on_topic(nimbus.PLATFORM_EVENTS, environment=ENV,
              pattern={{"type": ["nimbus.budget.exceeded", "nimbus.function.deployed"]}})
def alerts(event):
    line = json.dumps({{"type": event.type, "data": event.data}}) + "\\n"
    with open(os.path.join(os.environ["OUT"], "alerts.jsonl"), "a") as out:
        out.write(line)
{marker}
"""
MARKER = """

@app.function()
def marker(event):
    return None
"""


def alerts(out: Path) -> list[dict[str, Any]]:
    path = out / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def test_a_budget_notifies_once_and_throttles_until_raised(
    launch: Callable[..., Platform], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("NIMBUS_TEST_OUT", str(out))
    app = tmp_path / "budgeted.py"
    app.write_text(BUDGET_APP.format(amount="0.000001", marker=""))  # about 5 requests
    platform = launch(app, "--no-reload")

    refused = platform.wait_for(
        lambda: (r := platform.http.get("/cheap")).status_code == 429 and r, "the budget to close"
    )
    assert "over its budget of 1e-06 USD per day" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    crossed = platform.wait_for(
        lambda: [a for a in alerts(out) if a["type"] == "nimbus.budget.exceeded"], "the alert"
    )[0]["data"]
    assert crossed["function"] == "cheap" and crossed["app"] == "budgeted"
    assert crossed["action"] == "throttle" and crossed["period"] == "day"
    assert crossed["spent"] >= crossed["amount"] == 0.000001

    # asynchronous work waits while the function is closed: it cannot have run
    accepted = platform.http.post("/_nimbus/functions/cheap/invoke?mode=async", json={})
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    budget = usage(platform)["budgets"][0]
    assert budget["target"] == "cheap" and budget["exceeded"] and budget["refused"] >= 1
    assert platform.http.get(f"/_nimbus/jobs/{job_id}").json()["status"] != "succeeded"

    # raising the budget opens the function at once; the alert was not repeated
    app.write_text(BUDGET_APP.format(amount="1000", marker=MARKER))
    platform.cli("deploy", str(app), check=True)
    assert platform.http.get("/cheap").status_code == 200
    platform.wait_for(
        lambda: platform.http.get(f"/_nimbus/jobs/{job_id}").json()["status"] == "succeeded",
        "the waiting job to run",
    )
    platform.wait_for(
        lambda: any(a["data"].get("function") == "marker" for a in alerts(out)),
        "the marker's deploy event (after any repeated budget event)",
    )
    exceeded = [a for a in alerts(out) if a["type"] == "nimbus.budget.exceeded"]
    assert len(exceeded) == 1


# the pure parts, with properties


@given(st.integers(min_value=0, max_value=10 * 2**20))
def test_sqs_counts_a_request_per_64_kib(size: int) -> None:
    requests = sqs_requests(size)
    assert requests >= 1
    assert (requests - 1) * 65536 < max(size, 1) <= requests * 65536


@given(st.integers(min_value=0, max_value=2**20))
def test_kinesis_rounds_records_up_to_a_kib(size: int) -> None:
    kib = kinesis_gib(size) * 2**30 / 1024
    assert kib == max(1, math.ceil(size / 1024))


@given(
    st.sampled_from(["function", "queue", "fifo_queue", "topic", "table", "bucket"]),
    st.dictionaries(st.sampled_from(["requests", "gb_seconds", "gb_months"]), st.floats(0, 1e9)),
    st.floats(0, 1000),
)
def test_costs_are_linear_in_usage(kind: Any, quantities: dict[str, float], k: float) -> None:
    sheet = load_sheet(DEFAULT_SHEET)
    scaled = sheet.costs(kind, {m: q * k for m, q in quantities.items()})
    for metric, cost in sheet.costs(kind, quantities).items():
        assert scaled[metric] == pytest.approx(cost * k)


def test_a_sheet_names_what_it_cannot_price() -> None:
    with pytest.raises(InvalidRequest, match="function has no metric 'cpu'"):
        parse_sheet(
            {"name": "x", "currency": "USD", "prices": {"function": {"cpu": {"price": 1}}}}, "t"
        )
    with pytest.raises(InvalidRequest, match="currency"):
        parse_sheet({"name": "x", "currency": "dollars"}, "t")


@given(st.floats(0, 4e9), st.sampled_from(["day", "month"]))
def test_periods_hold_the_moment_and_start_at_midnight(now: float, period: Any) -> None:
    start, end = period_bounds(period, now)
    assert start <= now < end
    assert start % 86400 == 0
    assert end - start == 86400 if period == "day" else 28 * 86400 <= end - start <= 31 * 86400


@given(st.integers(0, 10_000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_moments_ago(count: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert moment(f"{count}{unit}", 1e9, "since") == 1e9 - count * seconds


def test_sizes_and_times_refuse_what_they_cannot_read() -> None:
    assert byte_size("100MB", "x") == 100_000_000
    assert byte_size("2KiB", "x") == 2048
    assert moment("2026-01-31T00:00:00Z", 0, "x") == 1769817600
    with pytest.raises(InvalidRequest, match="is not a size"):
        byte_size("lots", "--log-limit")
    with pytest.raises(InvalidRequest, match="is not a time"):
        moment("soon", 0, "until")


Row = tuple[int, str, str, int]


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30 * 24 - 1),
            st.sampled_from(["function", "queue"]),
            st.sampled_from(["requests", "gb_seconds"]),
            st.integers(1, 1000),
        ),
        max_size=40,
    )
)
def test_rollups_keep_totals_and_bound_the_rows(tmp_path_factory: Any, added: list[Row]) -> None:
    """Hourly rows older than a week become daily rows: every total over whole days stays."""
    now = 100 * DAY + 5 * HOUR
    first = now - 30 * DAY

    async def run() -> None:
        store = Store(tmp_path_factory.mktemp("ledger"))
        try:
            ledger = Ledger(store.db)
            await ledger.add(
                (HOUR, int(first // HOUR * HOUR + hour * HOUR), kind, "f", metric, float(q))
                for hour, kind, metric, q in added
            )
            before = await ledger.totals(0, now + DAY)
            by_day = {
                d: await ledger.totals(d, d + DAY)
                for d in range(int(first // DAY) * DAY, int(now), DAY)
            }
            await ledger.roll_up(now)
            assert await ledger.totals(0, now + DAY) == before
            for day, totals in by_day.items():
                assert await ledger.totals(day, day + DAY) == totals
            hourly = await store.db.read(
                "SELECT MIN(start) AS oldest FROM usage WHERE span = ?", (HOUR,)
            )
            oldest = hourly[0]["oldest"]
            assert oldest is None or oldest >= (now // DAY - HOURLY_DAYS) * DAY
        finally:
            store.close()

    asyncio.run(run())


def test_usage_survives_a_restart(launch: Callable[..., Platform], tmp_path: Path) -> None:
    data = tmp_path / "kept"
    first = launch(APPS / "usage_app.py", "--no-reload", data_dir=data)
    first.invoke("compute", 10)
    first.stop()
    again = launch(APPS / "usage_app.py", "--no-reload", data_dir=data)
    assert rows(usage(again, since=str(time.time() - 3600)))["compute"]["usage"]["requests"] == 1


def test_stored_bytes_are_read_from_a_relative_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nimbus up` keeps its state in `.nimbus` by default: a relative folder."""
    monkeypatch.chdir(tmp_path)
    folder = Path(".nimbus")
    folder.mkdir()
    with sqlite3.connect(folder / "table.db") as db:
        db.execute("CREATE TABLE items (tbl TEXT, data BLOB)")
        db.execute("INSERT INTO items VALUES ('customers', x'00112233')")
    db.close()
    assert asyncio.run(EmbeddedSizes(folder).measure()) == {("table", "customers"): 4}
