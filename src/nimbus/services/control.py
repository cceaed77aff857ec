"""The operations of the platform-control handle (`nimbus.PLATFORM`): what a function may do to
its own app at runtime, with `uses=[nimbus.PLATFORM]` (AWS: the Lambda and tagging APIs under
an IAM policy).

Runtime changes are persisted and shown by the admin API; a later deploy keeps each one until
it changes the declared value that the change replaced (see `nimbus.ops.runtime_settings`).
"""

from __future__ import annotations

from typing import Any

import msgspec


class Describe(msgspec.Struct, tag="platform.describe", kw_only=True, frozen=True):
    name: str


class TagResource(msgspec.Struct, tag="platform.tag", kw_only=True, frozen=True):
    """Add or overwrite tags of a function or resource (AWS TagResource)."""

    name: str
    tags: dict[str, str]


class UntagResource(msgspec.Struct, tag="platform.untag", kw_only=True, frozen=True):
    """Remove tags by key; a key it does not have is ignored (AWS UntagResource)."""

    name: str
    keys: tuple[str, ...]


class SetMaxInstances(msgspec.Struct, tag="platform.set_max_instances", kw_only=True, frozen=True):
    """Change how many instances a function may run at once (AWS PutFunctionConcurrency)."""

    function: str
    max_instances: int


ControlOp = Describe | TagResource | UntagResource | SetMaxInstances


class Description(msgspec.Struct, kw_only=True, frozen=True):
    """A function or resource as it runs now, and what runtime changes made it so."""

    name: str
    kind: str
    """`function`, `queue`, `topic`, `stream`, `table`, `bucket`, ..."""
    owner: str | None
    tags: dict[str, str]
    max_instances: int | None = None
    """Functions only."""
    min_instances: int | None = None
    """Functions only."""
    runtime: dict[str, Any] = {}
    """The settings changed at runtime and still in force: field -> value."""
