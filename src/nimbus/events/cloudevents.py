"""CloudEvents 1.0: the attributes every nimbus event carries, and the structured JSON format.

Events published from outside (HTTP, the CLI) arrive as structured-mode JSON; `from_json`
validates them and answers `InvalidRequest` naming the attribute at fault. The distributed
tracing extension (`traceparent`, `tracestate`) is kept only when valid, as W3C asks.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from time import time as _now
from typing import Any

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.events import trace
from nimbus.ids import new_id
from nimbus.json_input import decode_json

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
_ATTRIBUTES = frozenset(
    {
        *("id", "source", "specversion", "type", "subject", "time", "datacontenttype"),
        *("dataschema", "data", "data_base64", "traceparent", "tracestate"),
    }
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_MEDIA_TYPE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*;.*)?")
_INT32 = (-(2**31), 2**31 - 1)

ExtensionValue = str | bool | int


def format_time(epoch: float, digits: int = 3) -> str:
    """RFC 3339 in UTC with `digits` fractional digits (0, 3 or 6): `2024-05-01T12:00:00.000Z`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += f".{moment.microsecond:06d}"[: digits + 1]
    return text + "Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp; InvalidRequest if it is not one."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise InvalidRequest(f"time {text!r} is not an RFC 3339 timestamp")
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidRequest(f"time {text!r} is not a valid date and time") from None


class CloudEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One event with its CloudEvents 1.0 context attributes; `id` and `time` default to new.

    `data` is any JSON value, or bytes (carried as `data_base64` in JSON). Other extension
    attributes travel in `extensions` (lower-case alphanumeric names; string, bool or int).
    """

    source: str
    type: str
    id: str = msgspec.field(default_factory=new_id)
    specversion: str = SPECVERSION
    time: str | None = msgspec.field(default_factory=lambda: format_time(_now()))
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    traceparent: str | None = None
    tracestate: str | None = None
    extensions: dict[str, ExtensionValue] = {}

    def __post_init__(self) -> None:
        _check_required(self)
        _check_optional(self)
        if trace.parse(self.traceparent) is None:  # an invalid parent voids its state too
            self.traceparent = self.tracestate = None

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object: extensions at the top level, bytes as data_base64."""
        result: dict[str, Any] = dict(self.extensions)
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "extensions" or value is None:
                continue
            if name == "data" and isinstance(value, bytes | bytearray | memoryview):
                result["data_base64"] = base64.b64encode(value).decode("ascii")
            else:
                result[name] = value
        return result

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.to_dict())

    @classmethod
    def from_dict(cls, value: object) -> CloudEvent:
        """Read a structured-mode JSON object; InvalidRequest names what is wrong."""
        if not isinstance(value, dict):
            raise InvalidRequest(f"a CloudEvent is a JSON object, not {type(value).__name__}")
        fields = {name: item for name, item in value.items() if name in _ATTRIBUTES}
        fields["extensions"] = extensions = _extensions(value)
        for name, item in extensions.items():  # before conversion, to name the one at fault
            _check_extension(name, item)
        if "data_base64" in fields:
            fields["data"] = _data_base64(fields.pop("data_base64"), value.get("data") is not None)
        for name in ("id", "source", "type", "specversion"):
            if fields.get(name) is None:
                raise InvalidRequest(f"the CloudEvent has no {name!r} attribute")
        try:
            return msgspec.convert(fields, cls)
        except msgspec.ValidationError as error:
            raise InvalidRequest(f"invalid CloudEvent: {error}") from None

    @classmethod
    def from_json(cls, body: bytes | str) -> CloudEvent:
        try:
            value = decode_json(body)
        except msgspec.DecodeError as error:
            raise InvalidRequest(f"the CloudEvent is not valid JSON: {error}") from None
        return cls.from_dict(value)


def _check_required(event: CloudEvent) -> None:
    for name in ("id", "source", "type"):
        value = getattr(event, name)
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"CloudEvent attribute {name!r} must be a non-empty string")
    if event.specversion != SPECVERSION:
        raise InvalidRequest(
            f"CloudEvent specversion {event.specversion!r} is not supported (only {SPECVERSION})"
        )


def _check_optional(event: CloudEvent) -> None:
    for name in ("subject", "dataschema", "tracestate"):
        value = getattr(event, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidRequest(f"CloudEvent attribute {name!r} must be a non-empty string")
    if event.time is not None:
        parse_time(event.time)
    content_type = event.datacontenttype
    if content_type is not None and not (
        isinstance(content_type, str) and _MEDIA_TYPE.fullmatch(content_type)
    ):
        raise InvalidRequest(f"datacontenttype {content_type!r} is not a media type")
    for name, value in event.extensions.items():
        _check_extension(name, value)


def _check_extension(name: str, value: object) -> None:
    if name in _ATTRIBUTES or name == "extensions" or not _EXTENSION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{name!r} is not a valid CloudEvents extension name (1-20 of a-z, 0-9)"
        )
    if isinstance(value, bool | str):
        return
    if isinstance(value, int) and _INT32[0] <= value <= _INT32[1]:
        return
    raise InvalidRequest(
        f"extension {name!r} must be a string, boolean or 32-bit integer, not {value!r}"
    )


def _extensions(value: dict[Any, Any]) -> dict[str, Any]:
    """The attributes that are not the spec's own; JSON null means absent."""
    return {
        name: item for name, item in value.items() if name not in _ATTRIBUTES and item is not None
    }


def _data_base64(encoded: object, has_data: bool) -> bytes:
    if has_data:
        raise InvalidRequest("a CloudEvent has either data or data_base64, not both")
    if not isinstance(encoded, str):
        raise InvalidRequest("data_base64 must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidRequest("data_base64 is not valid base64") from None
