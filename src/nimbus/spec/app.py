"""The decorator API: thin sugar that records functions and their triggers in a registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, TypeVar, Unpack

from pydantic import BaseModel, TypeAdapter, ValidationError

from nimbus.compute.handlers import SYNC_CONCURRENCY, concurrency_allowed
from nimbus.errors import SpecError
from nimbus.sdk.bucket import Bucket
from nimbus.sdk.mqtt import Mqtt
from nimbus.sdk.queue import Queue
from nimbus.sdk.stream import Stream
from nimbus.sdk.table import Table
from nimbus.sdk.topic import Topic
from nimbus.sdk.websocket import WebSocket
from nimbus.spec.budgets import Budget
from nimbus.spec.errors import describe
from nimbus.spec.model import AppSpec, FailurePolicy, FunctionSpec, GatewaySpec, Style, Trigger
from nimbus.spec.mqtt import MqttBrokerSpec
from nimbus.spec.resources import (
    BucketEvent,
    BucketSpec,
    IndexSpec,
    MissedTicks,
    QueueSpec,
    QueueSubscription,
    StartingPosition,
    StreamSpec,
    TableSpec,
    TopicSpec,
)
from nimbus.spec.system import check_not_reserved
from nimbus.spec.webhooks import Algorithm, Completion, Encoding, Provider, WebhookTrigger
from nimbus.spec.websockets import CONNECT, DEFAULT, DISCONNECT, WebSocketSpec

Handler = TypeVar("Handler", bound=Callable[..., Any])
_trigger_adapter: TypeAdapter[Trigger] = TypeAdapter(Trigger)


class Named(Protocol):
    """A resource handle (or anything with the resource's name)."""

    @property
    def name(self) -> str: ...


ResourceRef = str | Named


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
    style: Style
    uses: Sequence[ResourceRef]
    owner: str
    tags: Mapping[str, str]
    budget: Budget


class WebhookOptions(FunctionOptions, total=False):
    """A webhook's settings (see `WebhookTrigger`) besides its function's."""

    tolerance: float
    header: str
    algorithm: Algorithm
    encoding: Encoding
    prefix: str
    timestamp_header: str | None
    id_header: str | None
    signed: str
    completion: Completion
    callback: str | None
    retention: float


@dataclass
class _Registration:
    handler: Callable[..., Any]
    name: str
    options: dict[str, Any]
    triggers: list[Trigger] = field(default_factory=list)

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

    def __init__(
        self, name: str, *, max_body_bytes: int | None = None, budget: Budget | None = None
    ) -> None:
        self.name = name
        self._gateway = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
        self._budget = budget
        self._registry: dict[str, _Registration] = {}
        self._resources: dict[str, BaseModel] = {}

    # resources: each returns the handle that function code uses
    def queue(self, name: str, **options: Any) -> Queue:
        """Declare a queue (options: see `QueueSpec`)."""
        self._declare(QueueSpec, name, options)
        return Queue(name)

    def topic(
        self, name: str, *, subscriptions: Sequence[QueueSubscription] = (), **options: Any
    ) -> Topic:
        """Declare a topic (event bus); `subscriptions` fan matching events out to queues."""
        self._declare(TopicSpec, name, {"subscriptions": tuple(subscriptions), **options})
        return Topic(name)

    def stream(self, name: str, **options: Any) -> Stream:
        """Declare a partitioned stream (options: see `StreamSpec`)."""
        self._declare(StreamSpec, name, options)
        return Stream(name)

    def table(
        self,
        name: str,
        *,
        key: str,
        sort_key: str | None = None,
        indexes: Mapping[str, IndexSpec] | None = None,
        **options: Any,
    ) -> Table:
        """Declare a table keyed by `key` (and `sort_key`), with its change feed."""
        fields = {"key": key, "sort_key": sort_key, "indexes": dict(indexes or {}), **options}
        self._declare(TableSpec, name, fields)
        return Table(name)

    def bucket(self, name: str, **options: Any) -> Bucket:
        """Declare an object store bucket."""
        self._declare(BucketSpec, name, options)
        return Bucket(name)

    def mqtt(self, name: str, *, url: str, **options: Any) -> Mqtt:
        """Declare an MQTT broker (`mqtt://host:port` or `mqtts://...`; credentials by the
        names of environment variables: `username_env`, `password_env`; see `MqttBrokerSpec`)."""
        self._declare(MqttBrokerSpec, name, {"url": url, **options})
        return Mqtt(name)

    def websocket(self, name: str, *, path: str, **options: Any) -> WebSocket:
        """Declare a WebSocket API that clients connect to at `path`; a message's
        `route_key` field (default `action`) picks its route (options: see `WebSocketSpec`)."""
        self._declare(WebSocketSpec, name, {"path": path, **options})
        return WebSocket(name)

    def function(
        self, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Declare a function with no trigger of its own (invoked directly or asynchronously)."""
        return self._register(name, options, None)

    def http(
        self, method: str, path: str, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Declare a function answering HTTP `method` requests on `path` (`{param}` allowed)."""
        return self._register(name, options, {"type": "http", "method": method, "path": path})

    # triggers of asynchronous sources
    def on_queue(
        self,
        queue: ResourceRef,
        *,
        batch_size: int = 10,
        batching_window: float = 0.0,
        max_batches: int | None = None,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on batches of the queue's messages (at most `max_batches` at once)."""
        trigger = {"type": "queue", "queue": _name(queue), "batch_size": batch_size}
        trigger |= {"batching_window": batching_window, "concurrency": max_batches}
        return self._register(name, options, trigger)

    def on_topic(
        self,
        topic: ResourceRef,
        *,
        pattern: Mapping[str, Any] | None = None,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on each event published to the topic that matches `pattern`."""
        trigger = {"type": "topic", "topic": _name(topic), "pattern": pattern}
        return self._register(name, options, trigger)

    def on_stream(
        self,
        stream: ResourceRef,
        *,
        batch_size: int = 100,
        batching_window: float = 0.0,
        start: StartingPosition = "latest",
        start_time: float | None = None,
        bisect_on_error: bool = True,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on batches of each partition's records, in order."""
        trigger = {"type": "stream", "stream": _name(stream), "batch_size": batch_size}
        trigger |= {"batching_window": batching_window, "start": start, "start_time": start_time}
        trigger |= {"bisect_on_error": bisect_on_error}
        return self._register(name, options, trigger)

    def on_table(
        self,
        table: ResourceRef,
        *,
        batch_size: int = 100,
        batching_window: float = 0.0,
        start: Literal["latest", "oldest"] = "latest",
        bisect_on_error: bool = True,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on batches of the table's changes, in order per key."""
        trigger = {"type": "table", "table": _name(table), "batch_size": batch_size}
        trigger |= {"batching_window": batching_window, "start": start}
        trigger |= {"bisect_on_error": bisect_on_error}
        return self._register(name, options, trigger)

    def on_bucket(
        self,
        bucket: ResourceRef,
        *,
        events: Sequence[BucketEvent] = ("created",),
        prefix: str = "",
        suffix: str = "",
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function when an object whose key matches is created or deleted."""
        trigger = {"type": "bucket", "bucket": _name(bucket), "events": tuple(events)}
        trigger |= {"prefix": prefix, "suffix": suffix}
        return self._register(name, options, trigger)

    def on_webhook(
        self,
        path: str,
        *,
        verify: Provider,
        secret: str | Sequence[str],
        name: str | None = None,
        **options: Unpack[WebhookOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on each verified delivery POSTed to `path` (answered 202 with a
        status URL); `secret` names the platform's environment variable(s) holding the
        signing secret(s). See `WebhookTrigger` for the other settings."""
        settings = {k: v for k, v in options.items() if k in WebhookTrigger.model_fields}
        rest = {k: v for k, v in options.items() if k not in settings}
        secrets = secret if isinstance(secret, str) else tuple(secret)
        trigger = {"type": "webhook", "path": path, "verify": verify, "secret": secrets}
        return self._register(name, rest, trigger | settings)

    def on_schedule(
        self,
        expression: str,
        *,
        timezone: str = "UTC",
        missed: MissedTicks = "once",
        payload: Any = None,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on a `cron(...)`, five-field cron or `rate(...)` schedule."""
        trigger = {"type": "schedule", "expression": expression, "timezone": timezone}
        trigger |= {"missed": missed, "payload": payload}
        return self._register(name, options, trigger)

    def on_mqtt(
        self,
        broker: ResourceRef,
        topic: str,
        *,
        qos: int = 1,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on each message the broker delivers for the topic filter `topic`
        (`+` matches one level, `#` every level below)."""
        trigger = {"type": "mqtt", "broker": _name(broker), "topic": topic, "qos": qos}
        return self._register(name, options, trigger)

    def on_connect(
        self, websocket: ResourceRef, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Run the function while a client's handshake waits: an error, or a `Response` with
        a status of 300 or more, refuses the connection (API Gateway's `$connect`)."""
        return self.on_message(websocket, CONNECT, name=name, **options)

    def on_disconnect(
        self, websocket: ResourceRef, *, name: str | None = None, **options: Unpack[FunctionOptions]
    ) -> Callable[[Handler], Handler]:
        """Run the function after a connection is gone, whoever closed it (`$disconnect`)."""
        return self.on_message(websocket, DISCONNECT, name=name, **options)

    def on_message(
        self,
        websocket: ResourceRef,
        route: str = DEFAULT,
        *,
        name: str | None = None,
        **options: Unpack[FunctionOptions],
    ) -> Callable[[Handler], Handler]:
        """Run the function on each message whose route key is `route` (`$default`: messages
        no other route takes); what it returns is sent back to the sender."""
        trigger = {"type": "websocket", "websocket": _name(websocket), "route": route}
        return self._register(name, options, trigger)

    def spec(self, root: str) -> AppSpec:
        """The validated spec of this app, its handler modules importable from `root`."""
        kinds: dict[type[BaseModel], dict[str, BaseModel]] = {}
        for resource in self._resources.values():
            kinds.setdefault(type(resource), {})[resource.name] = resource  # type: ignore[attr-defined]
        try:
            return AppSpec(
                name=self.name,
                root=root,
                gateway=GatewaySpec(**self._gateway),
                functions={name: self._build(reg) for name, reg in self._registry.items()},
                queues=kinds.get(QueueSpec, {}),
                topics=kinds.get(TopicSpec, {}),
                streams=kinds.get(StreamSpec, {}),
                tables=kinds.get(TableSpec, {}),
                buckets=kinds.get(BucketSpec, {}),
                websockets=kinds.get(WebSocketSpec, {}),
                mqtt=kinds.get(MqttBrokerSpec, {}),
                budget=self._budget,
            )
        except ValidationError as error:
            raise SpecError(describe(error, lambda loc: f"app {self.name!r}")) from None

    def _declare(self, model: type[BaseModel], name: str, options: Mapping[str, Any]) -> None:
        """Validate a resource now: a bad declaration raises here and declares nothing."""
        where = _caller()
        if name in self._resources:
            raise SpecError(f"{where}: a resource named {name!r} is declared twice")
        try:
            check_not_reserved(name, "resource")
        except ValueError as error:
            raise SpecError(f"{where}: {error}") from None
        try:
            self._resources[name] = model.model_validate({"name": name, **options})
        except ValidationError as error:
            raise SpecError(describe(error, lambda loc: f"{where}: {name}")) from None

    def _register(
        self, name: str | None, options: Mapping[str, Any], trigger: dict[str, Any] | None
    ) -> Callable[[Handler], Handler]:
        options = _resolve_uses(options)

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
                    candidate.triggers.append(_trigger_adapter.validate_python(trigger))
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
        try:
            function = FunctionSpec(
                name=registration.name,
                handler=f"{handler.__module__}:{handler.__qualname__}",
                triggers=tuple(registration.triggers),
                **registration.options,
            )
        except ValidationError as error:
            raise SpecError(
                describe(error, lambda loc: f"{registration.where}: {registration.name}")
            ) from None
        if not concurrency_allowed(handler, function.concurrency):
            raise SpecError(
                f"{registration.where}: function {registration.name!r}: {SYNC_CONCURRENCY}"
            )
        return function


def _name(resource: ResourceRef) -> str:
    if isinstance(resource, str):
        return resource
    name = getattr(resource, "name", None)
    if not isinstance(name, str):
        raise SpecError(f"{_caller()}: {resource!r} is not a resource: give its name or its handle")
    return name


def _resolve_uses(options: Mapping[str, Any]) -> dict[str, Any]:
    """`uses` may list handles or names; the spec keeps names."""
    resolved = dict(options)
    if "uses" in resolved:
        uses = resolved["uses"]
        if isinstance(uses, str) or hasattr(uses, "name") or not isinstance(uses, Iterable):
            kind = type(uses).__name__
            raise SpecError(f"{_caller()}: uses takes a list of resources, not a {kind}")
        resolved["uses"] = tuple(_name(ref) for ref in uses)
    return resolved


def _caller() -> str:
    """file:line of the user's declaration, for error messages."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return "<unknown>" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"
