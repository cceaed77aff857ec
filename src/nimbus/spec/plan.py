"""Plan: what applying a desired spec to a running one would add, change and remove."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nimbus.spec.model import AppSpec, FunctionSpec


class FieldChange(BaseModel):
    field: str
    old: Any
    new: Any


class FunctionChange(BaseModel):
    name: str
    fields: list[FieldChange]


class Plan(BaseModel):
    app: list[FieldChange] = []
    add: list[str] = []
    change: list[FunctionChange] = []
    remove: list[str] = []

    @property
    def empty(self) -> bool:
        return not (self.app or self.add or self.change or self.remove)


def make_plan(current: AppSpec | None, desired: AppSpec) -> Plan:
    """The difference between `current` (None: nothing deployed) and `desired`."""
    if current is None:
        return Plan(add=sorted(desired.functions))
    app_changes = _diff(
        current.model_dump(exclude={"functions"}), desired.model_dump(exclude={"functions"})
    )
    changes = [
        FunctionChange(name=name, fields=fields)
        for name in sorted(set(current.functions) & set(desired.functions))
        if (fields := _function_diff(current.functions[name], desired.functions[name]))
    ]
    return Plan(
        app=app_changes,
        add=sorted(set(desired.functions) - set(current.functions)),
        change=changes,
        remove=sorted(set(current.functions) - set(desired.functions)),
    )


def _function_diff(old: FunctionSpec, new: FunctionSpec) -> list[FieldChange]:
    return _diff(old.model_dump(mode="json"), new.model_dump(mode="json"))


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[FieldChange]:
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict) and key != "environment":
            changes.extend(_diff(before, after, f"{prefix}{key}."))
        elif before != after:
            changes.append(FieldChange(field=f"{prefix}{key}", old=before, new=after))
    return changes
