"""Payments: colleagues pay each other back for lunch, told at once on their open sessions.

    nimbus up examples/payments

The mobile app asks for money over HTTP (POST /requests); each colleague who owes a share is
told on every session they have open (phone, laptop), over WebSockets. A colleague pays with a
WebSocket message (`{"action": "pay", "debt": ...}`), and the one who paid for lunch is told.
Whoever was offline asks for what is pending when they connect (`{"action": "pending"}`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import nimbus

app = nimbus.App("payments")

debts = app.table(
    "debts",
    key="id",
    indexes={
        "by_debtor": nimbus.IndexSpec(key="debtor", sort_key="created_at"),
        "by_request": nimbus.IndexSpec(key="request_id"),
    },
)
notifications = app.queue("notifications")
sessions = app.websocket("sessions", path="/live")

USER = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_COLLEAGUES = 20
MAX_CENTS = 100_000
GROUP_PREFIX = "user:"


class InvalidRequest(ValueError):
    """The payment request cannot be accepted (HTTP 400); nothing was stored."""


def parse_request(body: Any) -> tuple[str, list[str], int, str]:
    """Who asks, whom, how much each (in cents) and why; InvalidRequest says what is wrong."""
    if not isinstance(body, dict) or set(body) - {"from", "to", "amount_cents", "note"}:
        raise InvalidRequest("the body is an object with from, to, amount_cents and note")
    creditor, debtors = body.get("from"), body.get("to")
    amount, note = body.get("amount_cents"), body.get("note", "")
    if not isinstance(creditor, str) or not USER.fullmatch(creditor):
        raise InvalidRequest("'from' is a user name (lower-case letters, digits, - and _)")
    if not isinstance(debtors, list) or not 1 <= len(debtors) <= MAX_COLLEAGUES:
        raise InvalidRequest(f"'to' lists 1 to {MAX_COLLEAGUES} colleagues")
    if any(not isinstance(d, str) or not USER.fullmatch(d) for d in debtors):
        raise InvalidRequest("each of 'to' is a user name")
    if creditor in debtors or len(set(debtors)) != len(debtors):
        raise InvalidRequest("'to' names each colleague once, and not the one who asks")
    if type(amount) is not int or not 1 <= amount <= MAX_CENTS:
        raise InvalidRequest(f"'amount_cents' is a whole number from 1 to {MAX_CENTS}")
    if not isinstance(note, str) or len(note) > 200:
        raise InvalidRequest("'note' is text of at most 200 characters")
    return creditor, debtors, amount, note


@app.http("POST", "/requests", uses=[debts, notifications])
def request_payment(request: nimbus.Request) -> nimbus.Response:
    """Record one debt per colleague, then queue the notifications (the app is answered at
    once; pushing to sessions is the queue handler's job)."""
    try:
        creditor, debtors, amount, note = parse_request(request.json())
    except InvalidRequest as error:
        raise nimbus.BadRequest(str(error)) from None
    request_id = uuid.uuid4().hex[:12]
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    owed = [
        {
            "id": f"{request_id}-{debtor}", "request_id": request_id, "creditor": creditor,
            "debtor": debtor, "amount_cents": amount, "note": note, "status": "open",
            "created_at": created_at,
        }
        for debtor in debtors
    ]  # fmt: skip
    for debt in owed:
        debts.put(debt)
    notifications.send_batch([{"kind": "requested", "debt": debt} for debt in owed])
    return nimbus.Response({"id": request_id, "debts": [d["id"] for d in owed]}, status=202)


@app.http("GET", "/requests/{id}", uses=[debts])
def request_status(request: nimbus.Request) -> dict[str, Any]:
    found = debts.query(request.params["id"], index="by_request").items
    if not found:
        raise nimbus.HTTPError(404, f"no payment request {request.params['id']!r}")
    statuses = {item.data["debtor"]: item.data["status"] for item in found}
    return {"id": request.params["id"], "debts": statuses}


@app.on_queue(notifications, uses=[sessions])
def notify(batch: nimbus.QueueBatch, context: nimbus.Context) -> None:
    """Push each notification to every open session of the colleague it is for; nobody
    online is fine: they ask for what is pending when they connect."""
    for message in batch:
        note = message.json()
        debt = note["debt"]
        if note["kind"] == "requested":
            user, push = debt["debtor"], {"type": "payment_requested", "debt": debt}
        else:
            user, push = debt["creditor"], {"type": "paid", "debt": debt}
        reached = sessions.send_to_group(GROUP_PREFIX + user, push)
        context.logger.info("%s for %s: %d session(s)", push["type"], user, reached)


@app.on_connect(sessions, uses=[sessions])
def connect(event: nimbus.WebSocketEvent) -> nimbus.Response | None:
    """`/live?user=bob`: every session of a user is in the group `user:<name>`. (A real app
    would check a token here; a refused handshake gets this status.)"""
    user = event.query.get("user", "")
    if not USER.fullmatch(user):
        return nimbus.Response({"error": "connect with ?user=<your user name>"}, status=401)
    sessions.join(event.connection_id, GROUP_PREFIX + user)
    return None


def user_of(event: nimbus.WebSocketEvent) -> str:
    groups = sessions.info(event.connection_id).groups
    return next(g for g in groups if g.startswith(GROUP_PREFIX)).removeprefix(GROUP_PREFIX)


@app.on_message(sessions, "pending", uses=[sessions, debts])
def pending(event: nimbus.WebSocketEvent) -> dict[str, Any]:
    """What the user still owes, oldest first: the reply goes back to this session."""
    owed = debts.query_all(user_of(event), index="by_debtor", filter={"status": "open"})
    return {"type": "pending", "debts": [item.data for item in owed]}


@app.on_message(sessions, "pay", uses=[sessions, debts, notifications])
def pay(event: nimbus.WebSocketEvent) -> dict[str, Any]:
    """Settle one of the user's open debts; the colleague who asked is told."""
    debt_id = event.json().get("debt")
    try:
        paid = debts.update(
            {"id": str(debt_id)},
            set={"status": "paid", "paid_at": datetime.now(UTC).isoformat(timespec="seconds")},
            condition={"debtor": user_of(event), "status": "open"},
        )
    except nimbus.ConditionFailed:
        return {"type": "error", "error": f"{debt_id!r} is not an open debt of yours"}
    notifications.send({"kind": "paid", "debt": paid.data})
    return {"type": "paid", "debt": debt_id}


@app.on_message(sessions)
def unknown(event: nimbus.WebSocketEvent) -> dict[str, str]:
    return {"type": "error", "error": 'send {"action": "pending"} or {"action": "pay", ...}'}
