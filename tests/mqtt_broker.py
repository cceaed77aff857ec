"""A real Mosquitto for the MQTT tests, on a free port in a temp dir, and a real MQTT client
playing the devices (paho-mqtt, which the `mqtt` extra installs).

Outside CI a missing `mosquitto` skips the tests that need it; with CI=true it fails them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_LIMIT = 30.0


def require_mosquitto() -> None:
    if not Path(MOSQUITTO).exists():
        reason = "mosquitto is not installed (Debian: apt-get install mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mosquitto:
    """One broker: `start` it (again on the same port after `kill`), `stop` it at the end."""

    folder: Path
    port: int = field(default_factory=free_port)
    extra: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'false' if 'password_file' in self.extra else 'true'}\n"
            f"persistence true\npersistence_location {self.folder}/\n"
            f"log_dest file {self.folder}/mosquitto.log\n{self.extra}"
            f"user {getpass.getuser()}\n"  # as root it would switch to `mosquitto`: no tmp dir
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_LIMIT
        while not self._accepting():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not start:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the broker loses what it had not saved, sessions included."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self.process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


class Device:
    """A device on the factory floor: publishes, and keeps what its subscriptions receive."""

    def __init__(self, broker: Mosquitto, name: str, **credentials: str) -> None:
        self.received: list[MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
        )
        if credentials:
            self.client.username_pw_set(credentials["username"], credentials["password"])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Return once the broker has the message (PUBACK for QoS 1)."""
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(30)
        assert info.is_published(), f"the broker did not acknowledge {topic!r}"

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic_filter, 1)
        assert done.wait(30), f"no SUBACK for {topic_filter!r}"

    def messages(self) -> list[MQTTMessage]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _client: Any, _userdata: Any, message: MQTTMessage) -> None:
        with self._lock:
            self.received.append(message)
