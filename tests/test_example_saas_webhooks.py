"""examples/saas-webhooks end to end: signed Stripe events -> webhook -> queue -> table -> topic
-> bucket, with the status URL reporting each step, on a real platform."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Platform
from webhook_signing import stripe_headers

EXAMPLE = Path(__file__).parent.parent / "examples" / "saas-webhooks"
SECRET = "whsec_example_secret"
HOOK = "/webhooks/stripe"


@pytest.fixture
def platform(launch: Callable[..., Platform], monkeypatch: pytest.MonkeyPatch) -> Platform:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("SAAS_CALLBACK_URL", raising=False)
    return launch(EXAMPLE, "--no-reload")


def checkout(event_id: str, account: str, plan: str) -> bytes:
    session = {
        "id": f"cs_{account}", "object": "checkout.session", "client_reference_id": account,
        "customer": f"cus_{account}", "customer_email": f"{account}@example.com",
        "metadata": {"plan": plan},
    }  # fmt: skip
    event = {"id": event_id, "object": "event", "type": "checkout.session.completed"}
    return json.dumps({**event, "data": {"object": session}}).encode()


def deliver(platform: Platform, body: bytes, secret: str = SECRET) -> Any:
    return platform.http.post(HOOK, content=body, headers=stripe_headers([secret], body))


def until_done(platform: Platform, url: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        document: dict[str, Any] = platform.http.get(url).json()
        return document if document["done"] else None

    result: dict[str, Any] = platform.wait_for(done, "the sequence to end")
    return result


def test_a_checkout_provisions_an_account_step_by_step(platform: Platform) -> None:
    body = checkout("evt_1", "acme", "team")
    response = deliver(platform, body)
    assert response.status_code == 202, response.text
    url = response.json()["status_url"]
    document = until_done(platform, url)
    assert document["status"] == "succeeded", document
    assert document["result"] == {
        "account": "acme", "plan": "team", "welcome": "welcome/acme.txt",
    }  # fmt: skip
    steps = document["progress"]["steps"]
    assert [(s["step"], s["function"]) for s in steps] == [
        ("payment confirmed", "stripe_events"),
        ("account created", "provision_account"),
        ("welcome email queued", "send_welcome"),
    ]
    assert document["progress"]["percent"] == 90
    account = platform.http.get("/accounts/acme").json()
    assert (account["plan"], account["seats"], account["email"]) == ("team", 25, "acme@example.com")

    again = deliver(platform, body)  # Stripe retries: the same event id, a new signature
    assert (again.json()["status_url"], again.json()["duplicate"]) == (url, True)
    assert until_done(platform, url) == document


def test_a_bad_plan_fails_the_sequence_and_others_are_ignored(platform: Platform) -> None:
    response = deliver(platform, checkout("evt_2", "globex", "platinum"))
    document = until_done(platform, response.json()["status_url"])
    assert document["status"] == "failed"
    assert "unknown plan 'platinum'" in document["error"]["message"]
    assert platform.http.get("/accounts/globex").status_code == 404

    refund = json.dumps({"id": "evt_3", "type": "charge.refunded", "data": {}}).encode()
    ignored = until_done(platform, deliver(platform, refund).json()["status_url"])
    assert (ignored["status"], ignored["result"]) == ("succeeded", {"ignored": "charge.refunded"})


def test_unsigned_or_wrongly_signed_events_are_refused(platform: Platform) -> None:
    body = checkout("evt_4", "initech", "starter")
    assert deliver(platform, body, secret="whsec_someone_else").status_code == 401
    unsigned = platform.http.post(HOOK, content=body)
    assert unsigned.status_code == 401
    assert unsigned.json() == {
        "error": "the webhook signature is not valid: no stripe-signature header"
    }
    assert platform.http.get("/accounts/initech").status_code == 404
