"""Asynchronous invocation: accepted durably, retried with backoff, then dead-lettered and
re-drivable; never dropped under saturation or across a platform crash."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import APPS, Platform, process_alive, start_platform


@pytest.fixture(scope="module")
def retrying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_platform(
        APPS / "retrying.py", tmp_path_factory.mktemp("retrying"), "--no-reload"
    )
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


def submit(platform: Platform, function: str, event: Any) -> str:
    response = platform.http.post(f"/_nimbus/functions/{function}/invoke?mode=async", json=event)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def finished(platform: Platform, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = platform.http.get(f"/_nimbus/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    result: dict[str, Any] = platform.wait_for(done, f"job {job_id} to finish")
    return result


def dead_letters_of(platform: Platform, job_id: str) -> list[dict[str, Any]]:
    return [d for d in platform.http.get("/_nimbus/dlq").json() if d["job_id"] == job_id]


def test_async_invoke_returns_an_id_then_the_result(retrying: Platform, tmp_path: Path) -> None:
    job_id = submit(retrying, "retries0", {"dir": str(tmp_path), "fail_times": 0})
    job = finished(retrying, job_id)
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 1, 1)
    [record] = retrying.http.get(
        "/_nimbus/invocations", params={"id": job["request_ids"][0]}
    ).json()
    assert (record["trigger"], record["job_id"]) == ("async", job_id)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(retries=st.integers(0, 3), fail_times=st.integers(0, 4))
def test_retry_semantics(
    retrying: Platform, tmp_path_factory: pytest.TempPathFactory, retries: int, fail_times: int
) -> None:
    """Attempts = failures + 1, at most retries + 1; the event is dead-lettered iff it never
    succeeded, with its body and last error."""
    folder = tmp_path_factory.mktemp("countdown")
    event = {"dir": str(folder), "fail_times": fail_times}
    job = finished(retrying, submit(retrying, f"retries{retries}", event))
    assert job["attempts"] == min(fail_times, retries + 1) + (fail_times <= retries)
    assert int((folder / "attempts").read_text()) == job["attempts"]
    letters = dead_letters_of(retrying, job["id"])
    if fail_times <= retries:
        assert job["status"] == "succeeded"
        assert job["result"] == fail_times + 1
        assert letters == []
    else:
        assert job["status"] == "failed"
        [letter] = letters
        assert letter["attempts"] == retries + 1
        assert letter["error"]["message"] == f"attempt {retries + 1} fails"
        assert json.loads(letter["payload"]) == event


def test_dead_letter_show_and_redrive(retrying: Platform, tmp_path: Path) -> None:
    job = finished(retrying, submit(retrying, "retries1", {"dir": str(tmp_path), "fail_times": 2}))
    [letter] = dead_letters_of(retrying, job["id"])
    shown = retrying.cli_json("dlq", "ls", "retries1")
    assert letter["id"] in [d["id"] for d in shown]
    detail = retrying.cli("dlq", "show", letter["id"], check=True).stdout
    assert "attempt 2 fails" in detail
    # the third attempt succeeds: re-driving delivers the same event again
    redriven = retrying.cli_json("dlq", "redrive", letter["id"])
    again = finished(retrying, redriven["id"])
    assert (again["status"], again["result"]) == ("succeeded", 3)
    assert dead_letters_of(retrying, job["id"]) == []
    missing = retrying.cli("dlq", "redrive", letter["id"])
    assert missing.returncode == 4
    assert "no dead letter" in missing.stderr


def test_events_older_than_max_event_age_are_dead_lettered(retrying: Platform) -> None:
    job = finished(retrying, submit(retrying, "short_lived", None))
    assert job["status"] == "failed"
    assert job["attempts"] < 6  # max_event_age (1 s) ends the retries before retries (5) do


def test_saturation_makes_async_work_wait_never_drop(retrying: Platform) -> None:
    ids = [submit(retrying, "one_at_a_time", {"n": n, "sleep": 0.05}) for n in range(12)]
    results = [finished(retrying, job_id) for job_id in ids]
    assert [r["status"] for r in results] == ["succeeded"] * 12
    assert [r["result"]["n"] for r in results] == list(range(12))


def test_bad_async_requests_store_nothing(retrying: Platform) -> None:
    unknown = retrying.http.post("/_nimbus/functions/nope/invoke?mode=async", json=1)
    assert unknown.status_code == 404
    garbage = retrying.http.post("/_nimbus/functions/retries0/invoke?mode=async", content=b"{x")
    assert garbage.status_code == 400
    assert "not valid JSON" in garbage.json()["error"]
    assert retrying.http.get("/_nimbus/jobs/nope").status_code == 404


def test_accepted_invocations_survive_kill_9_of_the_platform(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    platform = launch(APPS / "retrying.py", "--no-reload", data_dir=data)
    ids = [submit(platform, "one_at_a_time", {"n": n, "sleep": 1}) for n in range(4)]
    worker = platform.invoke("pid")["result"]
    platform.stop(signal.SIGKILL)
    # no orphans: the zygote dies with the controller, and its instances with the zygote
    platform.wait_for(lambda: not process_alive(worker), "the instance to die with the platform")
    restarted = launch(APPS / "retrying.py", "--no-reload", data_dir=data)
    results = [finished(restarted, job_id) for job_id in ids]
    assert [r["status"] for r in results] == ["succeeded"] * 4
    assert [r["result"]["n"] for r in results] == [0, 1, 2, 3]


def test_concurrent_redrives_of_one_dead_letter_run_it_once(
    retrying: Platform, tmp_path: Path
) -> None:
    job = finished(retrying, submit(retrying, "retries0", {"dir": str(tmp_path), "fail_times": 5}))
    [letter] = dead_letters_of(retrying, job["id"])
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: retrying.http.post(f"/_nimbus/dlq/{letter['id']}/redrive"), range(8))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [404] * 7
    [accepted] = [r.json() for r in responses if r.status_code == 202]
    assert finished(retrying, accepted["id"])["attempts"] == 1


def test_an_event_that_expires_while_waiting_for_capacity_is_not_run(retrying: Platform) -> None:
    """`expiring` has one instance and max_event_age=1: the second event waits behind a 3 s call,
    outlives its age, and goes to the dead-letter store without running (as in Lambda)."""
    first = submit(retrying, "expiring", {"sleep": 3})
    retrying.wait_for(lambda: retrying.functions()["expiring"]["busy"] == 1, "the first to run")
    second = finished(retrying, submit(retrying, "expiring", {"n": 2}))
    assert (second["status"], second["attempts"]) == ("failed", 0)
    assert second["error"]["type"] == "EventTooOld"
    assert finished(retrying, first)["status"] == "succeeded"
