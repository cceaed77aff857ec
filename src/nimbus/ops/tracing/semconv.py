"""Names, kinds and attributes of nimbus's spans, after OpenTelemetry's semantic conventions.

- a trigger's delivery is the incoming span: an HTTP request a SERVER span named
  `{method} {route}` with `http.*` / `url.*` attributes (HTTP spans); a message, event or
  record batch a CONSUMER span `process {source}` with `messaging.*` attributes (messaging
  spans); a schedule tick an INTERNAL span with `faas.cron`;
- the invocation is named after the function, with `faas.trigger`, `faas.invocation_id` and
  `faas.coldstart` (FaaS spans);
- a service call is `{operation} {resource}`: PRODUCER for writes that deliver (queue send,
  topic publish, stream put) with `messaging.*`, else CLIENT; table calls carry `db.*`.
`messaging.system` and `db.system.name` are `nimbus`: the conventions leave custom systems
their own name.
"""

from __future__ import annotations

from nimbus.ops.tracing.spans import Attributes, SpanKind

SYSTEM = "nimbus"
MESSAGING = frozenset({"queue", "topic", "stream", "mqtt"})
DATA_SOURCES = frozenset({"table", "bucket"})
PRODUCING = frozenset(
    {
        "queue.send", "queue.send_batch", "topic.publish", "topic.publish_batch",
        "stream.put", "stream.put_batch",
    }
)  # fmt: skip
"""Operations that deliver what they write to a consumer: their span is its parent."""
OPERATION_TYPES = {
    "receive": "receive", "read": "receive", "delete": "settle", "change_visibility": "settle"
}  # fmt: skip
"""`messaging.operation.type` of the other messaging operations."""


def trigger_span(
    trigger: str, function: str, http: tuple[str, str, str, int] | None
) -> tuple[str, SpanKind, Attributes]:
    """Name, kind and attributes of the span of one delivery by `trigger` (the invoker's
    trigger label: `http`, `queue:orders`, `schedule:rate(1 minute)`, ...); `http`: method,
    path, route and status of an HTTP request."""
    source, _, name = trigger.partition(":")
    attributes: Attributes = {"faas.trigger": faas_trigger(source), "nimbus.trigger": trigger}
    if source == "http" and http is not None:
        method, path, route, status = http
        route = route or path
        attributes.update(
            {
                "http.request.method": method, "url.path": path, "http.route": route,
                "http.response.status_code": status,
            }
        )  # fmt: skip
        return f"{method} {route}", "server", attributes
    if source in MESSAGING:
        attributes.update(
            {
                "messaging.system": "mqtt" if source == "mqtt" else SYSTEM,
                "messaging.destination.name": name,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
            }
        )
        return f"process {name}", "consumer", attributes
    if source in DATA_SOURCES:
        attributes.update({"faas.document.collection": name})
        return f"process {name}", "consumer", attributes
    if source == "schedule":
        attributes["faas.cron"] = name
        return f"schedule {name}", "internal", attributes
    if source in ("invoke", "websocket"):
        return f"{source} {name or function}", "server", attributes
    return f"{source} {name or function}", "consumer", attributes  # async, webhook, destination


def faas_trigger(source: str) -> str:
    """`faas.trigger`: http, pubsub, datasource, timer or other."""
    if source in ("http", "websocket"):
        return "http"
    if source in MESSAGING:
        return "pubsub"
    if source in DATA_SOURCES:
        return "datasource"
    return "timer" if source == "schedule" else "other"


def service_call_span(
    kind: str, resource: str, tag: str, entries: int | None
) -> tuple[str, SpanKind, Attributes]:
    """Name, kind and attributes of the span of one SDK call (`tag`: its operation's, such as
    `queue.send`; `entries`: a batch operation's count)."""
    operation = tag.partition(".")[2] or tag
    attributes: Attributes = {"nimbus.resource.kind": kind, "nimbus.resource.name": resource}
    producing = tag in PRODUCING
    if kind in MESSAGING:
        attributes.update(
            {
                "messaging.system": SYSTEM,
                "messaging.destination.name": resource,
                "messaging.operation.name": operation,
                "messaging.operation.type": (
                    "send" if producing else OPERATION_TYPES.get(operation, operation)
                ),
            }
        )
        if entries is not None:
            attributes["messaging.batch.message_count"] = entries
    elif kind == "table":
        attributes.update(
            {
                "db.system.name": SYSTEM,
                "db.collection.name": resource,
                "db.operation.name": operation,
            }
        )
    return f"{operation} {resource}", "producer" if producing else "client", attributes
