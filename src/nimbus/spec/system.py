"""The platform's own resources, present in every app under reserved names.

`PLATFORM_EVENTS` is the system event bus: a topic the platform publishes its events to (see
`nimbus.events.platform`), which functions subscribe to like any topic but may not publish to,
as EventBridge keeps `aws.*` sources for AWS. `PLATFORM_CONTROL` is what a function lists in
`uses` to act on the platform at runtime (`nimbus.PLATFORM`). An app may not declare either.
"""

from __future__ import annotations

PLATFORM_EVENTS = "nimbus-events"
PLATFORM_CONTROL = "nimbus-platform"
RESERVED_NAMES = (PLATFORM_EVENTS, PLATFORM_CONTROL)


def check_not_reserved(name: str, what: str) -> None:
    """ValueError when an app tries to declare one of the platform's own names."""
    if name in RESERVED_NAMES:
        raise ValueError(f"{what} {name!r}: the name is reserved for the platform's own resources")
