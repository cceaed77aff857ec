"""MQTT, end to end against a real Mosquitto: topic filter rules (property-based, checked against
paho-mqtt's matcher and the MQTT 5.0 rules), the spec, QoS 1 delivery into functions through
overlapping filters (each trigger once), publishing from functions, permissions and bad input,
failure handling, a broker killed and restarted, a broker down at start, credentials from the
environment, and messages published while the platform was down (persistent session).

Handlers (tests/apps/mqtt_app.py) record what they got; the tests wait for those records with
generous limits (never a timing assertion).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

import nimbus
from conftest import APPS, Platform, start_platform
from mqtt_broker import Device, Mosquitto, require_mosquitto
from nimbus.errors import InvalidRequest
from nimbus.services.mqtt import check_filter, check_topic, matches
from nimbus.spec.manifest import load_manifest

APP = APPS / "mqtt_app.py"
LAST = "factory/last/telemetry"
PROBE = "factory/probe/telemetry"
PROBES = count()
Record = dict[str, Any]

# topic filter rules

LEVEL = st.text(alphabet="ab$+#x", max_size=3)
PLAIN_LEVEL = st.text(alphabet="abc$ -", max_size=3)
TOPIC = st.lists(PLAIN_LEVEL, min_size=1, max_size=5).map("/".join).filter(bool)


def is_valid_filter(text: str) -> bool:
    try:
        check_filter(text)
    except InvalidRequest:
        return False
    return True


@given(st.lists(LEVEL, min_size=1, max_size=5).map("/".join), TOPIC)
def test_filters_match_as_paho_mqtt_matches_them(topic_filter: str, topic: str) -> None:
    if is_valid_filter(topic_filter):
        assert matches(topic_filter, topic) == topic_matches_sub(topic_filter, topic)


@given(TOPIC, st.data())
def test_a_filter_made_from_a_topic_with_wildcards_matches_it(topic: str, data: Any) -> None:
    levels = topic.split("/")
    wild = [data.draw(st.sampled_from([level, "+"])) for level in levels]
    if topic.startswith("$"):
        wild[0] = levels[0]  # a leading wildcard never matches a $ topic
    cut = data.draw(st.integers(min_value=1 if topic.startswith("$") else 0, max_value=len(wild)))
    for topic_filter in ("/".join(wild), "/".join([*wild[:cut], "#"])):
        assert is_valid_filter(topic_filter)
        assert matches(topic_filter, topic), (topic_filter, topic)


@given(TOPIC, st.data())
def test_a_filter_differing_in_one_literal_level_does_not_match(topic: str, data: Any) -> None:
    levels = topic.split("/")
    changed = data.draw(st.integers(min_value=0, max_value=len(levels) - 1))
    levels[changed] += "z"
    assert not matches("/".join(levels), topic)
    assert not matches(topic + "/+", topic)  # one level more is never matched by '+'


@given(TOPIC)
def test_leading_wildcards_never_match_dollar_topics(topic: str) -> None:
    system = "$" + topic
    levels = system.split("/")
    assert not matches("#", system)
    assert not matches("/".join(["+"] * len(levels)), system)
    assert matches("/".join([levels[0], *["+"] * (len(levels) - 1)]), system)
    assert matches(levels[0] + "/#", system)


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a#", "#a", "a/b#", "a+", "+a/b", "a/++", ""])
def test_malformed_filters_are_refused(topic_filter: str) -> None:
    with pytest.raises(InvalidRequest):
        check_filter(topic_filter)


@pytest.mark.parametrize("topic", ["a/+", "a/#", "+", "#", "", "a\0b"])
def test_topics_to_publish_to_hold_no_wildcards(topic: str) -> None:
    with pytest.raises(InvalidRequest):
        check_topic(topic)


# the spec


def test_the_spec_refuses_bad_brokers_and_triggers() -> None:
    app = nimbus.App("spec")
    bad = {
        "mqtt://user:secret@host": "credentials do not belong in the URL",
        "http://host": "mqtt:// or mqtts://",
        "mqtt://host/path": "nothing after",
        "mqtt://host:99999": "not a valid URL",
    }
    for number, (url, reason) in enumerate(bad.items()):
        with pytest.raises(nimbus.SpecError, match=reason):
            app.mqtt(f"b{number}", url=url)
    with pytest.raises(nimbus.SpecError, match="need an mqtts:// URL"):
        app.mqtt("plain", url="mqtt://host", ca_file="/ca.pem")
    with pytest.raises(nimbus.SpecError, match="both cert_file and key_file"):
        app.mqtt("half", url="mqtts://host", cert_file="/cert.pem")
    with pytest.raises(nimbus.SpecError, match="username_env"):
        app.mqtt("creds", url="mqtt://host", username_env="not a name")
    plant = app.mqtt("plant", url="mqtts://broker.example:8884")
    assert (plant.name, app.spec("/").mqtt["plant"].port) == ("plant", 8884)

    def handler(message: nimbus.MqttMessage) -> None: ...

    handler.__qualname__ = "handler"
    with pytest.raises(nimbus.SpecError, match="'#' must be the last level"):
        app.on_mqtt(plant, "a/#/b")(handler)
    with pytest.raises(nimbus.SpecError, match="qos"):
        app.on_mqtt(plant, "a/b", qos=2)(handler)
    app.on_mqtt("elsewhere", "a/b")(handler)
    with pytest.raises(nimbus.SpecError, match="'elsewhere', which is not a declared mqtt"):
        app.spec("/")


def test_nimbus_yaml_declares_brokers_and_triggers(tmp_path: Path) -> None:
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text(
        "name: yaml-mqtt\n"
        "mqtt:\n  plant:\n    url: mqtt://10.0.0.5\n    username_env: PLANT_USER\n"
        "    password_env: PLANT_PASSWORD\n"
        "functions:\n  detect:\n    handler: app:detect\n    uses: [plant]\n    triggers:\n"
        "      - {type: mqtt, broker: plant, topic: factory/+/telemetry, qos: 0}\n"
    )
    spec = load_manifest(manifest)
    assert spec.mqtt["plant"].port == 1883
    assert spec.functions["detect"].triggers[0].label == "mqtt plant factory/+/telemetry"
    manifest.write_text(manifest.read_text().replace("factory/+/", "factory/+x/"))
    with pytest.raises(nimbus.SpecError, match=r"nimbus.yaml:\d+: .*'\+' must fill a whole"):
        load_manifest(manifest)


# on a real broker and platform


@dataclass
class Harness:
    platform: Platform
    broker: Mosquitto
    out: Path

    def records(self, function: str) -> list[Record]:
        path = self.out / f"{function}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().split("\n")[:-1]]

    def wait_records(self, function: str, done: Callable[[list[Record]], bool]) -> list[Record]:
        def ready() -> list[Record] | None:
            found = self.records(function)
            return found if done(found) else None

        found: list[Record] = self.platform.wait_for(ready, f"records of {function}")
        return found

    def publish(self, body: dict[str, Any], path: str = "/publish") -> dict[str, Any]:
        response = self.platform.http.post(path, json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def idle(self) -> None:
        def quiet() -> bool:
            functions = self.platform.functions().values()
            return all(f["busy"] == 0 and f["waiting"] == 0 for f in functions)

        self.platform.wait_for(quiet, "the functions to be idle")


def start(tmp_path: Path, broker: Mosquitto, name: str = "data", **env: str) -> Harness:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIMBUS_TEST_OUT", str(out))
        patch.setenv("NIMBUS_TEST_MQTT_URL", broker.url)
        for key, value in env.items():
            patch.setenv(key, value)
        platform = start_platform(APP, tmp_path / name, "--no-reload")
    return Harness(platform, broker, out)


@pytest.fixture
def device(broker: Mosquitto) -> Iterator[Device]:
    machine = Device(broker, "machine-1")
    yield machine
    machine.close()


@pytest.fixture
def harness(tmp_path: Path, broker: Mosquitto) -> Iterator[Harness]:
    running = start(tmp_path, broker)
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


def probe_until_delivered(harness: Harness, device: Device) -> None:
    """Publish probes until one of them reaches the telemetry function: the bridge is
    subscribed (a probe sent before may still arrive later)."""
    sent: set[int] = set()

    def delivered() -> bool:
        number = next(PROBES)
        sent.add(number)
        device.publish(PROBE, json.dumps({"probe": number}))
        return any(r["data"].get("probe") in sent for r in harness.records("telemetry"))

    harness.platform.wait_for(delivered, "a probe to be delivered")


def test_messages_reach_each_trigger_whose_filter_matches_once(
    harness: Harness, device: Device
) -> None:
    probe_until_delivered(harness, device)
    sent = {
        "factory/press-1/telemetry": {"temperature": 71.5},
        "factory/press-2/telemetry": {"temperature": 69.0},
        "factory/press-1/status": "running",
        "factory/press-1/telemetry/raw": "x",
        "office/press-1/telemetry": {"temperature": 20.0},
    }
    for topic, payload in sent.items():
        device.publish(topic, payload if isinstance(payload, str) else json.dumps(payload))
    device.publish(LAST, "{}")
    wanted = ["factory/press-1/telemetry", "factory/press-2/telemetry", LAST]
    expected = {
        "telemetry": set(wanted),
        "audit": {topic for topic in sent if topic.startswith("factory/")} | {LAST},
    }
    for function, topics in expected.items():  # jobs run concurrently: LAST may come first
        harness.wait_records(function, lambda found, t=topics: t <= {r["topic"] for r in found})
    harness.idle()
    telemetry = [r for r in harness.records("telemetry") if r["topic"] != PROBE]
    audit = [r for r in harness.records("audit") if r["topic"] != PROBE]
    assert sorted(r["topic"] for r in telemetry) == sorted(wanted)
    assert [r["data"] for r in telemetry if r["topic"] == wanted[0]] == [sent[wanted[0]]]
    assert {(r["filter"], r["qos"], r["retain"], r["source"]) for r in telemetry} == {
        ("factory/+/telemetry", 1, False, "nimbus:mqtt:plant")
    }
    assert sorted(r["topic"] for r in audit) == sorted(
        [topic for topic in sent if topic.startswith("factory/")] + [LAST]
    )
    assert {r["filter"] for r in audit} == {"factory/#"}


def test_functions_publish_to_the_broker(harness: Harness, device: Device) -> None:
    device.subscribe("commands/#")
    assert harness.publish({"topic": "commands/press-1", "payload": {"action": "stop"}}) == {
        "ok": True
    }
    assert harness.publish({"topic": "commands/press-2", "payload": "slow", "qos": 0}) == {
        "ok": True
    }
    harness.platform.wait_for(lambda: len(device.messages()) == 2, "the published messages")
    first, second = sorted(device.messages(), key=lambda m: m.topic)
    assert (first.topic, json.loads(first.payload), first.qos) == (
        "commands/press-1", {"action": "stop"}, 1,
    )  # fmt: skip
    assert (second.topic, second.payload, second.qos) == ("commands/press-2", b"slow", 0)
    properties = dict(getattr(first.properties, "UserProperty", []))
    assert properties["traceparent"].startswith("00-")  # the function's trace goes on
    # retained: a device that subscribes later gets the topic's last known value
    harness.publish({"topic": "config/press-1", "payload": b"v2".decode(), "retain": True})
    late = Device(harness.broker, "late-comer")
    try:
        late.subscribe("config/#")
        harness.platform.wait_for(late.messages, "the retained message")
        [kept] = late.messages()
        assert (kept.topic, kept.payload, kept.retain) == ("config/press-1", b"v2", True)
    finally:
        late.close()


def test_publishing_needs_uses_and_valid_input(harness: Harness, device: Device) -> None:
    device.subscribe("commands/#")
    refusals = [
        ({"topic": "commands/press-1", "payload": "x"}, "/publish-undeclared", "PermissionDenied"),
        ({"topic": "commands/+", "payload": "x"}, "/publish", "InvalidRequest"),
        ({"topic": "commands/#", "payload": "x"}, "/publish", "InvalidRequest"),
        ({"topic": "commands/x", "payload": "x", "qos": 2}, "/publish", "InvalidRequest"),
        ({"topic": "commands/x", "payload": "x" * 1025}, "/publish", "PayloadTooLarge"),
    ]
    for body, path, error in refusals:
        answer = harness.publish(body, path)
        assert answer["error"] == error, answer
        assert answer["message"]
    assert "list it in the function's `uses`" in harness.publish(*refusals[0][:2])["message"]
    harness.publish({"topic": "commands/last", "payload": "done"})
    harness.platform.wait_for(device.messages, "the last message")
    assert [m.topic for m in device.messages()] == ["commands/last"]


def test_failing_handlers_are_retried_then_dead_lettered(harness: Harness, device: Device) -> None:
    device.publish("fail/press-3", "{}")

    def dead_letters() -> list[Record]:
        letters: list[Record] = harness.platform.cli_json("dlq", "ls", "failing")
        return letters

    [letter] = harness.platform.wait_for(dead_letters, "the dead letter")
    assert (letter["source"], letter["attempts"]) == ("mqtt:plant", 2)
    assert json.loads(letter["payload"])["topic"] == "fail/press-3"


def test_aws_style_functions_get_the_payload_as_an_iot_rule_passes_it(
    harness: Harness, device: Device
) -> None:
    device.publish("raw/press-1", json.dumps({"temperature": 80.5, "unit": "C"}))
    device.publish("raw/press-2", b"\x00\xffbinary")
    found = harness.wait_records("lambda_style", lambda found: len(found) == 2)
    events = [r["event"] for r in found]
    assert {"temperature": 80.5, "unit": "C"} in events
    assert {"data": base64.b64encode(b"\x00\xffbinary").decode()} in events


def test_the_bridge_reconnects_when_the_broker_comes_back(
    harness: Harness, broker: Mosquitto
) -> None:
    device = Device(broker, "machine-before")
    probe_until_delivered(harness, device)
    device.close()
    broker.kill()  # the broker forgets the platform's session: it must subscribe again
    broker.start()
    device = Device(broker, "machine-after")
    try:
        probe_until_delivered(harness, device)
    finally:
        device.close()
    assert "connection to MQTT broker 'plant' failed" in harness.platform.output()


def mqtt5_publish(topic: str, payload: bytes) -> bytes:
    """A QoS 0 MQTT 5 PUBLISH packet without properties."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + b"\x00" + payload
    assert len(body) < 128  # a one-byte remaining length
    return bytes([0x30, len(body)]) + body


def test_a_connection_reset_with_packets_queued_ends_the_connection_at_once() -> None:
    """The broker resets the connection right after sending packets the bridge has not read
    yet (Mosquitto killed while it delivers): every packet is read, then the connection
    ends, on uvloop as in the controller. uvloop calls the reader once at such an error
    event, which read one packet and left the rest, and the reset, to the keep-alive."""
    import aiomqtt
    import uvloop

    from nimbus.edge.mqtt import Connection, _client

    payloads = [b"1", b"2", b"3"]

    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        with socket.create_server(("127.0.0.1", 0)) as server:
            server.setblocking(False)

            async def accept() -> socket.socket:
                peer, _ = await loop.sock_accept(server)
                await loop.sock_recv(peer, 1024)  # CONNECT
                await loop.sock_sendall(peer, b"\x20\x03\x00\x00\x00")  # CONNACK
                return peer

            accepting = loop.create_task(accept())
            client = _client(Connection(
                broker="plant", host="127.0.0.1", port=server.getsockname()[1],
                client_id="reset", tls=False, ca_file=None, cert_file=None, key_file=None,
                session_expiry=0, keep_alive=600, username=None, password=None,
            ))  # fmt: skip
            received: list[bytes] = []
            async with asyncio.timeout(60), client:  # a limit against hangs, not the test
                with await accepting as peer:  # sent and reset in one step: nothing read yet
                    peer.setblocking(True)
                    peer.sendall(b"".join(mqtt5_publish("a", p) for p in payloads))
                    # closed with a zero linger: a reset (RST), as from a killed broker
                    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with pytest.raises(aiomqtt.MqttError, match="Disconnected"):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        received.append(message.payload)
            return received

    assert uvloop.run(scenario()) == payloads


def test_messages_sent_while_the_platform_is_down_arrive_when_it_returns(
    tmp_path: Path, broker: Mosquitto, device: Device
) -> None:
    first = start(tmp_path, broker)
    probe_until_delivered(first, device)  # the session and its subscriptions exist
    first.platform.stop()
    first.platform.assert_no_loop_errors()
    offline = [f"factory/press-{n}/telemetry" for n in range(5)]
    for topic in offline:
        device.publish(topic, json.dumps({"offline": True}))
    again = start(tmp_path, broker)  # the same data dir: the same session
    try:

        def offline_topics(found: list[Record]) -> list[str]:
            return sorted(r["topic"] for r in found if r["data"].get("offline"))

        found = again.wait_records("telemetry", lambda found: bool(offline_topics(found)))
        again.wait_records("telemetry", lambda found: len(offline_topics(found)) >= len(offline))
        again.idle()
        assert offline_topics(again.records("telemetry")) == sorted(offline), found
    finally:
        again.platform.stop()
        again.platform.assert_no_loop_errors()


def test_no_message_is_lost_when_the_platform_is_killed_while_they_flow(
    tmp_path: Path, broker: Mosquitto, device: Device
) -> None:
    first = start(tmp_path, broker)
    probe_until_delivered(first, device)
    topics = [f"slow/{n}" for n in range(30)]
    for topic in topics:
        device.publish(topic, "{}")
    first.wait_records("slow", bool)
    first.platform.stop(signal.SIGKILL)  # mid-flow: some handled, some accepted, some unread
    again = start(tmp_path, broker)
    try:
        found = again.wait_records("slow", lambda found: {r["topic"] for r in found} >= set(topics))
        assert {r["topic"] for r in found} == set(topics)  # at least once each, nothing else
    finally:
        again.platform.stop()
        again.platform.assert_no_loop_errors()


def test_a_broker_that_is_down_blocks_nothing_and_is_used_once_it_is_up(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    broker = Mosquitto(tmp_path / "broker")  # not started yet
    harness = start(tmp_path, broker)
    try:
        answer = harness.publish({"topic": "commands/press-1", "payload": "x"})
        assert answer["error"] == "PlatformUnavailable", answer
        assert "MQTT broker 'plant' is not connected" in answer["message"]
        broker.start()
        device = Device(broker, "machine-1")
        try:
            probe_until_delivered(harness, device)
            assert harness.publish({"topic": "commands/press-1", "payload": "x"}) == {"ok": True}
        finally:
            device.close()
    finally:
        harness.platform.stop()
        broker.stop()
    harness.platform.assert_no_loop_errors()


def test_credentials_come_from_the_platforms_environment(tmp_path: Path) -> None:
    require_mosquitto()
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "nimbus", "s3cret"], check=True)
    broker = Mosquitto(tmp_path / "broker", extra=f"password_file {passwords}\n")
    broker.start()
    names = {"NIMBUS_TEST_MQTT_USER_ENV": "PLANT_USER", "NIMBUS_TEST_MQTT_PASSWORD_ENV": "PLANT_PW"}
    try:
        refused = up_and_exit(tmp_path, broker, names)
        assert "environment variable PLANT_USER is not set" in refused
        harness = start(tmp_path, broker, **names, PLANT_USER="nimbus", PLANT_PW="s3cret")
        device = Device(broker, "machine-1", username="nimbus", password="s3cret")
        try:
            probe_until_delivered(harness, device)
        finally:
            device.close()
            harness.platform.stop()
        assert "s3cret" not in harness.platform.output()
    finally:
        broker.stop()


def up_and_exit(tmp_path: Path, broker: Mosquitto, env: dict[str, str]) -> str:
    """`nimbus up` that must refuse to start; its output."""
    env = {**os.environ, **env, "NIMBUS_TEST_MQTT_URL": broker.url}
    result = subprocess.run(
        [sys.executable, "-m", "nimbus", "up", str(APP), "--port", "0", "--no-reload",
         "--data-dir", str(tmp_path / "refused")],
        env={**env, "NIMBUS_TEST_OUT": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr
