"""nimbus: a serverless platform for Python that you run yourself.

import nimbus
app = nimbus.App("hello")

@app.http("GET", "/hello/{name}")
def hello(request: nimbus.Request, context: nimbus.Context) -> dict[str, str]:
    return {"hello": request.params["name"]}
"""

from nimbus.context import Context
from nimbus.errors import (
    BadRequest,
    ConditionFailed,
    Conflict,
    Gone,
    HTTPError,
    InvalidRequest,
    NimbusError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PlatformUnavailable,
    SpecError,
    Throttled,
)
from nimbus.events.types import (
    BatchResult,
    MqttMessage,
    ObjectEvent,
    QueueBatch,
    QueueMessage,
    ScheduleTick,
    StreamBatch,
    StreamRecord,
    TableBatch,
    TableChange,
    TopicEvent,
    WebhookEvent,
    WebSocketEvent,
)
from nimbus.http import Request, Response
from nimbus.sdk.bucket import Bucket
from nimbus.sdk.mqtt import Mqtt
from nimbus.sdk.platform import PLATFORM, PlatformControl
from nimbus.sdk.progress import Progress
from nimbus.sdk.queue import Queue
from nimbus.sdk.stream import Stream
from nimbus.sdk.table import Table
from nimbus.sdk.topic import Topic
from nimbus.sdk.websocket import WebSocket
from nimbus.spec.app import App
from nimbus.spec.budgets import Budget
from nimbus.spec.model import AppSpec, FailurePolicy, FunctionSpec
from nimbus.spec.resources import IndexSpec, QueueSubscription
from nimbus.spec.system import PLATFORM_EVENTS

__version__ = "0.1.0"

__all__ = [
    "PLATFORM",
    "PLATFORM_EVENTS",
    "App",
    "AppSpec",
    "BadRequest",
    "BatchResult",
    "Bucket",
    "Budget",
    "ConditionFailed",
    "Conflict",
    "Context",
    "FailurePolicy",
    "FunctionSpec",
    "Gone",
    "HTTPError",
    "IndexSpec",
    "InvalidRequest",
    "Mqtt",
    "MqttMessage",
    "NimbusError",
    "NotFound",
    "ObjectEvent",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlatformControl",
    "PlatformUnavailable",
    "Progress",
    "Queue",
    "QueueBatch",
    "QueueMessage",
    "QueueSubscription",
    "Request",
    "Response",
    "ScheduleTick",
    "SpecError",
    "Stream",
    "StreamBatch",
    "StreamRecord",
    "Table",
    "TableBatch",
    "TableChange",
    "Throttled",
    "Topic",
    "TopicEvent",
    "WebSocket",
    "WebSocketEvent",
    "WebhookEvent",
    "__version__",
]
