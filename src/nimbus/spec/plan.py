"""Plan: what applying a desired spec to a running one would add, change and remove."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from nimbus.spec.model import AppSpec


class FieldChange(BaseModel):
    field: str
    old: Any
    new: Any


class FunctionChange(BaseModel):
    name: str
    fields: list[FieldChange]


class Plan(BaseModel):
    """Functions and resources (named `KIND NAME`, e.g. `queue orders`) to add, change,
    remove; `app` holds the app's own settings."""

    app: list[FieldChange] = []
    add: list[str] = []
    change: list[FunctionChange] = []
    remove: list[str] = []
    add_resources: list[str] = []
    change_resources: list[FunctionChange] = []
    remove_resources: list[str] = []

    @property
    def empty(self) -> bool:
        return not (
            self.app or self.add or self.change or self.remove or self.add_resources
            or self.change_resources or self.remove_resources
        )  # fmt: skip


RESOURCE_KINDS = {"queues": "queue", "topics": "topic", "streams": "stream"}
RESOURCE_KINDS |= {"tables": "table", "buckets": "bucket"}
RESOURCE_KINDS |= {"mqtt": "mqtt"}


def make_plan(current: AppSpec | None, desired: AppSpec) -> Plan:
    """The difference between `current` (None: nothing deployed) and `desired`."""
    old_resources = {} if current is None else _resources(current)
    new_resources = _resources(desired)
    plan = Plan(
        add_resources=sorted(set(new_resources) - set(old_resources)),
        change_resources=_changes(old_resources, new_resources),
        remove_resources=sorted(set(old_resources) - set(new_resources)),
    )
    if current is None:
        plan.add = sorted(desired.functions)
        return plan
    settings = {"functions", *RESOURCE_KINDS}
    plan.app = _diff(current.model_dump(exclude=settings), desired.model_dump(exclude=settings))
    plan.add = sorted(set(desired.functions) - set(current.functions))
    plan.change = _changes(current.functions, desired.functions)
    plan.remove = sorted(set(current.functions) - set(desired.functions))
    return plan


def _resources(spec: AppSpec) -> dict[str, BaseModel]:
    return {
        f"{kind} {name}": resource
        for field, kind in RESOURCE_KINDS.items()
        for name, resource in getattr(spec, field).items()
    }


def _changes(old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]) -> list[FunctionChange]:
    return [
        FunctionChange(name=name, fields=fields)
        for name in sorted(set(old) & set(new))
        if (fields := _diff(old[name].model_dump(mode="json"), new[name].model_dump(mode="json")))
    ]


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[FieldChange]:
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict) and key != "environment":
            changes.extend(_diff(before, after, f"{prefix}{key}."))
        elif before != after:
            changes.append(FieldChange(field=f"{prefix}{key}", old=before, new=after))
    return changes
