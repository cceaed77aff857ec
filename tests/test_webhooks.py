"""Inbound webhooks end to end on the real platform (tests/apps/webhooks_app.py): verified
deliveries are accepted with 202 and a status URL and run once however often they are replayed;
bad signatures get 401 and leave nothing behind; the status URL reports the failure policy's
retries, the progress of a sequence of functions and the result; callbacks are retried and
survive a restart. Conditions are waited for with generous limits, never timed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import APPS, Platform, start_platform
from webhook_signing import github_headers, standard_headers, stripe_headers

GH = "github secret"
STRIPE_NEW, STRIPE_OLD = "whsec_new", "whsec_old"
STANDARD = "whsec_" + base64.b64encode(b"standard webhooks key").decode()
ACME = "acme secret"
SECRETS = {
    "GH_SECRET": GH, "STRIPE_NEW": STRIPE_NEW, "STRIPE_OLD": STRIPE_OLD,
    "STANDARD_SECRET": STANDARD, "ACME_SECRET": ACME,
}  # fmt: skip
APP = APPS / "webhooks_app.py"
RETENTION_APP = APPS / "webhook_retention_app.py"


class Receiver:
    """A callback endpoint: records each POSTed JSON document; answers 503 to the first
    `failures` of them, or `refusal` to every one."""

    def __init__(self, port: int = 0, failures: int = 0, refusal: int | None = None) -> None:
        self.documents: list[dict[str, Any]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                failing = receiver.failures > 0
                receiver.failures -= failing
                if not failing:
                    receiver.documents.append(json.loads(body))
                self.send_response(refusal or (503 if failing else 204))
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, delivery: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["delivery_id"] == delivery]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("hooks")
    (data / "out").mkdir()
    env = {**SECRETS, "NIMBUS_TEST_OUT": str(data / "out"), "NIMBUS_TEST_CALLBACK": receiver.url}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        platform = start_platform(APP, data / "platform", "--no-reload")
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


def records(platform: Platform, function: str) -> list[dict[str, Any]]:
    path = platform.data_dir.parent / "out" / f"{function}.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [json.loads(line) for line in lines]


def post(platform: Platform, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return platform.http.post(path, content=body, headers=headers)


def status(platform: Platform, url: str) -> dict[str, Any]:
    response = platform.http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    found: dict[str, Any] = response.json()
    return found


def wait_status(
    platform: Platform, url: str, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        found = status(platform, url)
        return found if done(found) else None

    result: dict[str, Any] = platform.wait_for(ready, what)
    return result


def finished(document: dict[str, Any]) -> bool:
    return bool(document["done"])


def stored(platform: Platform) -> tuple[int, int]:
    """Deliveries and webhook jobs in the platform's store (read-only, beside it)."""
    counts = []
    for name, sql in (
        ("webhooks.db", "SELECT COUNT(*) FROM deliveries"),
        ("platform.db", "SELECT COUNT(*) FROM jobs WHERE trigger LIKE 'webhook:%'"),
    ):
        connection = sqlite3.connect(f"file:{platform.data_dir / name}?mode=ro", uri=True)
        try:
            counts.append(connection.execute(sql).fetchone()[0])
        finally:
            connection.close()
    return counts[0], counts[1]


def test_a_github_delivery_is_accepted_run_and_reported(hooks: Platform) -> None:
    body = b'{"ref": "refs/heads/main", "commits": 3}'
    response = post(hooks, "/hooks/github", body, github_headers(GH, body, "gh-1"))
    assert response.status_code == 202, response.text
    answer = response.json()
    url = answer["status_url"]
    assert response.headers["location"] == url
    assert url.startswith("/hooks/github/deliveries/") and len(url.rsplit("/", 1)[1]) >= 32
    assert (answer["delivery_id"], answer["duplicate"]) == ("gh-1", False)
    document = wait_status(hooks, url, finished, "the delivery to finish")
    assert document["status"] == "succeeded" and document["attempts"] == 1
    assert document["result"] == {"seen": {"ref": "refs/heads/main", "commits": 3}}
    assert (document["provider"], document["function"], document["error"]) == (
        "github", "github", None,
    )  # fmt: skip
    [event] = [r for r in records(hooks, "github") if r["id"] == "gh-1"]
    assert (event["type"], event["provider"], event["body"]) == ("push", "github", body.decode())
    assert event["status_url"] == url and event["signature"].startswith("sha256=")


def test_a_replayed_delivery_is_acknowledged_and_runs_once(hooks: Platform) -> None:
    body = b'{"action": "opened"}'
    headers = github_headers(GH, body, "gh-replay", "issues")
    first = post(hooks, "/hooks/github", body, headers).json()
    replays = [post(hooks, "/hooks/github", body, headers) for _ in range(3)]
    assert {r.status_code for r in replays} == {202}
    assert {r.json()["status_url"] for r in replays} == {first["status_url"]}
    assert all(r.json()["duplicate"] for r in replays)
    wait_status(hooks, first["status_url"], finished, "the delivery to finish")
    later = b'{"action": "closed"}'
    after = post(hooks, "/hooks/github", later, github_headers(GH, later, "gh-after")).json()
    wait_status(hooks, after["status_url"], finished, "a later delivery to finish")
    assert [r["id"] for r in records(hooks, "github")].count("gh-replay") == 1


def test_bad_signatures_get_401_and_leave_nothing(hooks: Platform) -> None:
    body = b'{"amount": 100}'
    good = github_headers(GH, body, "gh-bad")
    before = stored(hooks)
    attempts = {
        "tampered body": (b'{"amount": 900}', good),
        "wrong secret": (body, github_headers("guess", body, "gh-bad")),
        "no signature": (body, {"X-GitHub-Delivery": "gh-bad"}),
        "malformed": (body, {**good, "X-Hub-Signature-256": "md5=abc"}),
    }
    for what, (sent, headers) in attempts.items():
        response = post(hooks, "/hooks/github", sent, headers)
        assert response.status_code == 401, what
        assert response.json()["error"].startswith("the webhook signature is not valid"), what
    stale = stripe_headers([STRIPE_NEW], body, int(time.time()) - 3600)
    response = post(hooks, "/hooks/stripe", body, stale)
    assert response.status_code == 401
    assert "more than 300 s from now" in response.json()["error"]
    assert stored(hooks) == before
    assert all(r["id"] != "gh-bad" for r in records(hooks, "github"))
    assert "amount" not in hooks.output()  # a refused body is not logged either


def test_a_body_over_the_gateway_limit_gets_413(hooks: Platform) -> None:
    body = b"x" * (6 * 1024 * 1024 + 1)  # the app's max_body_bytes is the default, 6 MiB
    before = stored(hooks)
    response = post(hooks, "/hooks/github", body, github_headers(GH, body, "too-big"))
    assert response.status_code == 413
    assert stored(hooks) == before


def test_stripe_rotation_and_the_event_id_as_delivery(hooks: Platform) -> None:
    body = b'{"id": "evt_42", "type": "checkout.session.completed", "object": "event"}'
    old_only = post(hooks, "/hooks/stripe", body, stripe_headers([STRIPE_OLD], body))
    assert old_only.status_code == 202, old_only.text
    resent = post(hooks, "/hooks/stripe", body, stripe_headers([STRIPE_OLD, STRIPE_NEW], body))
    assert resent.json()["status_url"] == old_only.json()["status_url"]
    assert resent.json()["duplicate"] is True  # the same event id, signed at another time
    document = wait_status(hooks, old_only.json()["status_url"], finished, "the Stripe event")
    assert document["result"] == {"event": "evt_42"}
    [event] = [r for r in records(hooks, "stripe") if r["id"] == "evt_42"]
    assert event["type"] == "checkout.session.completed"


def test_a_body_nested_too_deeply_is_accepted_as_malformed_json_is(hooks: Platform) -> None:
    """Reading a Stripe event's id from a body too deep to decode was a RecursionError (500):
    it is malformed JSON, which has no id, so the delivery is named by its digest."""
    body = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post(hooks, "/hooks/stripe", body, stripe_headers([STRIPE_NEW], body))
    assert response.status_code == 202, response.text
    document = wait_status(hooks, response.json()["status_url"], finished, "the deep delivery")
    assert document["result"]["event"].startswith("sha256:")


def test_a_webhook_path_is_matched_on_the_raw_path(hooks: Platform) -> None:
    """An encoded slash is no path separator, as for HTTP routes."""
    body = b'{"zen": "raw"}'
    answer = post(hooks, "/hooks%2Fgithub", body, github_headers(GH, body, "gh-raw"))
    assert answer.status_code == 404
    assert all(r["id"] != "gh-raw" for r in records(hooks, "github"))


def test_generic_hmac_schemes(hooks: Platform, receiver: Receiver) -> None:
    body = b'{"type": "user.created", "data": {"id": 7}}'
    response = post(hooks, "/hooks/standard", body, standard_headers(STANDARD, body, "msg_1"))
    assert response.status_code == 202, response.text
    document = wait_status(hooks, response.json()["status_url"], finished, "Standard Webhooks")
    assert document["result"] == {"type": "user.created"}
    hooks.wait_for(lambda: receiver.of("msg_1"), "the callback")
    digest = hmac.new(ACME.encode(), body, "sha512").hexdigest()
    acme = {"X-Acme-Signature": f"sha512={digest}", "X-Acme-Delivery": "acme-1"}
    response = post(hooks, "/hooks/acme", body, acme)
    assert response.status_code == 202, response.text
    assert wait_status(hooks, response.json()["status_url"], finished, "acme")["result"] == (
        body.decode()
    )
    wrong = {**acme, "X-Acme-Signature": "sha512=" + hashlib.sha512(body).hexdigest()}
    assert post(hooks, "/hooks/acme", body, wrong).status_code == 401


def test_failures_are_retried_then_reported_and_called_back(
    hooks: Platform, receiver: Receiver
) -> None:
    body = b'{"why": "a bad day"}'
    response = post(hooks, "/hooks/flaky", body, github_headers(GH, body, "flaky-1"))
    url = response.json()["status_url"]
    document = wait_status(hooks, url, finished, "the retries to run out")
    assert (document["status"], document["attempts"]) == ("failed", 2)  # retries=1
    assert document["error"] == {"type": "RuntimeError", "message": "cannot handle a bad day"}
    assert len([r for r in records(hooks, "flaky") if r["id"] == "flaky-1"]) == 2
    hooks.wait_for(lambda: receiver.of("flaky-1"), "the callback")
    [called] = receiver.of("flaky-1")
    assert called["status"] == "failed" and called["error"] == document["error"]


def test_a_sequence_of_functions_reports_progress(hooks: Platform, receiver: Receiver) -> None:
    body = b'{"id": "order-7"}'
    response = post(hooks, "/hooks/orders", body, github_headers(GH, body, "order-7"))
    url = response.json()["status_url"]
    document = wait_status(hooks, url, finished, "the order's sequence to finish")
    assert document["status"] == "succeeded"
    assert document["result"] == {"shipped": "order-7"}
    progress = document["progress"]
    assert progress["percent"] == 70
    assert [(s["step"], s["function"]) for s in progress["steps"]] == [
        ("received", "orders"), ("packed", "fulfil"),
    ]  # fmt: skip
    assert progress["steps"][1]["detail"] == {"order": "order-7", "again": True}
    assert {"first": True, "again": False} in records(hooks, "fulfil")  # the first outcome stays
    hooks.wait_for(lambda: receiver.of("order-7"), "the callback")
    [called] = receiver.of("order-7")
    assert called["result"] == {"shipped": "order-7"} and called["progress"] == progress
    assert wait_status(hooks, url, lambda d: d["callback"]["status"] == "delivered", "delivered")


def test_a_failing_sequence_and_callback_retries(hooks: Platform, receiver: Receiver) -> None:
    receiver.failures = 2  # the earlier tests' callbacks were all delivered
    body = b'{"id": "order-8", "fail": true}'
    response = post(hooks, "/hooks/orders", body, github_headers(GH, body, "order-8"))
    url = response.json()["status_url"]
    document = wait_status(hooks, url, finished, "the failing sequence")
    assert document["status"] == "failed"
    assert document["error"] == {"type": "Failed", "message": "out of stock"}
    delivered = wait_status(
        hooks, url, lambda d: d["callback"]["status"] == "delivered", "the callback"
    )
    assert delivered["callback"]["attempts"] == 3  # after two answers 503
    assert receiver.of("order-8")[0]["error"] == {"type": "Failed", "message": "out of stock"}


def test_aws_style_gets_the_http_api_event(hooks: Platform) -> None:
    body = b'{"zen": "Design for failure."}'
    response = post(hooks, "/hooks/aws", body, github_headers(GH, body, "aws-1", "ping"))
    document = wait_status(hooks, response.json()["status_url"], finished, "the aws function")
    assert document["result"] == {"statusCode": 200, "body": body.decode()}
    [record] = records(hooks, "aws_style")
    event = record["event"]
    assert (event["version"], event["routeKey"], event["rawPath"]) == (
        "2.0", "POST /hooks/aws", "/hooks/aws",
    )  # fmt: skip
    assert event["headers"]["x-github-event"] == "ping"
    assert event["headers"]["x-nimbus-delivery-id"] == "aws-1"
    assert event["headers"]["x-nimbus-progress-token"] in response.json()["status_url"]


def test_methods_and_unknown_deliveries(hooks: Platform) -> None:
    response = hooks.http.get("/hooks/github")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    body = b"{}"
    url = post(hooks, "/hooks/github", body, github_headers(GH, body, "m-1")).json()["status_url"]
    assert hooks.http.post(url).status_code == 405
    assert hooks.http.get("/hooks/github/deliveries/not-a-token").status_code == 404
    other = url.replace("/hooks/github/", "/hooks/stripe/")
    assert hooks.http.get(other).status_code == 404  # a token belongs to its webhook
    assert hooks.http.head(url).status_code == 200


def test_an_unset_secret_fails_the_deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STRIPE_OLD")
    monkeypatch.setenv("NIMBUS_TEST_OUT", str(tmp_path))
    with pytest.raises(AssertionError) as failure:
        start_platform(APP, tmp_path / "data", "--no-reload")
    assert "$STRIPE_OLD, which is not set in the platform's environment" in str(failure.value)
    assert "Traceback" not in str(failure.value)


def test_a_pending_callback_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch: Callable[..., Platform]
) -> None:
    down = Receiver()  # only to find a free port: closed now, nothing listens on it
    port = down.server.server_address[1]
    down.close()
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NIMBUS_TEST_OUT", str(tmp_path))
    monkeypatch.setenv("NIMBUS_TEST_CALLBACK", down.url)
    data = tmp_path / "data"
    first = launch(APP, "--no-reload", data_dir=data)
    body = b'{"type": "invoice.paid"}'
    response = post(first, "/hooks/standard", body, standard_headers(STANDARD, body, "msg_r"))
    url = response.json()["status_url"]
    wait_status(first, url, lambda d: d["callback"]["attempts"] >= 1, "a failed callback")
    first.stop()
    receiver = Receiver(port=port)
    try:
        second = launch(APP, "--no-reload", data_dir=data)
        second.wait_for(lambda: receiver.of("msg_r"), "the callback after the restart")
        document = wait_status(
            second, url, lambda d: d["callback"]["status"] == "delivered", "delivered"
        )
        assert document["callback"]["attempts"] >= 2
        assert receiver.of("msg_r")[0]["result"] == {"type": "invoice.paid"}
    finally:
        receiver.close()


def test_finished_deliveries_are_forgotten_after_the_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch: Callable[..., Platform]
) -> None:
    """The retention is the replay window: past it a delivery's status URL is gone and the same
    delivery id is a new delivery. Work that has not ended is kept."""
    (tmp_path / "out").mkdir()  # where `records` reads
    monkeypatch.setenv("GH_SECRET", GH)
    monkeypatch.setenv("NIMBUS_TEST_OUT", str(tmp_path / "out"))
    platform = launch(RETENTION_APP, "--no-reload")
    body = b'{"n": 1}'
    endless = post(platform, "/hooks/endless", body, github_headers(GH, body, "e-1")).json()
    headers = github_headers(GH, body, "b-1")
    first = post(platform, "/hooks/brief", body, headers).json()
    wait_status(platform, endless["status_url"], lambda d: d["status"] == "running", "running")
    wait_status(platform, first["status_url"], finished, "the delivery to finish")

    def forgotten() -> bool:
        return platform.http.get(first["status_url"]).status_code == 404

    platform.wait_for(forgotten, "the finished delivery to be forgotten")
    assert status(platform, endless["status_url"])["status"] == "running"  # older, not ended
    again = post(platform, "/hooks/brief", body, headers)
    assert again.status_code == 202 and again.json()["duplicate"] is False
    assert again.json()["status_url"] != first["status_url"]
    wait_status(platform, again.json()["status_url"], finished, "the replay to run")
    assert [r["id"] for r in records(platform, "brief")] == ["b-1", "b-1"]


def test_a_refused_callback_logs_only_the_origin_of_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch: Callable[..., Platform]
) -> None:
    """A callback URL may hold a secret (Slack's incoming webhooks): logs show its origin."""
    receiver = Receiver(refusal=404)
    secret_url = receiver.url.replace("/done", "/services/T0/B0/s3cr3t-part")
    monkeypatch.setenv("GH_SECRET", GH)
    monkeypatch.setenv("NIMBUS_TEST_OUT", str(tmp_path))
    monkeypatch.setenv("NIMBUS_TEST_CALLBACK", secret_url)
    try:
        platform = launch(RETENTION_APP, "--no-reload")
        body = b"{}"
        url = post(platform, "/hooks/refused", body, github_headers(GH, body, "r-1")).json()
        document = wait_status(
            platform, url["status_url"], lambda d: d["callback"]["status"] == "failed", "refusal"
        )
        assert document["callback"]["error"] == "HTTP 404"
        origin = secret_url.split("/services/")[0]
        platform.wait_for(lambda: f"to {origin}/... failed for good" in platform.output(), "log")
        assert "s3cr3t" not in platform.output()
    finally:
        receiver.close()
