"""Bearer-token authentication of the platform API (/_nimbus): it deploys code and reads and
writes every resource, so each request must carry the platform's token (RFC 6750), except the
health check that load balancers and start-up scripts poll.

Public app routes (HTTP functions) never reach this: the gateway sends only /_nimbus here.
"""

from __future__ import annotations

import hmac

import msgspec

from nimbus.edge.dashboard import PAGE_PATHS
from nimbus.edge.gateway import ASGIApp, Receive, Scope, Send
from nimbus.errors import Unauthorized

OPEN_PATHS = frozenset({"/_nimbus/health", *PAGE_PATHS})  # the dashboard's files hold no data
REALM = 'Bearer realm="nimbus"'
HINT = (
    "send `Authorization: Bearer TOKEN` with the platform's token (nimbus up --token or "
    "NIMBUS_TOKEN; else the one it generated, in its data folder's platform.json)"
)
POLICY_VIOLATION = 1008  # WebSocket close code (RFC 6455)


class TokenAuth:
    """Let a request through to `app` only with the right token (compared in constant time,
    so that response times tell nothing about it)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        given = _bearer(scope)
        if given is not None and hmac.compare_digest(given, self._token):
            await self._app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        problem = "no platform token was sent" if given is None else "the token is not valid"
        challenge = REALM if given is None else f'{REALM}, error="invalid_token"'
        body = msgspec.json.encode({"error": f"{problem}: {HINT}", "type": Unauthorized.__name__})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> bytes | None:
    """The token of the request's `Authorization: Bearer` header (the scheme in any case)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return bytes(token.strip())
            return b""
    return None
