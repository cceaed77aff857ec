"""The controller's side of `nimbus.PLATFORM`: describe, tag, untag and rescale the app's own
functions and resources at runtime.

A change is checked as a deploy would check it (InvalidRequest, nothing changed), persisted as a
runtime setting (`nimbus.ops.runtime_settings`), then applied like a deploy of the same declared
spec: a pool takes a new `max_instances` in place, without cold starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from pydantic import BaseModel, ValidationError

from nimbus.errors import InvalidRequest, NotFound
from nimbus.ops.runtime_settings import Field, RuntimeSettings, Setting, locate
from nimbus.services.control import (
    ControlOp,
    Describe,
    Description,
    SetMaxInstances,
    TagResource,
    UntagResource,
)
from nimbus.spec.errors import describe
from nimbus.spec.model import AppSpec, FunctionSpec
from nimbus.spec.plan import RESOURCE_KINDS

SpecOf = Callable[[], AppSpec | None]


class Control:
    """`nimbus.PLATFORM`'s operations: describe, tag and limit the app's functions and
    resources at runtime."""

    def __init__(
        self,
        settings: RuntimeSettings,
        declared: SpecOf,
        running: SpecOf,
        redeploy: Callable[[], Awaitable[object]],
    ) -> None:
        self._settings = settings
        self._declared = declared
        self._running = running
        self._redeploy = redeploy

    async def __call__(self, caller: str, op: ControlOp) -> Description:
        """Run one operation a function asked for (its permission is checked already)."""
        match op:
            case Describe():
                pass
            case TagResource():
                await self._change(op.name, "tags", {**self._tags(op.name), **op.tags})
            case UntagResource():
                kept = {k: v for k, v in self._tags(op.name).items() if k not in op.keys}
                await self._change(op.name, "tags", kept)
            case SetMaxInstances():
                if not isinstance(self._find(op.function)[1], FunctionSpec):
                    raise InvalidRequest(f"{op.function!r} is not a function")
                await self._change(op.function, "max_instances", op.max_instances)
        return self.describe(op.function if isinstance(op, SetMaxInstances) else op.name)

    def describe(self, name: str) -> Description:
        """The function or resource as it runs now (NotFound if there is none)."""
        section, model = self._find(name)
        kind = RESOURCE_KINDS.get(section, "function")
        function = model if isinstance(model, FunctionSpec) else None
        return Description(
            name=name, kind=kind, owner=getattr(model, "owner", None),
            tags=getattr(model, "tags", {}), runtime=self._settings.of(name),
            max_instances=function.max_instances if function else None,
            min_instances=function.min_instances if function else None,
        )  # fmt: skip

    async def _change(self, name: str, field: Field, value: Any) -> None:
        """Check the new value, persist it, apply it (a value equal to the declared one just
        drops the runtime setting)."""
        running = self._find(name)[1]
        try:
            type(running).model_validate({**running.model_dump(), field: value})
        except ValidationError as error:
            raise InvalidRequest(describe(error, lambda loc: name)) from None
        found = locate(self._spec(self._declared), name)
        assert found is not None
        replaced = msgspec.to_builtins(getattr(found[1], field))
        setting = Setting(name, field, value, replaced)
        if value == replaced:
            await self._settings.forget([setting])
        else:
            await self._settings.put(setting)
        await self._redeploy()

    def _find(self, name: str) -> tuple[str, BaseModel]:
        found = locate(self._spec(self._running), name)
        if found is None:
            raise NotFound(f"the app has no function or resource named {name!r}")
        return found

    def _tags(self, name: str) -> dict[str, str]:
        tags = getattr(self._find(name)[1], "tags", None)
        if tags is None:
            raise InvalidRequest(f"{name!r} takes no tags")
        return dict(tags)

    @staticmethod
    def _spec(spec: SpecOf) -> AppSpec:
        current = spec()
        if current is None:
            raise NotFound("no app is deployed")
        return current
