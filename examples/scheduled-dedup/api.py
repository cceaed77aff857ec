"""The customers API: add, list (or look up by e-mail) and get customers.

Nothing stops two sign-ups with the same e-mail (in another case, or with a `+tag`): that is
what the scheduled job in dedup.py cleans up.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import nimbus

customers = nimbus.Table("customers")

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
OPTIONAL = ("phone", "city")


def normalise_email(email: str) -> str:
    """The form two addresses of one person share: trimmed, lower case, without a `+tag`."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def read_customer(request: nimbus.Request) -> dict[str, str]:
    body = request.json()
    if not isinstance(body, dict):
        raise nimbus.BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"name", "email", *OPTIONAL})
    if unknown:
        raise nimbus.BadRequest(f"unknown fields: {', '.join(unknown)}")
    for field in ("name", "email"):
        if field not in body:
            raise nimbus.BadRequest(f"{field!r} is required")
    for field, value in body.items():
        if not isinstance(value, str) or not value.strip():
            raise nimbus.BadRequest(f"{field!r} must be a non-empty string")
    if not EMAIL.fullmatch(body["email"].strip()):
        raise nimbus.BadRequest(f"{body['email']!r} is not an e-mail address")
    return {field: value.strip() for field, value in body.items()}


def add_customer(request: nimbus.Request) -> nimbus.Response:
    """POST /customers {"name", "email", "phone"?, "city"?}"""
    customer = read_customer(request)
    customer |= {
        "id": uuid.uuid4().hex,
        "email_key": normalise_email(customer["email"]),
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    customers.put(customer)
    return nimbus.Response(
        customer, status=201, headers={"location": f"/customers/{customer['id']}"}
    )


def list_customers(request: nimbus.Request) -> dict[str, list[dict[str, Any]]]:
    """GET /customers, oldest first; ?email=... finds those sharing that address."""
    email = request.query.get("email")
    if email is None:
        found = customers.scan_all()
    else:
        found = customers.query_all(normalise_email(email), index="by_email")
    return {"customers": sorted((item.data for item in found), key=lambda c: c["created_at"])}


def get_customer(request: nimbus.Request) -> dict[str, Any]:
    """GET /customers/{id}"""
    found = customers.get(id=request.params["id"])
    if found is None:
        raise nimbus.HTTPError(404, f"no customer {request.params['id']!r}")
    return found.data
