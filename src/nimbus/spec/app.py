"""The decorator API: thin sugar that records functions and their triggers in a registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar, Unpack

from pydantic import ValidationError

from nimbus.errors import SpecError
from nimbus.spec.errors import describe
from nimbus.spec.model import AppSpec, FailurePolicy, FunctionSpec, GatewaySpec, HttpTrigger

Handler = TypeVar("Handler", bound=Callable[..., Any])


class FunctionOptions(TypedDict, total=False):
    """Per-function settings accepted by every decorator (see `FunctionSpec`)."""

    timeout: float
    memory_mb: int
    concurrency: int
    min_instances: int
    max_instances: int
    keep_alive: float
    environment: Mapping[str, str]
    preload: bool
    failure: FailurePolicy


@dataclass
class _Registration:
    handler: Callable[..., Any]
    name: str
    options: dict[str, Any]
    triggers: list[HttpTrigger] = field(default_factory=list)

    @property
    def where(self) -> str:
        code = getattr(self.handler, "__code__", None)
        if code is None:
            return f"<{self.name}>"
        return f"{code.co_filename}:{code.co_firstlineno}"


class App:
    """An app: a named set of functions and how they are triggered.

    Decorators return the handler unchanged, so it stays an ordinary callable in tests.
    """

    def __init__(self, name: str, *, max_body_bytes: int | None = None) -> None:
        self.name = name
        self._gateway = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
        self._registry: dict[str, _Registration] = {}

    def function(
        self, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Declare a function with no trigger of its own (invoked directly or asynchronously)."""
        return self._register(name, options, None)

    def http(
        self, method: str, path: str, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Declare a function answering HTTP `method` requests on `path` (`{param}` allowed)."""
        return self._register(name, options, {"method": method, "path": path})

    def spec(self, root: str) -> AppSpec:
        """The validated spec of this app, its handler modules importable from `root`."""
        try:
            return AppSpec(
                name=self.name,
                root=root,
                gateway=GatewaySpec(**self._gateway),
                functions={name: self._build(reg) for name, reg in self._registry.items()},
            )
        except ValidationError as error:
            raise SpecError(describe(error, lambda loc: f"app {self.name!r}")) from None

    def _register(
        self, name: str | None, options: Mapping[str, Any], trigger: dict[str, str] | None
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            current = self._registration_of(handler) or self._new_registration(handler, name)
            conflicting = sorted(
                key
                for key, value in options.items()
                if key in current.options and current.options[key] != value
            )
            if conflicting:
                raise SpecError(
                    f"{current.where}: function {current.name!r}: "
                    f"{', '.join(conflicting)} set twice with different values"
                )
            candidate = _Registration(
                handler, current.name, {**current.options, **options}, list(current.triggers)
            )
            if trigger is not None:
                try:
                    candidate.triggers.append(HttpTrigger.model_validate(trigger))
                except ValidationError as error:
                    raise SpecError(describe(error, lambda loc: current.where)) from None
            self._build(candidate)  # a bad declaration raises here and registers nothing
            self._registry[candidate.name] = candidate
            return handler

        return decorate

    def _registration_of(self, handler: Callable[..., Any]) -> _Registration | None:
        for registration in self._registry.values():
            if registration.handler is handler:
                return registration
        return None

    def _new_registration(self, handler: Callable[..., Any], name: str | None) -> _Registration:
        if not callable(handler):
            raise SpecError(f"app {self.name!r}: {handler!r} is not callable")
        registration = _Registration(handler, name or handler.__name__, {})
        qualname = getattr(handler, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname:
            raise SpecError(f"{registration.where}: a handler must be defined at module level")
        if registration.name in self._registry:
            raise SpecError(f"{registration.where}: function {registration.name!r} declared twice")
        return registration

    def _build(self, registration: _Registration) -> FunctionSpec:
        handler = registration.handler
        options = dict(registration.options)
        if inspect.iscoroutinefunction(handler) is False and options.get("concurrency", 1) > 1:
            raise SpecError(
                f"{registration.where}: function {registration.name!r}: "
                "concurrency > 1 needs an `async def` handler"
            )
        try:
            return FunctionSpec(
                name=registration.name,
                handler=f"{handler.__module__}:{handler.__qualname__}",
                triggers=tuple(registration.triggers),
                **options,
            )
        except ValidationError as error:
            raise SpecError(
                describe(error, lambda loc: f"{registration.where}: {registration.name}")
            ) from None
