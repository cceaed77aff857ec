"""The gateway's one URL space: HTTP routes, webhooks (with their status URLs) and WebSocket
APIs all answer on the same host and port, so every path belongs to one of them.

As in API Gateway, a route with `{parameters}` is the least specific: a webhook's path that it
would also match is the webhook's, without a clash. Any other path claimed twice is a spec error
that names both claimants.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

RESERVED_PREFIX = "/_nimbus"
"""The platform's own API."""
STATIC_PATH = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")
"""A path without {parameters} and without a trailing '/'."""
STATUS_SEGMENT = "deliveries"
"""A webhook delivery's status URL is `<webhook path>/deliveries/<token>`."""


def check_not_reserved(path: str) -> str:
    if path == RESERVED_PREFIX or path.startswith(RESERVED_PREFIX + "/"):
        raise ValueError(f"{RESERVED_PREFIX} is reserved for the platform's API")
    return path


@dataclass(frozen=True, slots=True)
class Claim:
    """`path` (and, with `subtree`, every path under `path/subtree/`) belongs to `owner`."""

    path: str
    owner: str
    kind: str
    subtree: str | None = None

    def takes(self, other: Claim) -> bool:
        """Whether `other` asks for a path that this claim already holds."""
        if self.subtree is not None and other.path.startswith(f"{self.path}/{self.subtree}/"):
            return True
        return other.path == self.path and not (self.kind == other.kind == "http")


def http_route(path: str, method: str, function: str) -> Claim:
    return Claim(path, f"the HTTP route {method} {path} of {function!r}", "http")


def webhook(path: str, function: str) -> Claim:
    return Claim(path, f"the webhook of {function!r}", "webhook", STATUS_SEGMENT)


def websocket_api(path: str, name: str) -> Claim:
    return Claim(path, f"the WebSocket API {name!r}", "websocket")


def check_gateway_paths(claims: Iterable[Claim]) -> None:
    """A clear error for the first path claimed twice (HTTP routes may share a path: their
    methods tell them apart, which the check of routes enforces)."""
    seen: list[Claim] = []
    for claim in claims:
        for other in seen:
            for holder, asker in ((other, claim), (claim, other)):
                if holder.takes(asker):
                    raise ValueError(_clash(holder, asker))
        seen.append(claim)


def _clash(holder: Claim, asker: Claim) -> str:
    status = f" (with its status URLs {holder.path}/{holder.subtree}/...)" if holder.subtree else ""
    return (
        f"path {asker.path} is claimed twice: by {asker.owner} and by {holder.owner}{status}; "
        "HTTP routes, webhooks and WebSocket APIs each need paths of their own"
    )
