"""How providers sign webhook requests (GitHub, Stripe, Standard Webhooks), written from their
documentation for the tests and the example: the senders' side of nimbus's verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def github_headers(secret: str, body: bytes, delivery: str, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_headers(secrets: list[str], body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """One v1 signature per secret, as Stripe sends while a secret is being rolled."""
    moment = int(time.time()) if timestamp is None else timestamp
    signatures = ",".join(f"v1={stripe_signature(s, body, moment)}" for s in secrets)
    return {"Stripe-Signature": f"t={moment},{signatures}", "Content-Type": "application/json"}


def standard_headers(
    secret: str, body: bytes, message_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks: `whsec_` + base64 of the key; v1 signature over id.timestamp.body."""
    moment = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{moment}.".encode() + body
    signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }
