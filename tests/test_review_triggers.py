"""Regressions found by a hostile review of the trigger layer, on the real platform (the app:
tests/apps/review_triggers.py). Waits have generous limits against hangs; nothing asserts on
time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nimbus
from nimbus.errors import SpecError
from test_triggers import Harness, start_harness


@pytest.fixture
def review(tmp_path: Path) -> Iterator[Harness]:
    running = start_harness("review_triggers.py", tmp_path / "data", tmp_path / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


def bodies(*items: dict[str, object]) -> list[str]:
    return [json.dumps(item) for item in items]


def test_a_handler_that_deletes_its_messages_and_raises_gets_the_rest_again(
    review: Harness,
) -> None:
    """Regression: when the handler had deleted a message itself (Lambda's way before batch
    item failures) and then raised, making that message visible again failed (it is gone),
    which crashed the queue trigger: the other failed messages were not retried after the
    policy's backoff but only after their visibility timeout (9 x the function's timeout)."""
    items = [{"id": "done-1", "fail": False}, {"id": "again-1", "fail": True}]
    review.ok({"op": "send_batch", "queue": "manual", "bodies": bodies(*items)})
    review.wait_records("on_manual", lambda rs: len(rs) >= 2, "the first batch")
    review.heal("again-1")
    records = review.wait_records(
        "on_manual", lambda rs: any(r["receive_count"] > 1 for r in rs), "the failed message again"
    )
    assert {r["id"] for r in records if r["receive_count"] > 1} == {"again-1"}
    review.settled("manual")
    assert "trigger of 'on_manual' failed" not in review.platform.output()


def test_a_message_the_handler_deleted_is_not_dead_lettered_when_its_batch_fails(
    review: Harness,
) -> None:
    """Regression: with no retries left, every message of a failed batch was dead-lettered,
    also one the handler had deleted itself (processed, in Lambda's way before batch item
    failures): it reached the dead letters though it had been handled."""
    items = [{"id": "kept-1", "fail": False}, {"id": "lost-1", "fail": True}]
    review.ok({"op": "send_batch", "queue": "last-try", "bodies": bodies(*items)})
    review.wait_records("on_last_try", lambda rs: len(rs) >= 2, "the batch")
    [letter] = review.platform.wait_for(
        lambda: review.dead_letters("on_last_try"), "the failed message's dead letter"
    )
    review.settled("last-try")
    shown = review.platform.cli_json("dlq", "show", letter["id"])
    assert "lost-1" in json.dumps(shown) and "kept-1" not in json.dumps(shown)
    assert len(review.dead_letters("on_last_try")) == 1
    assert "trigger of 'on_last_try' failed" not in review.platform.output()


def test_a_batching_window_longer_than_the_visibility_timeout_delivers_each_message_once(
    review: Harness,
) -> None:
    """Regression: the visibility timeout of the messages a queue trigger claims did not count
    the batching window, so a message became visible again while its batch was still being
    filled and was received again into the same batch: delivered twice, its receive count
    raised (towards the queue's max_receives) though the handler had not seen it yet."""
    review.ok({"op": "send", "queue": "windowed", "body": json.dumps({"id": "w-1"})})
    records = review.wait_records("on_windowed", lambda rs: len(rs) >= 1, "the batch")
    review.settled("windowed")
    assert review.records("on_windowed") == records == [{"id": "w-1", "receive_count": 1}]


def test_a_redeploy_hands_back_the_messages_a_queue_trigger_claimed_ahead(
    review: Harness,
) -> None:
    """Regression: a queue trigger claims batches ahead of its lanes; when a redeploy (or a
    shutdown) stopped it, those messages stayed invisible for the claim's whole visibility
    timeout (9 x the function's timeout: here 9 minutes) though no handler had seen them."""
    items = [{"id": f"s-{n}"} for n in range(6)]
    review.ok({"op": "send_batch", "queue": "steady", "bodies": bodies(*items)})
    first = review.wait_records("on_steady", lambda rs: len(rs) >= 1, "the first message")
    http = review.platform.http
    spec = http.get("/_nimbus/spec").json()
    spec["functions"]["on_steady"]["environment"]["CHANGED"] = "1"
    assert http.put("/_nimbus/spec", json=spec).status_code == 200
    review.heal("steady")
    # the message running at the redeploy comes back after its visibility timeout; the others
    # were never handed to a handler and come now
    others = {f"s-{n}" for n in range(6)} - {first[0]["id"]}
    review.wait_records(
        "on_steady", lambda rs: others <= {r["id"] for r in rs}, "the messages claimed ahead"
    )


def test_dlq_ls_shows_an_error_message_that_looks_like_markup(review: Harness) -> None:
    """Regression: `nimbus dlq ls` (and `nimbus invoke`, `nimbus status`) printed handler
    error messages as rich markup: `[/oops]` in one crashed the command with a traceback,
    `[red]` vanished."""
    response = review.platform.http.post("/_nimbus/functions/boom/invoke?mode=async", json={})
    assert response.status_code == 202
    review.platform.wait_for(lambda: review.dead_letters("boom"), "the dead letter")
    listed = review.platform.cli("dlq", "ls")
    assert listed.returncode == 0, listed.stderr
    assert "bad [/oops] input [red]seen[/red]" in listed.stdout
    invoked = review.platform.cli("invoke", "boom")
    assert "bad [/oops] input [red]seen[/red]" in invoked.stdout, invoked.stderr
    status = review.platform.cli("status", response.json()["id"])
    assert status.returncode == 0, status.stderr
    assert "bad [/oops] input [red]seen[/red]" in status.stdout


def test_redriving_a_dead_letter_of_a_removed_function_keeps_it(review: Harness) -> None:
    """Regression: re-driving a dead letter whose function is no longer deployed answered 202,
    consumed the letter and made a new one (FunctionNotFound) out of it."""
    response = review.platform.http.post("/_nimbus/functions/doomed/invoke?mode=async", json={})
    assert response.status_code == 202
    [letter] = review.platform.wait_for(lambda: review.dead_letters("doomed"), "the dead letter")
    http = review.platform.http
    spec = http.get("/_nimbus/spec").json()
    del spec["functions"]["doomed"]
    assert http.put("/_nimbus/spec", json=spec).status_code == 200
    redriven = http.post(f"/_nimbus/dlq/{letter['id']}/redrive")
    assert redriven.status_code == 404, redriven.text
    assert "doomed" in redriven.json()["error"]
    kept = http.get(f"/_nimbus/dlq/{letter['id']}").json()
    assert kept["error"]["message"] == "doomed"


def handler(event: Any) -> None:
    """A module-level handler for the decorator tests."""


@pytest.mark.parametrize(
    ("declare", "problem"),
    [
        (lambda app: app.on_queue(123), "123 is not a resource"),
        (lambda app: app.function(uses=[object()]), "is not a resource"),
        (lambda app: app.function(uses="orders"), "uses takes a list of resources, not a str"),
        (lambda app: app.function(uses=app.queue("q")), "not a Queue"),
        (lambda app: app.on_schedule("rate(1 hour)", payload=b"\xff"), "must be JSON data"),
        (lambda app: app.on_schedule("rate(1 hour)", payload=object()), "must be JSON data"),
    ],
)
def test_bad_decorator_arguments_are_spec_errors(
    declare: Callable[[nimbus.App], Callable[[Any], Any]], problem: str
) -> None:
    """Regression: a resource given as something else (a number, a lone name for `uses`) failed
    with an AttributeError or a puzzling "a resource is named twice"; a schedule payload that
    is not JSON was accepted, and `nimbus up` then failed with a serializer's traceback."""
    app = nimbus.App("bad")
    app.queue("orders")
    with pytest.raises(SpecError, match=problem):
        declare(app)(handler)
    assert app.spec(str(Path(__file__).parent)).functions == {}


def test_nimbus_up_names_a_schedule_payload_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import nimbus\n"
        "app = nimbus.App('bad')\n"
        "@app.on_schedule('rate(1 hour)', payload={'when': object()})\n"
        "def tick(event): pass\n"
    )

    result = subprocess.run(
        [sys.executable, "-m", "nimbus", "spec", str(tmp_path / "app.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "payload must be JSON data" in result.stdout + result.stderr
