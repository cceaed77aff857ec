"""The web dashboard in real headless Chromium against a real `nimbus up`: what each panel shows
after real invocations, a dead letter re-driven through the page, the token kept out of URLs,
and screenshots read back with OCR (content, not pixels)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import APPS, Platform, start_platform

LIMIT = 60.0  # against hangs, not a timing assertion


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(
        APPS / "dashboard_app.py", tmp_path_factory.mktemp("dashboard"), "--no-reload"
    )
    yield running
    running.stop()
    running.assert_no_loop_errors()


def open_dashboard(browser: WebDriver, platform: Platform) -> None:
    browser.get(f"{platform.url}/_nimbus/dashboard#token={platform.token}")
    wait_for_text(browser, "#functions", "greet")


def wait_for(browser: WebDriver, condition: Callable[[], Any], what: str) -> Any:
    """Poll the page (clicking Refresh, not waiting for the page's own timer) until true."""

    def check(_: WebDriver) -> Any:
        try:
            return condition()
        except Exception:  # the panel is being redrawn: its old elements are gone
            return False

    try:
        return WebDriverWait(browser, LIMIT, poll_frequency=0.2).until(check)
    except Exception:
        shows = browser.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"gave up waiting for {what}; the page shows:\n{shows}") from None


def wait_for_text(browser: WebDriver, selector: str, text: str) -> WebElement:
    def shown() -> WebElement | None:
        found = browser.find_element(By.CSS_SELECTOR, selector)
        return found if text in found.text else None

    found: WebElement = wait_for(browser, shown, f"{text!r} in {selector}")
    return found


def refresh(browser: WebDriver) -> None:
    browser.find_element(By.ID, "refresh").click()


def ocr(png: bytes) -> str:
    import pytesseract

    return str(pytesseract.image_to_string(Image.open(io.BytesIO(png))))


def greet(platform: Platform, name: str) -> None:
    assert platform.http.get(f"/greet/{name}").status_code == 200


def test_the_page_holds_no_data_and_the_api_wants_the_token(
    platform: Platform, browser: WebDriver
) -> None:
    greet(platform, "nobody")
    anonymous = httpx.Client(base_url=platform.url)
    page = anonymous.get("/_nimbus/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "greet" not in page.text
    for asset in ("dashboard.js", "api.js", "dashboard.css"):
        assert anonymous.get(f"/_nimbus/dashboard/{asset}").status_code == 200
    assert anonymous.get("/_nimbus/dashboard/platform.json").status_code == 401
    assert anonymous.get("/_nimbus/series").status_code == 401
    anonymous.close()

    browser.get(f"{platform.url}/_nimbus/dashboard")  # no token: a sign-in form, no data
    wait_for_text(browser, "#login", "Sign in")
    assert "greet" not in browser.find_element(By.TAG_NAME, "body").text
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for_text(browser, "#login-problem", "did not accept the token")
    browser.find_element(By.ID, "token").send_keys(platform.token)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for_text(browser, "#functions", "GET /greet/{name}")


def test_functions_and_charts_after_real_invocations(
    platform: Platform, browser: WebDriver
) -> None:
    for name in ("ada", "grace", "alan"):
        greet(platform, name)
    link = platform.cli("dashboard", check=True).stdout.strip()
    assert link == f"{platform.url}/_nimbus/dashboard#token={platform.token}"
    browser.get(link)
    wait_for_text(browser, "#functions", "GET /greet/{name}")
    assert platform.token not in browser.current_url  # taken from the address bar at once
    rows = {
        row.get_attribute("data-function"): row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#functions tr[data-function]")
    }
    assert set(rows) == {"greet", "place_order", "settle"}
    assert "invoke only" in rows["settle"]
    assert "POST /orders" in rows["place_order"]

    greeted = platform.http.get("/_nimbus/invocations?function=greet").json()
    cold = sum(record["cold_start"] for record in greeted)
    Select(browser.find_element(By.ID, "function-filter")).select_by_value("greet")
    wait_for_text(browser, "#charts", f"Invocations — {len(greeted)} in the window")
    charts = browser.find_element(By.ID, "charts")
    assert f"Cold starts — {cold} in the window" in charts.text
    assert "Concurrency — peak 1" in charts.text
    assert "Errors — 0 in the window" in charts.text
    lines = charts.find_elements(By.CSS_SELECTOR, "g.series polyline, g.series circle")
    assert lines, "the charts drew no line"

    text = ocr(browser.get_screenshot_as_png())
    for heading in ("Functions", "Activity", "greet", "Invocations"):
        assert heading in text, f"{heading!r} not read on the screenshot:\n{text}"
    chart = Image.open(io.BytesIO(charts.screenshot_as_png)).convert("RGB")
    colours = chart.getcolors(maxcolors=1_000_000) or []
    blue = sum(n for n, (r, g, b) in colours if b > 180 and r < 120 and g < 160)
    assert blue > 50, "no line of the first series' colour in the charts"


def test_an_error_with_its_logs_and_trace(platform: Platform, browser: WebDriver) -> None:
    assert platform.http.post("/orders", json={"quantity": 2}).status_code == 200
    failed = platform.http.post("/orders", json={"quantity": 0})
    assert failed.status_code == 502
    open_dashboard(browser, platform)
    Select(browser.find_element(By.ID, "function-filter")).select_by_value("place_order")
    wait_for_text(browser, "#charts", "Errors — 1 in the window")
    Select(browser.find_element(By.ID, "outcome-filter")).select_by_value("error")

    def errors_only() -> list[WebElement]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#invocations tr[data-id]")
        filtered = all("outcome-error" in (row.get_attribute("class") or "") for row in rows)
        return rows if rows and filtered else []

    rows = wait_for(browser, errors_only, "the list filtered to errors")
    assert len(rows) == 1  # the successful order is filtered out
    assert "ValueError: the quantity must be positive" in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "button.link").click()
    detail = wait_for_text(browser, "#detail", "order for 0 items")
    assert "ValueError: the quantity must be positive" in detail.text
    assert "Outcome\nerror" in detail.text
    spans = wait_for(
        browser,
        lambda: browser.find_elements(By.CSS_SELECTOR, "#detail ol.trace li"),
        "the invocation's trace",
    )
    names = [span.find_element(By.CSS_SELECTOR, ".span-name").text for span in spans]
    assert names[0] == "POST /orders ✗"  # the HTTP request (a 502), the invocation under it
    assert "place_order ✗" in names
    assert any(name.startswith("handler") for name in names)


def test_a_dead_letter_is_shown_and_redriven_from_the_page(
    platform: Platform, browser: WebDriver, tmp_path: Path
) -> None:
    switch = tmp_path / "ledger-open"
    accepted = platform.http.post(
        "/_nimbus/functions/settle/invoke?mode=async", json={"switch": str(switch)}
    )
    assert accepted.status_code == 202
    letters = platform.wait_for(
        lambda: [d for d in platform.http.get("/_nimbus/dlq").json() if d["function"] == "settle"],
        "the dead letter",
    )
    letter_id = letters[0]["id"]
    open_dashboard(browser, platform)
    row = wait_for_text(browser, f'#dead-letters tr[data-letter="{letter_id}"]', "settle")
    assert "RuntimeError: the ledger is closed" in row.text
    row.find_element(By.CSS_SELECTOR, "button.link").click()
    wait_for_text(browser, "#dead-letters .letter-detail", str(switch))

    switch.touch()
    row.find_element(By.CSS_SELECTOR, "button.redrive").click()
    status = wait_for_text(browser, "#dead-letters .status", f"Re-drove {letter_id} as job")
    job_id = status.text.rsplit(" ", 1)[-1].rstrip(".")
    job = platform.wait_for(
        lambda: (
            (j := platform.http.get(f"/_nimbus/jobs/{job_id}").json())["status"] == "succeeded"
            and j
        ),
        "the re-driven job to succeed",
    )
    assert job["result"] == "settled"
    assert all(d["id"] != letter_id for d in platform.http.get("/_nimbus/dlq").json())
    refresh(browser)
    wait_for(
        browser,
        lambda: not browser.find_elements(By.CSS_SELECTOR, f'tr[data-letter="{letter_id}"]'),
        "the dead letter to leave the page",
    )


def test_usage_and_cost(platform: Platform, browser: WebDriver) -> None:
    open_dashboard(browser, platform)
    usage = platform.http.get("/_nimbus/usage")
    if usage.status_code == 404:  # a platform without metering
        wait_for_text(browser, "#usage", "not available on this platform yet")
        return
    total = wait_for_text(browser, "#usage", "Total ")  # the amount moves on as time passes
    assert usage.json()["currency"] in total.text
    row = wait_for_text(browser, '#usage tr[data-usage="function:greet"]', "greet")
    assert row.text.split()[:2] == ["function", "greet"]


def test_series_api(platform: Platform) -> None:
    greet(platform, "series")
    found = platform.http.get("/_nimbus/series", params={"window": 600, "buckets": 10}).json()
    assert found["buckets"] == 10 and found["step"] == 60.0 and found["complete"]
    assert set(found["functions"]) == {"greet", "place_order", "settle"}
    records = platform.http.get("/_nimbus/invocations?function=greet&limit=1000").json()
    in_window = [r for r in records if r["started_at"] >= found["start"]]
    assert sum(found["functions"]["greet"]["invocations"]) == len(in_window)
    assert found["functions"]["greet"]["invocations"][-1] >= 1  # the last bucket holds now
    one = platform.http.get("/_nimbus/series", params={"function": "greet"}).json()
    assert list(one["functions"]) == ["greet"] and one["buckets"] == 60


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"window": "soon"}, 400, "window must be a whole number"),
        ({"buckets": "0"}, 400, "buckets must be a whole number from 1 to 360"),
        ({"window": "10", "buckets": "60"}, 400, "window must be from 60"),
        ({"window": str(8 * 86400)}, 400, "window must be a whole number from 1 to 604800"),
        ({"function": "nope"}, 404, "no function named 'nope'"),
    ],
)
def test_series_api_refuses_bad_input(
    platform: Platform, query: dict[str, str], status: int, message: str
) -> None:
    response = platform.http.get("/_nimbus/series", params=query)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_the_dashboard_files_ship_with_the_package() -> None:
    from nimbus.edge import dashboard

    folder = Path(dashboard.__file__).parent / "dashboard_static"
    assert sorted(p.name for p in folder.iterdir()) == sorted(dashboard.ASSETS)
