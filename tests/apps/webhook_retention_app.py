"""Webhooks whose finished deliveries are kept for 1 s (tests/test_webhooks.py: the retention
sweep): one that finishes, one whose work never ends (nobody finishes its progress), and one
whose callback URL (from NIMBUS_TEST_CALLBACK) refuses it for good."""

from __future__ import annotations

import os

from triggers_common import ENV, record

import nimbus

app = nimbus.App("webhook-retention")


@app.on_webhook("/hooks/brief", verify="github", secret="GH_SECRET", retention=1, environment=ENV)
def brief(event: nimbus.WebhookEvent) -> None:
    record("brief", id=event.id)


@app.on_webhook(
    "/hooks/endless", verify="github", secret="GH_SECRET", retention=1, completion="progress"
)
def endless(event: nimbus.WebhookEvent) -> None:
    return None


@app.on_webhook(
    "/hooks/refused", verify="github", secret="GH_SECRET",
    callback=os.environ.get("NIMBUS_TEST_CALLBACK") or None,
)  # fmt: skip
def refused(event: nimbus.WebhookEvent) -> None:
    return None
