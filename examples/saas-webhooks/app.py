"""SaaS webhooks: a signed Stripe event starts an automated sequence of functions, whose
progress the delivery's status URL reports.

    STRIPE_WEBHOOK_SECRET=whsec_... nimbus up examples/saas-webhooks

`checkout.session.completed` -> `stripe_events` (verified, answered 202 with a status URL)
-> queue `provisioning` -> `provision_account` (table `accounts`) -> topic `lifecycle`
-> `send_welcome` (bucket `outbox`) -> `Progress.finish`. Each function reports its step with
the delivery's progress token, which travels with the work. Other event types are acknowledged
and ignored. `GET /accounts/{id}` reads an account back. Set `SAAS_CALLBACK_URL` to have the
outcome POSTed there when the sequence ends.
"""

from __future__ import annotations

import os
from typing import Any

import nimbus

app = nimbus.App("saas-webhooks")

provisioning = app.queue("provisioning")
lifecycle = app.topic("lifecycle")
accounts = app.table("accounts", key="id")
outbox = app.bucket("outbox")

PLANS = {"starter": 5, "team": 25, "enterprise": 500}
"""Seats by plan."""
PROVISIONED = "account.provisioned"
RETRY = nimbus.FailurePolicy(retries=2, backoff=1)


@app.on_webhook(
    "/webhooks/stripe",
    verify="stripe",
    secret="STRIPE_WEBHOOK_SECRET",  # while rolling it: ["STRIPE_WEBHOOK_SECRET", "OLD_ONE"]
    completion="progress",
    callback=os.environ.get("SAAS_CALLBACK_URL") or None,
    uses=[provisioning],
    failure=RETRY,
)
def stripe_events(event: nimbus.WebhookEvent) -> dict[str, Any]:
    """Verified by the platform before it runs; a Stripe retry of the same event runs nothing."""
    if event.type != "checkout.session.completed":
        event.progress.finish({"ignored": event.type})
        return {"ignored": event.type}
    session = event.json()["data"]["object"]
    work = {"progress": event.progress_token, "event": event.id, "session": session}
    provisioning.send(work)
    event.progress.step("payment confirmed", percent=25, detail={"session": session["id"]})
    return {"queued": session["id"]}


@app.on_queue(provisioning, batch_size=1, uses=[accounts, lifecycle], failure=RETRY)
def provision_account(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        work = message.json()
        progress, session = nimbus.Progress(work["progress"]), work["session"]
        plan = session.get("metadata", {}).get("plan")
        if plan not in PLANS:
            progress.fail(f"unknown plan {plan!r}: no account was created")
            continue
        account = {
            "id": session["client_reference_id"], "email": session["customer_email"],
            "plan": plan, "seats": PLANS[plan], "stripe_customer": session["customer"],
        }  # fmt: skip
        accounts.put(account)  # the same again on a redelivery: nothing changes
        progress.step("account created", percent=60, detail={"account": account["id"]})
        lifecycle.publish({"account": account, "progress": work["progress"]}, type=PROVISIONED)


@app.on_topic(lifecycle, pattern={"type": [PROVISIONED]}, uses=[outbox], failure=RETRY)
def send_welcome(event: nimbus.TopicEvent) -> None:
    account, progress = event.data["account"], nimbus.Progress(event.data["progress"])
    key = f"welcome/{account['id']}.txt"
    text = f"Welcome to the {account['plan']} plan: {account['seats']} seats are yours.\n"
    outbox.put(key, text, metadata={"to": account["email"]})
    progress.step("welcome email queued", percent=90, detail={"outbox": key})
    progress.finish({"account": account["id"], "plan": account["plan"], "welcome": key})


@app.http("GET", "/accounts/{id}", uses=[accounts])
def get_account(request: nimbus.Request) -> Any:
    found = accounts.get(id=request.params["id"])
    if found is None:
        raise nimbus.HTTPError(404, f"no account {request.params['id']!r}")
    return found.data
