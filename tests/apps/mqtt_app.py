"""A test app for tests/test_mqtt.py: MQTT triggers and publishing on the broker at
`$NIMBUS_TEST_MQTT_URL` (the test's own Mosquitto). Handlers record what they got with
`triggers_common.record`; `POST /publish` and `POST /publish-undeclared` publish what the body
says and answer {"ok": true} or the error's type and message."""

from __future__ import annotations

import os
import time
from typing import Any

from triggers_common import ENV, record

import nimbus

app = nimbus.App("mqtt-test")
plant = app.mqtt(
    "plant",
    url=os.environ.get("NIMBUS_TEST_MQTT_URL", "mqtt://127.0.0.1:1"),
    username_env=os.environ.get("NIMBUS_TEST_MQTT_USER_ENV"),
    password_env=os.environ.get("NIMBUS_TEST_MQTT_PASSWORD_ENV"),
    max_message_bytes=1024,
)


@app.on_mqtt(plant, "factory/+/telemetry", environment=ENV)
def telemetry(message: nimbus.MqttMessage) -> None:
    record(
        "telemetry", topic=message.topic, filter=message.filter, qos=message.qos,
        retain=message.retain, data=message.json(), source=message.source,
        broker=message.broker, traced=message.traceparent is not None,
    )  # fmt: skip


@app.on_mqtt(plant, "factory/#", qos=0, environment=ENV)
def audit(message: nimbus.MqttMessage) -> None:
    record("audit", topic=message.topic, filter=message.filter, text=message.text())


@app.on_mqtt(plant, "raw/#", style="aws", environment=ENV)
def lambda_style(event: Any) -> None:
    record("lambda_style", event=event)


@app.on_mqtt(
    plant, "fail/+", environment=ENV, failure=nimbus.FailurePolicy(retries=1, backoff=0.05)
)
def failing(message: nimbus.MqttMessage) -> None:
    raise RuntimeError(f"cannot handle {message.topic}")


@app.on_mqtt(plant, "slow/+", environment=ENV, max_instances=2)
def slow(message: nimbus.MqttMessage) -> None:
    time.sleep(0.2)
    record("slow", topic=message.topic)


def _publish(body: dict[str, Any]) -> dict[str, Any]:
    try:
        plant.publish(body["topic"], body["payload"], body.get("qos", 1), body.get("retain", False))
    except nimbus.NimbusError as error:
        return {"error": type(error).__name__, "message": error.message}
    return {"ok": True}


@app.http("POST", "/publish", uses=[plant], timeout=15)
def publish(request: nimbus.Request) -> dict[str, Any]:
    return _publish(request.json())


@app.http("POST", "/publish-undeclared")
def publish_undeclared(request: nimbus.Request) -> dict[str, Any]:
    return _publish(request.json())
