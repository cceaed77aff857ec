"""Settings changed at runtime (through `nimbus.PLATFORM`): persisted, and laid over every
deployed spec until a deploy changes the declared value they replaced.

The rule, as CloudFormation treats drift: an update leaves a property that was changed outside
the stack alone as long as the template's value of it does not change. So a runtime value holds
across restarts and across deploys of the same declared value; a deploy that declares a new
value (the team decided) wins and the runtime value is forgotten. A value that no longer fits
the spec (its function or resource is gone, or it breaks a rule such as `min_instances <=
max_instances`) is forgotten too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ValidationError

from nimbus.ops.database import Database
from nimbus.spec.model import AppSpec
from nimbus.spec.plan import RESOURCE_KINDS

Field = Literal["max_instances", "tags"]
SECTIONS = ("functions", *RESOURCE_KINDS)
"""The AppSpec fields holding named functions and resources, which settings apply to."""


@dataclass(frozen=True, slots=True)
class Setting:
    """A value set at runtime (`nimbus.PLATFORM`) in place of a declared one."""

    target: str
    """The function or resource's name."""
    field: Field
    value: Any
    replaced: Any
    """The declared value it replaced: while a deploy declares this, the setting holds."""


class RuntimeSettings:
    """The settings in force, persisted in the platform's database (they survive restarts)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._settings: dict[tuple[str, str], Setting] = {}
        rows = db.read_now("SELECT target, field, value, replaced FROM runtime_settings")
        for row in rows:
            setting = Setting(
                row["target"], row["field"], msgspec.json.decode(row["value"]),
                msgspec.json.decode(row["replaced"]),
            )  # fmt: skip
            self._settings[(setting.target, setting.field)] = setting

    def of(self, target: str) -> dict[str, Any]:
        """The settings of `target` in force: field -> value."""
        return {s.field: s.value for s in self._settings.values() if s.target == target}

    def effective(self, declared: AppSpec) -> tuple[AppSpec, list[Setting]]:
        """`declared` with the settings that still hold laid over it, and those that do not."""
        stale: list[Setting] = []
        sections: dict[str, dict[str, BaseModel]] = {}
        for setting in self._settings.values():
            found = locate(declared, setting.target)
            if found is None:
                stale.append(setting)
                continue
            section, _ = found
            updated = sections.setdefault(section, dict(getattr(declared, section)))
            changed = _changed(updated[setting.target], setting)
            if changed is None:
                stale.append(setting)
            else:
                updated[setting.target] = changed
        return declared.model_copy(update=sections), stale

    async def put(self, setting: Setting) -> None:
        """Persist (committed before it returns) and use from the next `effective`."""
        await self._db.write(
            "INSERT OR REPLACE INTO runtime_settings VALUES (?, ?, ?, ?, ?)",
            (
                setting.target, setting.field, msgspec.json.encode(setting.value).decode(),
                msgspec.json.encode(setting.replaced).decode(), time.time(),
            ),
        )  # fmt: skip
        self._settings[(setting.target, setting.field)] = setting

    async def forget(self, settings: Iterable[Setting]) -> None:
        keys = [(s.target, s.field) for s in settings if (s.target, s.field) in self._settings]
        if not keys:
            return
        await self._db.transaction(
            [("DELETE FROM runtime_settings WHERE target = ? AND field = ?", key) for key in keys]
        )
        for key in keys:
            self._settings.pop(key, None)


def locate(spec: AppSpec, name: str) -> tuple[str, BaseModel] | None:
    """The section of the spec (`functions`, `queues`, ...) declaring `name`, and its model."""
    for section in SECTIONS:
        declared = getattr(spec, section, {})
        if name in declared:
            return section, declared[name]
    return None


def _changed(model: BaseModel, setting: Setting) -> BaseModel | None:
    """The model with the setting applied; None when the setting no longer holds."""
    if setting.field not in type(model).model_fields:
        return None
    if msgspec.to_builtins(getattr(model, setting.field)) != setting.replaced:
        return None  # a deploy declared a new value: it wins
    try:
        return type(model).model_validate({**model.model_dump(), setting.field: setting.value})
    except ValidationError:
        return None
