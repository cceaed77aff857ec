"""Event-based cloud automation: functions that react to the platform's own events and act on
the platform, as EventBridge rules on `aws.*` events drive Lambda functions that call AWS.

    nimbus up examples/cloud-automation

- Every resource the app creates is tagged with its owner's cost center (`tag_cost_center`).
- A throttled function gets a higher `max_instances` (doubled, up to a ceiling) and its owner
  is told (`scale_on_throttle` -> queue `notifications` -> `notify_owner` -> table `outbox`,
  where a mail sender would pick the messages up; GET /outbox lists them).
"""

from __future__ import annotations

import os
import time
from typing import Any

import nimbus

app = nimbus.App("cloud-automation")

COST_CENTERS = {"search-team": "cc-1042", "checkout-team": "cc-2210", "platform-team": "cc-0001"}
"""Who pays for what the teams own; a resource of anyone else is tagged `unassigned`."""
UNASSIGNED = "unassigned"
CEILING = {"MAX_INSTANCES_CEILING": "4"}
"""How far the automation may raise a function's max_instances on its own."""

# The workload: resources and a function, each owned by a team.
orders = app.queue("orders", owner="checkout-team")
invoices = app.bucket("invoices", owner="checkout-team")
catalog = app.table("catalog", key="sku", owner="search-team")


@app.http("GET", "/search", max_instances=1, owner="search-team")
def search(request: nimbus.Request) -> dict[str, Any]:
    """A slow endpoint with a low limit: a crowd of callers gets throttled (429)."""
    time.sleep(float(request.query.get("seconds", "0.5")))
    return {"query": request.query.get("q", ""), "results": []}


# The automation, and where it leaves word for the owners.
notifications = app.queue("notifications", owner="platform-team")
outbox = app.table("outbox", key="id", owner="platform-team")


@app.on_topic(
    nimbus.PLATFORM_EVENTS,
    pattern={"type": ["nimbus.resource.created"]},
    uses=[nimbus.PLATFORM],
    owner="platform-team",
)
def tag_cost_center(event: nimbus.TopicEvent) -> None:
    """Tag a new resource with the cost center of its owner (idempotent: events may repeat)."""
    resource, owner = event.data["resource"], event.data["owner"]
    center = COST_CENTERS.get(owner or "", UNASSIGNED)
    try:
        nimbus.PLATFORM.tag(resource, {"cost-center": center})
    except nimbus.NotFound:
        print(f"{resource} is gone already: nothing to tag")


@app.on_topic(
    nimbus.PLATFORM_EVENTS,
    pattern={"type": ["nimbus.function.throttled"]},
    uses=[nimbus.PLATFORM, notifications],
    environment=CEILING,
    owner="platform-team",
)
def scale_on_throttle(event: nimbus.TopicEvent) -> None:
    """Double the limit the callers ran into, up to the ceiling, and tell the owner."""
    function, limit = event.data["function"], event.data["max_instances"]
    ceiling = int(os.environ["MAX_INSTANCES_CEILING"])
    try:
        now = nimbus.PLATFORM.describe(function)
    except nimbus.NotFound:
        return  # removed since
    assert now.max_instances is not None
    if now.max_instances > limit:
        return  # raised already, since these callers were turned away
    owner = event.data["owner"] or "platform-team"
    count = event.data["count"]
    if now.max_instances >= ceiling:
        note = f"{function} turned away {count} call(s) at its ceiling of {ceiling} instances"
        notifications.send({"to": owner, "function": function, "subject": note})
        return
    raised = min(now.max_instances * 2, ceiling)
    nimbus.PLATFORM.set_max_instances(function, raised)
    note = f"{function} turned away {count} call(s): max_instances {now.max_instances} -> {raised}"
    notifications.send({"to": owner, "function": function, "subject": note})


@app.on_queue(notifications, uses=[outbox], owner="platform-team")
def notify_owner(batch: nimbus.QueueBatch) -> None:
    """Put each notification in the outbox (keyed by the message: a redelivery overwrites)."""
    for message in batch:
        outbox.put({"id": message.id, "sent_at": message.sent_at, **message.json()})


@app.http("GET", "/outbox", uses=[outbox])
def list_outbox(request: nimbus.Request) -> list[dict[str, Any]]:
    """The notifications, oldest first."""
    items = [item.data for item in outbox.scan_all()]
    return sorted(items, key=lambda item: item["sent_at"])
