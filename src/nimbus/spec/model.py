"""The validated, declarative app model. Decorators and nimbus.yaml both produce an `AppSpec`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from nimbus.spec import paths
from nimbus.spec.base import NAME, Model
from nimbus.spec.budgets import Budget
from nimbus.spec.metadata import Owner, Tags
from nimbus.spec.mqtt import MqttBrokerSpec, MqttTrigger
from nimbus.spec.resources import (
    BucketSpec,
    BucketTrigger,
    QueueSpec,
    QueueTrigger,
    ScheduleTrigger,
    StreamSpec,
    StreamTrigger,
    TableSpec,
    TableTrigger,
    TopicSpec,
    TopicTrigger,
)
from nimbus.spec.system import PLATFORM_CONTROL, PLATFORM_EVENTS, check_not_reserved
from nimbus.spec.webhooks import WebhookTrigger
from nimbus.spec.websockets import WebSocketSpec, WebSocketTrigger

HANDLER = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH_PARAM = re.compile(r"\{([^{}]*)\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


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
        paths.check_not_reserved(path)
        names = PATH_PARAM.findall(path)
        for name in names:
            if not IDENTIFIER.match(name):
                raise ValueError(f"path parameter {{{name}}} must be a Python identifier")
        if len(set(names)) != len(names):
            raise ValueError("a path parameter appears twice")
        if PATH_PARAM.sub("", path).count("{") or PATH_PARAM.sub("", path).count("}"):
            raise ValueError("unbalanced braces")
        return path

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def route_key(self) -> tuple[str, str]:
        """Method and path shape: two routes with equal keys can never be told apart."""
        return self.method, PATH_PARAM.sub("{}", self.path)


EventTrigger = QueueTrigger | TopicTrigger | StreamTrigger | TableTrigger | BucketTrigger
TRIGGER_TYPES = (
    "http", "queue", "topic", "stream", "table", "bucket", "schedule", "websocket", "webhook",
    "mqtt",
)  # fmt: skip


def _trigger_type(value: Any) -> str | None:
    """The trigger's `type`; an HTTP route may leave it out (`{method, path}` is enough)."""
    if isinstance(value, dict):
        kind = value.get("type", "http" if "method" in value else None)
        return kind if kind in TRIGGER_TYPES else None
    return getattr(value, "type", None)


Trigger = Annotated[
    Annotated[HttpTrigger, Tag("http")]
    | Annotated[QueueTrigger, Tag("queue")]
    | Annotated[TopicTrigger, Tag("topic")]
    | Annotated[StreamTrigger, Tag("stream")]
    | Annotated[TableTrigger, Tag("table")]
    | Annotated[BucketTrigger, Tag("bucket")]
    | Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[WebSocketTrigger, Tag("websocket")]
    | Annotated[WebhookTrigger, Tag("webhook")]
    | Annotated[MqttTrigger, Tag("mqtt")],
    Discriminator(
        _trigger_type,
        custom_error_type="trigger_type",
        custom_error_message=f"a trigger needs a type: one of {', '.join(TRIGGER_TYPES)}",
    ),
]
Style = Literal["nimbus", "aws"]


class FailurePolicy(Model):
    """What happens when an asynchronous invocation fails, whatever its source (defaults as AWS
    Lambda's). Destinations and the dead-letter target name a queue, topic or function."""

    retries: int = Field(2, ge=0, le=10)
    backoff: float = Field(60.0, gt=0, le=3600, description="delay before the first retry, s")
    max_event_age: float = Field(21600.0, gt=0, le=21600, description="give up after, s")
    dead_letter: str | None = Field(None, pattern=NAME)
    on_success: str | None = Field(None, pattern=NAME)
    on_failure: str | None = Field(None, pattern=NAME)

    def targets(self) -> list[tuple[str, str]]:
        pairs = [("dead_letter", self.dead_letter), ("on_success", self.on_success)]
        pairs.append(("on_failure", self.on_failure))
        return [(field, name) for field, name in pairs if name is not None]


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
    style: Style = Field("nimbus", description="aws: events and context shaped as Lambda's")
    uses: tuple[str, ...] = Field((), description="resources the function's code may call")
    triggers: tuple[Trigger, ...] = ()
    failure: FailurePolicy = FailurePolicy()
    owner: Owner = None
    tags: Tags = {}
    budget: Budget | None = None

    @field_validator("uses")
    @classmethod
    def _check_uses(cls, uses: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(uses)) != len(uses):
            raise ValueError("a resource is named twice")
        return uses

    def http_triggers(self) -> list[HttpTrigger]:
        return [t for t in self.triggers if isinstance(t, HttpTrigger)]

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
    queues: dict[str, QueueSpec] = Field(default_factory=dict)
    topics: dict[str, TopicSpec] = Field(default_factory=dict)
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    buckets: dict[str, BucketSpec] = Field(default_factory=dict)
    websockets: dict[str, WebSocketSpec] = Field(default_factory=dict)
    mqtt: dict[str, MqttBrokerSpec] = Field(default_factory=dict, description="brokers")
    budget: Budget | None = Field(None, description="the whole app's: functions and resources")

    def resources(self) -> dict[str, Resource]:
        """Every declared resource by name (names are unique across kinds)."""
        found: dict[str, Resource] = {}
        for kind in (self.queues, self.topics, self.streams, self.tables, self.buckets):
            found.update(kind)
        found.update(self.websockets)
        found.update(self.mqtt)
        return found

    @model_validator(mode="after")
    def _check_functions(self) -> AppSpec:
        self._check_resources()
        routes: dict[tuple[str, str], str] = {}
        for key, function in self.functions.items():
            if key != function.name:
                raise ValueError(f"function key {key!r} differs from its name {function.name!r}")
            self._check_references(function)
            for trigger in function.http_triggers():
                other = routes.get(trigger.route_key())
                if other is not None:
                    raise ValueError(
                        f"route {trigger.method} {trigger.path} is declared twice "
                        f"(functions {other!r} and {function.name!r})"
                    )
                routes[trigger.route_key()] = function.name
        paths.check_gateway_paths(self._gateway_claims())
        return self

    def _gateway_claims(self) -> list[paths.Claim]:
        claims = [paths.websocket_api(api.path, api.name) for api in self.websockets.values()]
        for function in self.functions.values():
            for trigger in function.triggers:
                if isinstance(trigger, HttpTrigger):
                    claims.append(paths.http_route(trigger.path, trigger.method, function.name))
                elif isinstance(trigger, WebhookTrigger):
                    claims.append(paths.webhook(trigger.path, function.name))
        return claims

    def _check_resources(self) -> None:
        seen: dict[str, str] = {}
        kinds = {"queue": self.queues, "topic": self.topics, "stream": self.streams}
        kinds |= {"table": self.tables, "bucket": self.buckets}
        kinds |= {"websocket": self.websockets}
        kinds |= {"mqtt broker": self.mqtt}
        for kind, declared in kinds.items():
            assert isinstance(declared, dict)
            for key, resource in declared.items():
                if key != resource.name:
                    raise ValueError(f"{kind} key {key!r} differs from its name {resource.name!r}")
                if key in seen:
                    raise ValueError(f"{seen[key]} and {kind} are both named {key!r}")
                if key in self.functions:
                    raise ValueError(f"a function and a {kind} are both named {key!r}")
                check_not_reserved(key, kind)
                seen[key] = kind
        self._check_dead_letter_queues()
        self._check_subscriptions()
        self._check_websocket_routes()

    def _check_dead_letter_queues(self) -> None:
        for queue in self.queues.values():
            target = queue.dead_letter
            if target is not None and target not in self.queues:
                raise ValueError(f"queue {queue.name!r}: dead_letter {target!r} is not a queue")
            if target is not None and self.queues[target].fifo != queue.fifo:
                raise ValueError(
                    f"queue {queue.name!r}: a FIFO queue's dead-letter queue must be FIFO too, "
                    "and a standard queue's standard"
                )

    def _check_subscriptions(self) -> None:
        for topic in self.topics.values():
            queues = [subscription.queue for subscription in topic.subscriptions]
            if len(set(queues)) != len(queues):
                raise ValueError(
                    f"topic {topic.name!r}: a queue is subscribed twice (put the alternatives "
                    "of both patterns in one, with $or)"
                )
            for subscription in topic.subscriptions:
                if subscription.queue not in self.queues:
                    raise ValueError(
                        f"topic {topic.name!r}: subscribed queue {subscription.queue!r} "
                        "is not declared"
                    )

    def _check_websocket_routes(self) -> None:
        """One function per route of an API (as API Gateway's routes)."""
        routes: dict[tuple[str, str], str] = {}
        for function in self.functions.values():
            for trigger in function.triggers:
                if not isinstance(trigger, WebSocketTrigger):
                    continue
                key = (trigger.websocket, trigger.route)
                if key in routes:
                    raise ValueError(
                        f"websocket {trigger.websocket!r}: route {trigger.route!r} is handled "
                        f"twice (functions {routes[key]!r} and {function.name!r})"
                    )
                routes[key] = function.name

    def _check_references(self, function: FunctionSpec) -> None:
        resources = self.resources()
        where = f"function {function.name!r}"
        check_not_reserved(function.name, "function")
        for name in function.uses:
            if name == PLATFORM_EVENTS:
                raise ValueError(
                    f"{where}: uses {name!r}: only the platform publishes platform events; "
                    "subscribe to them with a topic trigger instead"
                )
            if name not in resources and name != PLATFORM_CONTROL:
                raise ValueError(f"{where}: uses {name!r}, which is not a declared resource")
        kinds: dict[type[Model], dict[str, Any]] = {
            QueueTrigger: self.queues, TopicTrigger: self.topics, StreamTrigger: self.streams,
            TableTrigger: self.tables, BucketTrigger: self.buckets,
            WebSocketTrigger: self.websockets,
            MqttTrigger: self.mqtt,
        }  # fmt: skip
        for trigger in function.triggers:
            if isinstance(trigger, HttpTrigger | ScheduleTrigger | WebhookTrigger):
                continue
            if isinstance(trigger, TopicTrigger) and trigger.topic == PLATFORM_EVENTS:
                continue  # the system event bus exists in every app
            if trigger.source not in kinds[type(trigger)]:
                raise ValueError(
                    f"{where}: its {trigger.type} trigger names {trigger.source!r}, "
                    f"which is not a declared {trigger.type}"
                )
        for field, target in function.failure.targets():
            if target not in {**self.queues, **self.topics, **self.functions}:
                raise ValueError(
                    f"{where}: failure.{field} {target!r} is not a queue, topic or function"
                )


Resource = (
    QueueSpec | TopicSpec | StreamSpec | TableSpec | BucketSpec | WebSocketSpec | MqttBrokerSpec
)
