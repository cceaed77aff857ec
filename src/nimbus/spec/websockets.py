"""WebSocket APIs (API Gateway WebSocket APIs): an endpoint whose connections the platform
holds, and the routes that run functions on them.

A client connects to the API's `path`; `$connect` runs while the handshake waits (and may refuse
it), `$disconnect` after the connection is gone, and each message runs the route named by the
message's `route_key` field (API Gateway's `$request.body.action`), else `$default`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from nimbus.spec.base import NAME, Model
from nimbus.spec.metadata import Owner, Tags
from nimbus.spec.paths import STATIC_PATH, check_not_reserved

KIB = 1024
MIB = 1024 * KIB
CONNECT = "$connect"
DISCONNECT = "$disconnect"
DEFAULT = "$default"
RESERVED_ROUTES = (CONNECT, DISCONNECT, DEFAULT)
MAX_MESSAGE_LIMIT = MIB
"""The largest `max_message_bytes` an API may set: the gateway refuses bigger messages before
buffering them whatever the API says."""
ROUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


class WebSocketSpec(Model):
    """A WebSocket API. Limits follow API Gateway's where it has one (128 KB messages)."""

    name: str = Field(pattern=NAME)
    path: str = Field(min_length=1, max_length=1024, description="where clients connect")
    route_key: str = Field(
        "action", description="the JSON field of a message that names its route (a.b: nested)"
    )
    max_message_bytes: int = Field(128 * KIB, ge=1, le=MAX_MESSAGE_LIMIT)
    max_connections: int = Field(10_000, ge=1, le=1_000_000)
    send_buffer_bytes: int = Field(
        MIB, ge=1024, le=64 * MIB, description="a client further behind is disconnected"
    )
    max_inflight: int = Field(
        1, ge=1, le=100, description="messages of one connection handled at once"
    )
    ping_interval: float = Field(20.0, ge=0.1, le=3600, description="keepalive ping, s")
    ping_timeout: float = Field(20.0, ge=0.1, le=3600, description="pong wait, then drop, s")
    owner: Owner = None
    tags: Tags = {}

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if path != "/" and not STATIC_PATH.match(path):
            raise ValueError("must be a static path starting with '/' (no {parameters})")
        return check_not_reserved(path)

    @field_validator("route_key")
    @classmethod
    def _check_route_key(cls, key: str) -> str:
        if not ROUTE_KEY.match(key):
            raise ValueError("must be a field name, or dotted field names for a nested field")
        return key


class WebSocketTrigger(Model):
    """A route of a WebSocket API: `$connect`, `$disconnect`, `$default`, or a route key."""

    type: Literal["websocket"] = "websocket"
    websocket: str = Field(pattern=NAME)
    route: str = Field(DEFAULT, min_length=1, max_length=128)

    @field_validator("route")
    @classmethod
    def _check_route(cls, route: str) -> str:
        if route.startswith("$") and route not in RESERVED_ROUTES:
            raise ValueError(f"routes starting with '$' are {', '.join(RESERVED_ROUTES)}")
        if not route.isprintable() or route != route.strip():
            raise ValueError("must be printable, without leading or trailing spaces")
        return route

    @property
    def source(self) -> str:
        return self.websocket

    @property
    def label(self) -> str:
        return f"websocket {self.websocket} {self.route}"
