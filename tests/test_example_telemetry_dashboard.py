"""examples/telemetry-dashboard end to end: readings posted over HTTP flow through the stream
into per-window aggregates (count, sum, min, max, mean, p95 within 1%), shown as JSON and on
the example's own page in Chromium. The roll-up's percentile sketch is checked on its own."""

from __future__ import annotations

import importlib.util
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "telemetry-dashboard"
WINDOW = 10
Launch = Callable[..., Platform]


def load_rollup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rollup", EXAMPLE / "rollup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rollup = load_rollup()


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def close(found: float, exact: float) -> bool:
    return math.isclose(found, exact, rel_tol=rollup.ACCURACY, abs_tol=1e-9)


@given(
    st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.95, 0.99]),
)
def test_the_sketch_answers_within_its_accuracy(values: list[float], q: float) -> None:
    aggregate = rollup.empty("m", 0, WINDOW)
    for value in values:
        rollup.add(aggregate, value, "s")
    assert aggregate["count"] == len(values)
    assert aggregate["min"] == min(values) and aggregate["max"] == max(values)
    assert close(rollup.quantile(aggregate, q), nearest_rank(values, q))


def readings(base: int) -> list[dict[str, Any]]:
    """Two metrics from three sources over two windows, in a shuffled order."""
    rng = random.Random(7)
    made = [
        {
            "source": f"web-{rng.randint(1, 3)}",
            "metric": metric,
            "value": round(
                rng.lognormvariate(3, 0.8) if metric == "latency_ms" else rng.random(), 3
            ),
            "time": base + rng.choice([0, WINDOW]) + rng.random() * (WINDOW - 0.01),
        }
        for metric in ("latency_ms", "cpu")
        for _ in range(150)
    ]
    rng.shuffle(made)
    return made


def expected(sent: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    windows: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in sent:
        windows[r["metric"]][int(r["time"] // WINDOW * WINDOW)].append(r)
    return {
        metric: {
            window: {
                "count": len(rs),
                "sum": sum(r["value"] for r in rs),
                "min": min(r["value"] for r in rs),
                "max": max(r["value"] for r in rs),
                "p95": nearest_rank([r["value"] for r in rs], 0.95),
                "sources": sorted({r["source"] for r in rs}),
            }
            for window, rs in by_window.items()
        }
        for metric, by_window in windows.items()
    }


def matches(found: dict[str, Any], want: dict[str, dict[int, dict[str, Any]]]) -> bool:
    got = {m: {w["window"]: w for w in ws} for m, ws in found["metrics"].items()}
    if {m: set(ws) for m, ws in got.items()} != {m: set(ws) for m, ws in want.items()}:
        return False
    for metric, by_window in want.items():
        for window, w in by_window.items():
            g = got[metric][window]
            if g["count"] != w["count"]:
                return False
            assert (g["min"], g["max"], g["sources"]) == (w["min"], w["max"], w["sources"])
            assert math.isclose(g["sum"], w["sum"], rel_tol=1e-9)
            assert math.isclose(g["mean"], w["sum"] / w["count"], rel_tol=1e-9)
            assert close(g["p95"], w["p95"])
    return True


BAD = [
    ([{"source": "ghost", "metric": "cpu", "value": 1.0}, {"source": "x"}], "metric must be"),
    ({"source": "", "metric": "cpu", "value": 1}, "source must be a string"),
    ({"source": "ghost", "metric": "cpu", "value": True}, "value must be a number"),
    ({"source": "ghost", "metric": "cpu", "value": 1, "time": "now"}, "time must be a number"),
    ([1, 2], "a reading is a JSON object"),
    ([], "send 1 to 1000 readings"),
]


def test_telemetry_is_aggregated_and_shown(launch: Launch, browser: WebDriver) -> None:
    platform = launch(EXAMPLE, "--no-reload")
    http = platform.http
    base = int(time.time() // WINDOW * WINDOW) - 6 * WINDOW
    sent = readings(base)

    for body, problem in BAD:  # refused whole: nothing of it is stored
        refused = http.post("/telemetry", json=body)
        assert refused.status_code == 400, refused.text
        assert problem in refused.text
    assert http.post("/telemetry", content=b"not json").status_code == 400

    for start in range(0, len(sent), 100):
        accepted = http.post("/telemetry", json=sent[start : start + 100])
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"accepted": len(sent[start : start + 100])}
    want = expected(sent)
    platform.wait_for(
        lambda: matches(http.get("/aggregates").json(), want), "the aggregates of every reading"
    )
    found = http.get("/aggregates").json()
    assert all("ghost" not in w["sources"] for ws in found["metrics"].values() for w in ws)

    browser.get(f"{platform.url}/")
    cards = WebDriverWait(browser, 60).until(
        lambda b: (
            len(found := b.find_elements(By.CSS_SELECTOR, "section[data-metric]")) == 2 and found
        )
    )
    for card in cards:
        metric = card.get_attribute("data-metric")
        assert metric in want
        for window, w in want[metric].items():
            row = card.find_element(By.CSS_SELECTOR, f'tr[data-window="{window}"]')
            cells = row.text.split()
            assert cells[1] == str(w["count"])
            assert cells[-1] == str(len(w["sources"]))
        assert card.find_elements(By.CSS_SELECTOR, "svg polyline")
