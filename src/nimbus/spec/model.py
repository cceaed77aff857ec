"""The validated, declarative app model. Decorators and nimbus.yaml both produce an `AppSpec`."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
HANDLER = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH_PARAM = re.compile(r"\{([^{}]*)\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIX = "/_nimbus"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpTrigger(Model):
    """A route of the HTTP gateway: synchronous request-response."""

    type: Literal["http"] = "http"
    method: HttpMethod
    path: str = Field(min_length=1, max_length=1024)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with '/'")
        if path == RESERVED_PREFIX or path.startswith(RESERVED_PREFIX + "/"):
            raise ValueError(f"{RESERVED_PREFIX} is reserved for the platform's API")
        names = PATH_PARAM.findall(path)
        for name in names:
            if not IDENTIFIER.match(name):
                raise ValueError(f"path parameter {{{name}}} must be a Python identifier")
        if len(set(names)) != len(names):
            raise ValueError("a path parameter appears twice")
        if PATH_PARAM.sub("", path).count("{") or PATH_PARAM.sub("", path).count("}"):
            raise ValueError("unbalanced braces")
        return path

    def route_key(self) -> tuple[str, str]:
        """Method and path shape: two routes with equal keys can never be told apart."""
        return self.method, PATH_PARAM.sub("{}", self.path)


Trigger = HttpTrigger


class FailurePolicy(Model):
    """What happens when an asynchronous invocation fails (defaults as AWS Lambda's)."""

    retries: int = Field(2, ge=0, le=10)
    backoff: float = Field(60.0, gt=0, le=3600, description="delay before the first retry, s")
    max_event_age: float = Field(21600.0, gt=0, le=21600, description="give up after, s")


class FunctionSpec(Model):
    name: str = Field(pattern=NAME)
    handler: str = Field(pattern=HANDLER, description="module:qualified.name")
    timeout: float = Field(3.0, gt=0, le=900)
    memory_mb: int = Field(128, ge=64, le=10240)
    concurrency: int = Field(1, ge=1, le=1000, description="invocations at once per instance")
    min_instances: int = Field(0, ge=0, le=1000)
    max_instances: int = Field(10, ge=1, le=1000)
    keep_alive: float = Field(300.0, ge=0, le=86400, description="idle time before stop, s")
    environment: dict[str, str] = Field(default_factory=dict)
    preload: bool = False
    triggers: tuple[Trigger, ...] = ()
    failure: FailurePolicy = FailurePolicy()

    @field_validator("environment")
    @classmethod
    def _check_environment(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if "\0" in value:
                raise ValueError(f"the value of {key} contains a NUL byte")
        return env

    @model_validator(mode="after")
    def _check_instances(self) -> FunctionSpec:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) exceeds max_instances ({self.max_instances})"
            )
        return self


class GatewaySpec(Model):
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)


class AppSpec(Model):
    name: str = Field(pattern=NAME)
    root: str = Field(
        min_length=1, pattern=r"^[^\x00]*$", description="directory the handlers are imported from"
    )
    gateway: GatewaySpec = GatewaySpec()
    functions: dict[str, FunctionSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_functions(self) -> AppSpec:
        routes: dict[tuple[str, str], str] = {}
        for key, function in self.functions.items():
            if key != function.name:
                raise ValueError(f"function key {key!r} differs from its name {function.name!r}")
            for trigger in function.triggers:
                other = routes.get(trigger.route_key())
                if other is not None:
                    raise ValueError(
                        f"route {trigger.method} {trigger.path} is declared twice "
                        f"(functions {other!r} and {function.name!r})"
                    )
                routes[trigger.route_key()] = function.name
        return self
