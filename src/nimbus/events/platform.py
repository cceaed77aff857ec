"""The catalogue of platform events: their types, and the `data` each one carries.

Shaped like EventBridge's AWS service events, in CloudEvents terms: `source` names the part of
the platform that speaks (`nimbus.function`, as `aws.lambda`), `type` says what happened (the
`detail-type`), `subject` names the function or resource it is about (as `resources` holds its
ARN: `nimbus:function:resize`, `nimbus:queue:orders`), and `data` is one of the structs below
(the `detail`). docs/platform-events.md lists them with examples.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nimbus.spec.model import AppSpec, FunctionSpec
from nimbus.spec.plan import make_plan

FUNCTION_DEPLOYED = "nimbus.function.deployed"
FUNCTION_UPDATED = "nimbus.function.updated"
FUNCTION_REMOVED = "nimbus.function.removed"
FUNCTION_THROTTLED = "nimbus.function.throttled"
RESOURCE_CREATED = "nimbus.resource.created"
RESOURCE_DELETED = "nimbus.resource.deleted"
INVOCATION_FAILED = "nimbus.invocation.failed"
MESSAGE_DEAD_LETTERED = "nimbus.message.dead_lettered"
SCHEDULE_MISSED = "nimbus.schedule.missed"
MAX_ERROR_CHARS = 1024  # of an error message carried in an event


class About(msgspec.Struct, kw_only=True, frozen=True):
    """The function an event is about, with what automation needs to act on it."""

    function: str
    owner: str | None = None
    tags: dict[str, str] = {}


class FunctionDeployed(About, kw_only=True, frozen=True):
    handler: str
    triggers: list[str]
    """The triggers' labels: `POST /orders`, `queue orders`, `topic nimbus-events`..."""
    max_instances: int


class Change(msgspec.Struct, frozen=True):
    field: str
    """A dotted path: `max_instances`, `failure.retries`, `tags.team`."""
    old: Any
    new: Any


class FunctionUpdated(About, kw_only=True, frozen=True):
    changes: list[Change]


class FunctionRemoved(About, kw_only=True, frozen=True):
    pass


class Burst(About, kw_only=True, frozen=True):
    """What a flood of like events is summed into: `count` of them since `since` (epoch s)."""

    count: int
    since: float


class FunctionThrottled(Burst, kw_only=True, frozen=True):
    max_instances: int
    """The limit the callers ran into."""


class InvocationFailed(Burst, kw_only=True, frozen=True):
    kind: str
    """Handler, Timeout, OutOfMemory, Crash or Init."""
    error_type: str
    error_message: str
    request_id: str
    """The latest failed invocation's (`nimbus invocations`, `nimbus logs --request`)."""
    trigger: str


class ResourceChanged(msgspec.Struct, kw_only=True, frozen=True):
    """A resource created, or deleted from the spec (its data is kept)."""

    resource: str
    kind: str
    owner: str | None = None
    tags: dict[str, str] = {}


class MessageDeadLettered(msgspec.Struct, kw_only=True, frozen=True):
    source: str
    """Where the event came from: `queue:orders`, `topic:events`, `async`, ..."""
    target: str | None
    """The dead-letter queue, topic or function; None: the platform's dead letters
    (`nimbus dlq ls`), or a queue's own dead-letter area."""
    function: str | None = None
    """The function that failed it; None when a queue dead-lettered it by itself."""
    message_id: str | None = None
    """The queue message's id, when a queue dead-lettered it."""
    request_id: str | None = None
    attempts: int
    condition: str
    """RetriesExhausted, EventAgeExceeded or MaxReceives."""
    error_type: str | None = None
    error_message: str | None = None


class ScheduleMissed(About, kw_only=True, frozen=True):
    schedule: str
    timezone: str
    missed: str
    """The trigger's setting (`skip` or `once`) that gave the ticks up."""
    count: int
    """Ticks given up."""
    last_fired: float | None
    """The last tick fired before (epoch s); None if it had never fired."""


class PlatformEvent(msgspec.Struct, frozen=True):
    type: str
    subject: str
    data: msgspec.Struct

    @property
    def source(self) -> str:
        """`nimbus.function.deployed` comes from `nimbus.function`."""
        return self.type.rpartition(".")[0]


def function_subject(name: str) -> str:
    return f"nimbus:function:{name}"


def about(function: FunctionSpec | None, name: str) -> dict[str, Any]:
    """The `About` fields of a function (only its name if it is not deployed)."""
    if function is None:
        return {"function": name}
    return {"function": name, "owner": function.owner, "tags": function.tags}


def deploy_events(before: AppSpec | None, after: AppSpec) -> list[PlatformEvent]:
    """What applying `after` over `before` (None: nothing deployed yet) did."""
    plan = make_plan(before, after)
    events = []
    for name in plan.add:
        function = after.functions[name]
        data: msgspec.Struct = FunctionDeployed(
            **about(function, name), handler=function.handler, max_instances=function.max_instances,
            triggers=[trigger.label for trigger in function.triggers],
        )  # fmt: skip
        events.append(PlatformEvent(FUNCTION_DEPLOYED, function_subject(name), data))
    for change in plan.change:
        changes = [Change(c.field, c.old, c.new) for c in change.fields]
        data = FunctionUpdated(**about(after.functions[change.name], change.name), changes=changes)
        events.append(PlatformEvent(FUNCTION_UPDATED, function_subject(change.name), data))
    for name in plan.remove:
        data = FunctionRemoved(**about(before.functions[name] if before else None, name))
        events.append(PlatformEvent(FUNCTION_REMOVED, function_subject(name), data))
    events += [_resource(RESOURCE_CREATED, after, key) for key in plan.add_resources]
    if before is not None:
        events += [_resource(RESOURCE_DELETED, before, key) for key in plan.remove_resources]
    return events


def _resource(event_type: str, spec: AppSpec, key: str) -> PlatformEvent:
    """`key` is the plan's `KIND NAME`."""
    kind, _, name = key.partition(" ")
    resource = spec.resources().get(name)
    owner, tags = getattr(resource, "owner", None), getattr(resource, "tags", {})
    data = ResourceChanged(resource=name, kind=kind, owner=owner, tags=tags)
    return PlatformEvent(event_type, f"nimbus:{kind}:{name}", data)
