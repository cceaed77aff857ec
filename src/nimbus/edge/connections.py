"""The connection registry of one node: every WebSocket connection whose socket this process
holds, and the groups they are in (`nimbus.services.websockets.Connections`).

Sends only queue on a session (`Session.deliver` never waits), so a function pushing to
thousands of clients, or to one that stopped reading, returns at once; a session whose backlog
passes its API's send buffer is dropped, and from then on sending to it raises Gone. In cluster
mode a registry that knows which node holds each connection would wrap this one and forward
sends to the node holding the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from nimbus.errors import InvalidRequest, NotFound, Throttled
from nimbus.services.websockets import (
    MAX_GROUPS,
    ConnectionInfo,
    Outgoing,
    Session,
    check_size,
    gone,
)
from nimbus.spec.websockets import WebSocketSpec

GOING_AWAY = 1001


@dataclass(slots=True)
class _Entry:
    session: Session
    groups: set[str] = field(default_factory=set)


class LocalConnections:
    """Connections by API and id, and group members by API and group name."""

    def __init__(self) -> None:
        self._specs: dict[str, WebSocketSpec] = {}
        self._entries: dict[str, dict[str, _Entry]] = {}
        self._groups: dict[str, dict[str, set[str]]] = {}

    async def create(self, spec: WebSocketSpec) -> None:
        self._specs[spec.name] = spec
        self._entries.setdefault(spec.name, {})
        self._groups.setdefault(spec.name, {})

    async def close(self) -> None:
        for api, entries in self._entries.items():
            for connection_id, entry in list(entries.items()):
                entry.session.end(GOING_AWAY, "the platform is stopping")
                self.detach(api, connection_id)

    def attach(self, api: str, connection_id: str, session: Session) -> None:
        spec = self._specs.get(api)
        if spec is None:
            raise NotFound(f"no websocket named {api!r}")
        entries = self._entries[api]
        if len(entries) >= spec.max_connections:
            raise Throttled(f"websocket {api!r} has its {spec.max_connections} connections")
        entries[connection_id] = _Entry(session)

    def detach(self, api: str, connection_id: str) -> None:
        entry = self._entries.get(api, {}).pop(connection_id, None)
        if entry is None:
            return
        groups = self._groups[api]
        for group in entry.groups:
            members = groups.get(group)
            if members is not None:
                members.discard(connection_id)
                if not members:
                    del groups[group]

    async def send(self, api: str, connection_id: str, message: Outgoing) -> None:
        self._check(api, message)
        entry = self._entry(api, connection_id)
        if not entry.session.deliver(message):
            self.detach(api, connection_id)
            raise gone(api, connection_id)

    async def send_to_group(
        self, api: str, group: str, message: Outgoing, exclude: frozenset[str] = frozenset()
    ) -> int:
        self._check(api, message)
        members = self._groups.get(api, {}).get(group, set())
        return self._deliver(api, [m for m in members if m not in exclude], message)

    async def broadcast(
        self, api: str, message: Outgoing, exclude: frozenset[str] = frozenset()
    ) -> int:
        self._check(api, message)
        everyone = self._entries.get(api, {})
        return self._deliver(api, [c for c in everyone if c not in exclude], message)

    async def join(self, api: str, connection_id: str, group: str) -> None:
        entry = self._entry(api, connection_id)
        if group in entry.groups:
            return
        if len(entry.groups) >= MAX_GROUPS:
            raise InvalidRequest(f"a connection is in at most {MAX_GROUPS} groups")
        entry.groups.add(group)
        self._groups[api].setdefault(group, set()).add(connection_id)

    async def leave(self, api: str, connection_id: str, group: str) -> None:
        entry = self._entry(api, connection_id)
        if group in entry.groups:
            entry.groups.discard(group)
            members = self._groups[api][group]
            members.discard(connection_id)
            if not members:
                del self._groups[api][group]

    async def disconnect(self, api: str, connection_id: str, code: int, reason: str) -> None:
        self._entry(api, connection_id).session.end(code, reason)
        self.detach(api, connection_id)

    async def info(self, api: str, connection_id: str) -> ConnectionInfo:
        entry = self._entry(api, connection_id)
        return msgspec.structs.replace(entry.session.info, groups=sorted(entry.groups))

    async def members(self, api: str, group: str | None = None) -> list[str]:
        if group is None:
            return sorted(self._entries.get(api, {}))
        return sorted(self._groups.get(api, {}).get(group, ()))

    def count(self, api: str) -> int:
        return len(self._entries.get(api, {}))

    def _check(self, api: str, message: Outgoing) -> None:
        spec = self._specs.get(api)
        if spec is None:
            raise NotFound(f"no websocket named {api!r}")
        check_size(spec, message)

    def _entry(self, api: str, connection_id: str) -> _Entry:
        entry = self._entries.get(api, {}).get(connection_id)
        if entry is None:
            raise gone(api, connection_id)
        return entry

    def _deliver(self, api: str, connection_ids: list[str], message: Outgoing) -> int:
        """Queue on each session; drop (detach) those that cannot take it."""
        entries = self._entries.get(api, {})
        delivered = 0
        for connection_id in connection_ids:
            entry = entries.get(connection_id)
            if entry is None:
                continue
            if entry.session.deliver(message):
                delivered += 1
            else:
                self.detach(api, connection_id)
        return delivered
