"""`import nimbus` stays light: no server, CLI or HTTP-client modules (a function's instance
imports nimbus, and every module it drags in costs memory and cold-start time)."""

from __future__ import annotations

import json
import subprocess
import sys

import nimbus

HEAVY = ("uvicorn", "starlette", "httpx", "typer", "rich", "watchfiles", "yaml", "sqlite3")
HEAVY += ("aiomqtt", "paho")  # the mqtt extra: only the controller's MQTT bridge loads it
HEAVY += ("prometheus_client",)  # metrics are the controller's
HEAVY += ("opentelemetry", "google", "requests")  # only OTLP export, in the controller, loads it


def test_import_nimbus_loads_no_platform_modules() -> None:
    code = "import json, sys, nimbus; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code]))
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_public_surface() -> None:
    assert sorted(nimbus.__all__) == [
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
        "PLATFORM",
        "PLATFORM_EVENTS",
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
    for name in nimbus.__all__:
        assert hasattr(nimbus, name)


def test_every_error_shares_one_root_with_a_status_and_exit_code() -> None:
    errors = [
        nimbus.SpecError,
        nimbus.NotFound,
        nimbus.Conflict,
        nimbus.Throttled,
        nimbus.PlatformUnavailable,
        nimbus.BadRequest,
    ]
    for error in errors:
        assert issubclass(error, nimbus.NimbusError)
    assert [e.status for e in (nimbus.SpecError, nimbus.NotFound, nimbus.Throttled)] == [
        400,
        404,
        429,
    ]
    assert nimbus.BadRequest("x").status == 400
