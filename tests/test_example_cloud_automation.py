"""examples/cloud-automation end to end: platform events drive functions that tag resources,
raise a throttled function's max_instances up to a ceiling and notify its owner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "cloud-automation"
CEILING = 4
Launch = Callable[..., Platform]


@pytest.fixture
def platform(launch: Launch) -> Platform:
    return launch(EXAMPLE, "--no-reload")


def crowd(platform: Platform, callers: int = 16) -> Counter[int]:
    """Call /search from many clients at once: the statuses they got."""

    def call(_: int) -> int:
        with httpx.Client(base_url=platform.url, timeout=60) as client:
            return client.get("/search", params={"q": "lamp", "seconds": "1"}).status_code

    with ThreadPoolExecutor(callers) as pool:
        return Counter(pool.map(call, range(callers)))


def outbox(platform: Platform) -> list[dict[str, Any]]:
    response = platform.http.get("/outbox")
    assert response.status_code == 200, response.text
    notes: list[dict[str, Any]] = response.json()
    return notes


def test_new_resources_are_tagged_with_their_owners_cost_center(platform: Platform) -> None:
    expected = {
        "orders": "cc-2210", "invoices": "cc-2210", "catalog": "cc-1042",
        "notifications": "cc-0001", "outbox": "cc-0001",
    }  # fmt: skip

    def tagged() -> dict[str, str | None]:
        spec = platform.http.get("/_nimbus/spec").json()
        resources = {**spec["queues"], **spec["buckets"], **spec["tables"]}
        return {name: r["tags"].get("cost-center") for name, r in resources.items()}

    platform.wait_for(lambda: tagged() == expected, "every resource tagged")
    described = platform.cli_json("ls")
    assert {f["name"] for f in described} >= {"search", "tag_cost_center", "scale_on_throttle"}


def test_a_throttled_function_is_raised_to_its_ceiling_and_its_owner_told(
    platform: Platform,
) -> None:
    assert platform.functions()["search"]["max_instances"] == 1

    def at_ceiling() -> bool:
        """Crowd the function until the automation has raised it to its ceiling."""
        if platform.functions()["search"]["max_instances"] == CEILING:
            return True
        statuses = crowd(platform)
        assert set(statuses) <= {200, 429} and statuses[200] >= 1, statuses
        return False

    platform.wait_for(at_ceiling, "max_instances raised to the ceiling", limit=120)
    search = platform.functions()["search"]
    assert search["runtime"] == {"max_instances": CEILING}
    notes = platform.wait_for(lambda: len(outbox(platform)) >= 2 and outbox(platform), "notes")
    raised = [n["subject"].rpartition("max_instances ")[2] for n in notes[:2]]
    assert raised == ["1 -> 2", "2 -> 4"]
    assert {n["to"] for n in notes} == {"search-team"}

    platform.wait_for(lambda: crowd(platform, callers=24)[429], "callers turned away at 4")
    platform.wait_for(
        lambda: any("at its ceiling of 4" in n["subject"] for n in outbox(platform)),
        "the note that the ceiling was reached",
    )
    assert platform.functions()["search"]["max_instances"] == CEILING
