"""A test app with one webhook per scheme and behaviour (tests/test_webhooks.py). Secrets and
the callback URL come from the environment the test starts the platform with; handlers record
what they saw (see triggers_common)."""

from __future__ import annotations

import os
from typing import Any

from triggers_common import ENV, record

import nimbus

CALLBACK = os.environ.get("NIMBUS_TEST_CALLBACK") or None
FAST = nimbus.FailurePolicy(retries=1, backoff=0.05)

app = nimbus.App("webhooks")
steps = app.queue("steps", visibility_timeout=5)


def seen(function: str, event: nimbus.WebhookEvent) -> None:
    record(
        function, id=event.id, type=event.type, provider=event.provider, body=event.text(),
        token=event.progress_token, status_url=event.status_url,
        signature=event.headers.get("x-hub-signature-256"),
    )  # fmt: skip


@app.on_webhook("/hooks/github", verify="github", secret="GH_SECRET", environment=ENV)
def github(event: nimbus.WebhookEvent) -> dict[str, Any]:
    seen("github", event)
    return {"seen": event.json()}


@app.on_webhook(
    "/hooks/stripe", verify="stripe", secret=["STRIPE_NEW", "STRIPE_OLD"], environment=ENV
)
def stripe(event: nimbus.WebhookEvent) -> dict[str, Any]:
    seen("stripe", event)
    return {"event": event.id}


@app.on_webhook(
    "/hooks/standard", verify="hmac", secret="STANDARD_SECRET", environment=ENV, callback=CALLBACK
)
def standard(event: nimbus.WebhookEvent) -> dict[str, Any]:
    seen("standard", event)
    return {"type": event.type}


@app.on_webhook(
    "/hooks/acme", verify="hmac", secret="ACME_SECRET", header="X-Acme-Signature",
    algorithm="sha512", encoding="hex", prefix="sha512=", timestamp_header=None,
    id_header="X-Acme-Delivery", signed="{body}", environment=ENV,
)  # fmt: skip
def acme(event: nimbus.WebhookEvent) -> str:
    seen("acme", event)
    return event.text()


@app.on_webhook(
    "/hooks/flaky", verify="github", secret="GH_SECRET", failure=FAST, callback=CALLBACK,
    environment=ENV,
)  # fmt: skip
def flaky(event: nimbus.WebhookEvent) -> None:
    seen("flaky", event)
    raise RuntimeError(f"cannot handle {event.json()['why']}")


@app.on_webhook(
    "/hooks/orders", verify="github", secret="GH_SECRET", completion="progress",
    callback=CALLBACK, uses=[steps], environment=ENV,
)  # fmt: skip
def orders(event: nimbus.WebhookEvent) -> None:
    seen("orders", event)
    event.progress.step("received", percent=10)
    steps.send({"progress": event.progress_token, "order": event.json()})


@app.on_queue(steps, batch_size=1, environment=ENV)
def fulfil(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        work = message.json()
        progress, order = nimbus.Progress(work["progress"]), work["order"]
        progress.step("packed", percent=60, detail={"order": order["id"]})
        progress.step("packed", percent=70, detail={"order": order["id"], "again": True})
        if order.get("fail"):
            progress.fail("out of stock")
        else:
            first = progress.finish({"shipped": order["id"]})
            record("fulfil", first=first, again=progress.finish({"shipped": "twice"}))


@app.on_webhook("/hooks/aws", verify="github", secret="GH_SECRET", style="aws", environment=ENV)
def aws_style(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record("aws_style", event=event)
    return {"statusCode": 200, "body": event["body"]}
