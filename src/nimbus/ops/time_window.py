"""The moments and sizes people type: `--since 24h`, `--until 2026-01-31T00:00:00Z`,
`--log-limit 100MB`; each parsed once, with a clear error for anything else."""

from __future__ import annotations

import re

from nimbus.errors import InvalidRequest
from nimbus.events.cloudevents import parse_time

_AGO = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d|w)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KIB|MIB|GIB)?")
_BYTES = {
    "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2,
    "GIB": 1024**3,
}  # fmt: skip


def moment(text: str, now: float, name: str) -> float:
    """Epoch seconds of `text`: a time ago (`90s`, `15m`, `24h`, `7d`, `2w`), an RFC 3339
    timestamp, or epoch seconds."""
    value = text.strip()
    ago = _AGO.fullmatch(value)
    if ago is not None:
        return now - float(ago[1]) * _SECONDS[ago[2]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_time(value)
    except InvalidRequest:
        raise InvalidRequest(
            f"{name} {text!r} is not a time: give one ago (30m, 24h, 7d), an RFC 3339 "
            "timestamp (2026-01-31T12:00:00Z) or epoch seconds"
        ) from None


def byte_size(text: str, name: str) -> int:
    """Bytes of `text`: `1048576`, `512KB`, `100MB`, `1GiB` (KB = 1000 bytes, KiB = 1024)."""
    found = _SIZE.fullmatch(text.strip().upper())
    if found is None:
        raise InvalidRequest(f"{name} {text!r} is not a size such as 100MB, 512KiB or 1048576")
    return int(float(found[1]) * _BYTES[found[2] or "B"])
