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
    ObjectEvent,
    QueueBatch,
    QueueMessage,
    ScheduleTick,
    StreamBatch,
    StreamRecord,
    TableBatch,
    TableChange,
    TopicEvent,
)
from nimbus.http import Request, Response
from nimbus.sdk.bucket import Bucket
from nimbus.sdk.queue import Queue
from nimbus.sdk.stream import Stream
from nimbus.sdk.table import Table
from nimbus.sdk.topic import Topic
from nimbus.spec.app import App
from nimbus.spec.model import AppSpec, FailurePolicy, FunctionSpec
from nimbus.spec.resources import IndexSpec, QueueSubscription

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppSpec",
    "BadRequest",
    "BatchResult",
    "Bucket",
    "ConditionFailed",
    "Conflict",
    "Context",
    "FailurePolicy",
    "FunctionSpec",
    "HTTPError",
    "IndexSpec",
    "InvalidRequest",
    "NimbusError",
    "NotFound",
    "ObjectEvent",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlatformUnavailable",
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
    "__version__",
]
