"""IoT anomaly detection: machines publish telemetry over MQTT; a function tests each reading
against the machine's recent ones and sends a repair request to the service department's queue.

    IOT_ANOMALY_MQTT_URL=mqtt://127.0.0.1:1883 nimbus up examples/iot-anomaly

Machines publish JSON readings (`{"temperature": 71.2, "vibration": 0.31}`) to
`factory/<machine>/telemetry` at QoS 1. `detect` keeps a sliding window of each machine's last
WINDOW readings per metric in the `windows` table and applies Grubbs' test (grubbs.py) to every
new reading once the window holds MIN_WINDOW; an outlier is not added to the window (it would
widen what counts as normal) and goes to the `repairs` queue. `service_department` turns each
repair request into a work order (GET /work-orders) and posts a ticket to the department's
board over MQTT (`service/tickets/<machine>`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from grubbs import check_reading

import nimbus

WINDOW = 30
MIN_WINDOW = 10
ALPHA = 0.01
METRICS = ("temperature", "vibration")
TICKETS = "service/tickets/{machine}"

app = nimbus.App("iot-anomaly")
plant = app.mqtt("plant", url=os.environ.get("IOT_ANOMALY_MQTT_URL", "mqtt://127.0.0.1:1883"))
windows = app.table("windows", key="machine")
repairs = app.queue("repairs")
work_orders = app.table("work-orders", key="id")


def parse_reading(message: nimbus.MqttMessage) -> tuple[str, dict[str, float]]:
    """The machine (the topic's second level) and the reading's numeric metrics."""
    machine = message.topic.split("/")[1]
    try:
        body = message.json()
    except nimbus.InvalidRequest:
        body = None
    if not isinstance(body, dict):
        raise ValueError(f"{message.topic}: a reading is a JSON object, not {message.payload!r}")
    values = {
        metric: float(body[metric])
        for metric in METRICS
        if isinstance(body.get(metric), int | float) and not isinstance(body[metric], bool)
    }
    return machine, values


@app.on_mqtt(plant, "factory/+/telemetry", uses=[windows, repairs])
def detect(message: nimbus.MqttMessage) -> dict[str, Any]:
    """Test each metric of the reading against the machine's window, then record it."""
    machine, values = parse_reading(message)
    reading_id = hashlib.sha256(message.topic.encode() + message.payload).hexdigest()[:16]
    while True:
        item = windows.get(machine=machine)
        history: dict[str, list[float]] = item.data["readings"] if item else {}
        outliers = {}
        for metric, value in values.items():
            window = history.get(metric, [])
            if len(window) >= MIN_WINDOW:
                verdict = check_reading(window, value, ALPHA)
                if verdict.outlier:
                    outliers[metric] = verdict
                    continue
            history[metric] = [*window, value][-WINDOW:]
        updated = {"machine": machine, "readings": history}
        try:
            if item is None:
                windows.put(updated, condition={"machine": {"not_exists": True}})
            else:
                windows.put(updated, if_version=item.version)
            break
        except nimbus.ConditionFailed:
            continue  # another reading of this machine was stored first: test against it too
    for metric, verdict in outliers.items():
        repairs.send(
            {
                "id": f"{machine}-{metric}-{reading_id}",
                "machine": machine,
                "metric": metric,
                "value": values[metric],
                "window_mean": round(verdict.mean, 4),
                "window_stdev": round(verdict.stdev, 4),
                "grubbs_g": round(verdict.g, 4),
                "critical": round(verdict.critical, 4),
            }
        )
    return {"machine": machine, "outliers": sorted(outliers)}


@app.on_queue(repairs, uses=[work_orders, plant])
def service_department(batch: nimbus.QueueBatch) -> None:
    """Open a work order per repair request (once, however often it arrives) and post a
    ticket to the department's board."""
    for message in batch:
        request = message.json()
        order = {**request, "status": "open"}
        try:
            work_orders.put(order, condition={"id": {"not_exists": True}})
        except nimbus.ConditionFailed:
            continue  # a redelivered request: the order exists and its ticket was posted
        plant.publish(TICKETS.format(machine=request["machine"]), json.dumps(order))


@app.http("GET", "/work-orders", uses=[work_orders])
def list_work_orders(request: nimbus.Request) -> list[dict[str, Any]]:
    return sorted((item.data for item in work_orders.scan_all()), key=lambda o: o["id"])


@app.http("GET", "/machines/{machine}", uses=[windows])
def machine_window(request: nimbus.Request) -> dict[str, Any]:
    item = windows.get(machine=request.params["machine"])
    if item is None:
        raise nimbus.HTTPError(404, "no readings from this machine yet")
    return item.data
