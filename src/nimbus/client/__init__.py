"""Clients for outside systems: invoke a platform's functions and use its resources over the
platform API, with its token. Not imported by `import nimbus` (it loads httpx).

    from nimbus.client import Client

    with Client() as nimbus:                       # NIMBUS_URL / NIMBUS_TOKEN, or .nimbus/
        print(nimbus.invoke("hello", {"name": "Ada"}))
"""

from __future__ import annotations

from nimbus.client.aio import AsyncClient, AsyncInvocation
from nimbus.client.sync import Client, Invocation
from nimbus.client.wire import Job
from nimbus.errors import (
    ConditionFailed,
    Conflict,
    FunctionFailed,
    InvalidRequest,
    NimbusError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PlatformUnavailable,
    Throttled,
    Unauthorized,
)

__all__ = [
    "AsyncClient",
    "AsyncInvocation",
    "Client",
    "ConditionFailed",
    "Conflict",
    "FunctionFailed",
    "InvalidRequest",
    "Invocation",
    "Job",
    "NimbusError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlatformUnavailable",
    "Throttled",
    "Unauthorized",
]
