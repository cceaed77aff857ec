"""MQTT in the spec: a broker the platform connects to, and the trigger that subscribes a function
to a topic filter on it (like an AWS IoT rule `SELECT * FROM 'filter'` with a Lambda action).

Credentials are never part of the spec: it names the environment variables of the platform
(`nimbus up`) that hold them, read when the controller connects.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, field_validator, model_validator

from nimbus.errors import InvalidRequest
from nimbus.services.mqtt import QoS, check_filter
from nimbus.spec.base import NAME, Model

KIB = 1024
ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5's session expiry interval that means 'keep the session for ever'."""


class MqttBrokerSpec(Model):
    """An MQTT broker (Mosquitto, EMQX, HiveMQ, AWS IoT Core, ...): `mqtt://host:port`, or
    `mqtts://host:port` for TLS (the system's CAs, or `ca_file`; `cert_file` + `key_file` for a
    client certificate, as AWS IoT Core requires)."""

    name: str = Field(pattern=NAME)
    url: str = Field(min_length=1, max_length=2048)
    username_env: str | None = Field(None, pattern=ENV_VAR, description="variable of the user")
    password_env: str | None = Field(None, pattern=ENV_VAR, description="variable of the password")
    client_id: str | None = Field(
        None, min_length=1, max_length=128, description="default nimbus-APP-BROKER"
    )
    session_expiry: int = Field(
        3600, ge=0, le=NEVER_EXPIRES, description="s the broker keeps messages while away"
    )
    keep_alive: int = Field(60, ge=1, le=65535, description="s")
    ca_file: str | None = Field(None, min_length=1)
    cert_file: str | None = Field(None, min_length=1)
    key_file: str | None = Field(None, min_length=1)
    max_message_bytes: int = Field(128 * KIB, ge=1, le=268435455, description="publish limit")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = _split(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"the URL's scheme is mqtt:// or mqtts://, not {parts.scheme!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "credentials do not belong in the URL: name the environment variables that "
                "hold them with username_env and password_env"
            )
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{url!r}: an MQTT URL is scheme://host[:port], nothing after")
        return url

    @model_validator(mode="after")
    def _check_tls(self) -> MqttBrokerSpec:
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        given = [name for name, path in files.items() if path is not None]
        if given and not self.tls:
            raise ValueError(f"{', '.join(given)} need an mqtts:// URL")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        if self.password_env is not None and self.username_env is None:
            raise ValueError("password_env needs username_env")
        return self

    @property
    def tls(self) -> bool:
        return _split(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return _split(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = _split(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number 0-65535
    except ValueError as error:
        raise ValueError(f"{url!r} is not a valid URL: {error}") from None
    return parts


class MqttTrigger(Model):
    """Run the function on each message published to a topic matching `topic` (a filter:
    `+` one level, `#` the rest); each message is one asynchronous invocation."""

    type: Literal["mqtt"] = "mqtt"
    broker: str = Field(pattern=NAME)
    topic: str = Field(min_length=1, description="topic filter")
    qos: QoS = 1

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, topic: str) -> str:
        try:
            return check_filter(topic)
        except InvalidRequest as error:
            raise ValueError(error.message) from None

    @property
    def source(self) -> str:
        return self.broker

    @property
    def label(self) -> str:
        return f"mqtt {self.broker} {self.topic}"
