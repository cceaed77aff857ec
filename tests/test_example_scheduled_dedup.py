"""examples/scheduled-dedup end to end: a schedule merges duplicate customers in a table.

The example runs every 15 minutes; the test runs a copy whose manifest says `rate(2 seconds)`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "scheduled-dedup"
EVERY_15_MINUTES = "cron(0/15 * * * ? *)"

Launch = Callable[..., Platform]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A copy of the example whose job runs every 2 seconds."""
    target = tmp_path / "scheduled-dedup"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = target / "nimbus.yaml"
    text = manifest.read_text()
    assert f'expression: "{EVERY_15_MINUTES}"' in text
    manifest.write_text(text.replace(EVERY_15_MINUTES, "rate(2 seconds)"))
    return target


def add(platform: Platform, **customer: str) -> dict[str, Any]:
    response = platform.http.post("/customers", json=customer)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/customers/{created['id']}"
    return created


def listing(platform: Platform, **query: str) -> list[dict[str, Any]]:
    response = platform.http.get("/customers", params=query)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["customers"]
    return found


def test_the_schedule_merges_duplicates(launch: Launch, app_dir: Path) -> None:
    platform = launch(app_dir, "--no-reload")
    # Added one after the other, so oldest first. The job may run between any two of them:
    # merging a group in steps gives what merging it at once gives.
    ada = add(platform, name="Ada Lovelace", email="ada@example.com", city="London")
    ada_2 = add(platform, name="Ada L.", email=" ADA@Example.com ", phone="+44 20 7946 0000")
    grace = add(platform, name="Grace Hopper", email="grace@example.org")
    ada_3 = add(platform, name="Ada", email="ada+news@example.com", phone="+33 1", city="Paris")
    alan = add(platform, name="Alan Turing", email="alan@example.net")
    alan_2 = add(platform, name="A. M. Turing", email="Alan@EXAMPLE.net", city="Wilmslow")
    assert ada_2["email"] == "ADA@Example.com"  # stored as given (trimmed), matched normalised
    assert ada_3["email_key"] == ada["email_key"] == "ada@example.com"

    expected = [
        {
            **ada,
            "phone": "+44 20 7946 0000",  # from the older duplicate: ada_3's is not taken
            "merged_ids": sorted([ada_2["id"], ada_3["id"]]),
        },
        grace,
        {**alan, "city": "Wilmslow", "merged_ids": [alan_2["id"]]},
    ]
    platform.wait_for(lambda: listing(platform) == expected, "the duplicates merged")

    ticks = [
        record
        for record in platform.cli_json("invocations", "merge-duplicates")
        if record["trigger"] == "schedule:rate(2 seconds)"
    ]
    assert ticks
    assert {record["outcome"] for record in ticks} == {"success"}

    for gone in (ada_2, ada_3, alan_2):
        assert platform.http.get(f"/customers/{gone['id']}").status_code == 404
    assert platform.http.get(f"/customers/{ada['id']}").json() == expected[0]
    assert listing(platform, email="ADA+anything@example.com") == [expected[0]]

    # Idempotent: running the job now finds nothing to do and changes nothing.
    result = platform.cli_json("invoke", "merge-duplicates")
    assert result["result"] == {"merged": 0, "removed": 0}
    assert listing(platform) == expected

    # A new duplicate of a merged customer is merged into it by a later tick.
    ada_4 = add(platform, name="Countess of Lovelace", email="ada@EXAMPLE.com")
    expected[0]["merged_ids"] = sorted([ada_2["id"], ada_3["id"], ada_4["id"]])
    platform.wait_for(lambda: listing(platform) == expected, "the new duplicate merged")


def test_running_the_job_on_demand(launch: Launch, tmp_path: Path) -> None:
    # The example as it is: its schedule fires every 15 minutes, so `invoke` runs the job now.
    platform = launch(EXAMPLE, "--no-reload", data_dir=tmp_path / "data")
    first = add(platform, name="Edsger Dijkstra", email="ewd@example.nl")
    second = add(platform, name="E. W. Dijkstra", email="EWD@example.nl", city="Austin")

    result = platform.cli_json("invoke", "merge-duplicates")
    assert result["outcome"] == "success", result
    assert result["result"] in ({"merged": 1, "removed": 1}, {"merged": 0, "removed": 0})
    merged = {**first, "city": "Austin", "merged_ids": [second["id"]]}
    assert listing(platform) == [merged]
    assert platform.cli_json("invoke", "merge-duplicates")["result"] == {"merged": 0, "removed": 0}


BAD_CUSTOMERS = [
    (b"{oops", "not valid JSON"),
    (b"[]", "JSON object"),
    (b'{"email": "x@example.com"}', "'name' is required"),
    (b'{"name": "X"}', "'email' is required"),
    (b'{"name": " ", "email": "x@example.com"}', "'name' must be a non-empty string"),
    (b'{"name": "X", "email": "not an address"}', "is not an e-mail address"),
    (b'{"name": "X", "email": "x@example.com", "city": 7}', "'city' must be"),
    (b'{"name": "X", "email": "x@example.com", "vip": true}', "unknown fields: vip"),
]


def test_bad_customers_are_refused(launch: Launch, tmp_path: Path) -> None:
    platform = launch(EXAMPLE, "--no-reload", data_dir=tmp_path / "data")
    for body, message in BAD_CUSTOMERS:
        response = platform.http.post(
            "/customers", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.text)
    assert listing(platform) == []
    assert platform.http.get("/customers/nobody").status_code == 404


def test_the_manifest_says_every_15_minutes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nimbus", "spec", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["functions"]["merge-duplicates"]
    assert job["triggers"] == [
        {
            "type": "schedule",
            "expression": EVERY_15_MINUTES,
            "timezone": "UTC",
            "missed": "once",
            "payload": None,
        }
    ]
    assert job["uses"] == ["customers"]
    assert job["max_instances"] == 1
