"""What the sync and async clients share: the platform API's paths and headers, and how its
answers become results or exceptions (the I/O itself is each client's own)."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from nimbus.compute.protocol import ErrorInfo
from nimbus.discovery import locate
from nimbus.edge.api_names import API_PREFIX, METADATA, OBJECT_INFO
from nimbus.errors import (
    SERVICE_ERRORS,
    Conflict,
    FunctionFailed,
    InvalidRequest,
    NimbusError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PlatformUnavailable,
    SpecError,
    Throttled,
    Unauthorized,
)
from nimbus.services.bucket import ByteRange, ObjectInfo
from nimbus.services.table import Item, KeyValue

TIMEOUT = httpx.Timeout(960.0, connect=10.0)
"""A synchronous invoke waits for the function, whose timeout is at most 900 s."""
POLL_FIRST, POLL_MOST = 0.05, 1.0
"""Seconds between status checks while waiting for an asynchronous invocation: doubling."""

C = TypeVar("C")
ITEM_OR_NONE: Any = Item | None
"""A table get's answer: decoded as this union (typed Any, as unions are not `type[T]`)."""
_BY_NAME: dict[str, type[NimbusError]] = {
    **SERVICE_ERRORS,
    SpecError.__name__: SpecError,
    Unauthorized.__name__: Unauthorized,
}
_BY_STATUS: dict[int, type[NimbusError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: PermissionDenied, 404: NotFound,
    409: Conflict, 413: PayloadTooLarge, 416: InvalidRequest, 429: Throttled,
    503: PlatformUnavailable,
}  # fmt: skip


class Job(msgspec.Struct, kw_only=True):
    """The state of an asynchronous invocation, as the platform reports it."""

    id: str
    function: str
    status: Literal["queued", "running", "retrying", "succeeded", "failed"]
    attempts: int
    created_at: float
    updated_at: float
    result: Any = None
    """The function's return value, once `status` is "succeeded"."""
    error: ErrorInfo | None = None
    """The last attempt's error (also while retrying)."""
    request_ids: list[str] = []
    """One per attempt: `nimbus logs --request ID` shows what it printed."""

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")


class SendOptions(TypedDict, total=False):
    delay: float | None
    attributes: dict[str, str]
    group: str | None
    dedup_id: str | None


class PublishOptions(TypedDict, total=False):
    type: str
    source: str
    subject: str | None
    attributes: dict[str, str]


class QueryOptions(TypedDict, total=False):
    sort: dict[str, Any] | None
    index: str | None
    filter: dict[str, Any] | None
    limit: int
    forward: bool
    cursor: str | None


class ScanOptions(TypedDict, total=False):
    filter: dict[str, Any] | None
    limit: int
    cursor: str | None


class Handle(Generic[C]):
    """A resource of the platform, named, reached through client `C`."""

    def __init__(self, client: C, name: str) -> None:
        self.name = name
        self._client = client


def connection(
    url: str | None, token: str | None, data_dir: Path | str | None
) -> tuple[str, dict[str, Any]]:
    """The platform's URL and the options of an httpx client for its API (found by `locate`)."""
    target = locate(url, token, data_dir)
    headers = {"authorization": f"Bearer {target.token}"} if target.token else {}
    return target.url, {"base_url": target.url + API_PREFIX, "headers": headers}


def unavailable(url: str, error: httpx.TransportError) -> PlatformUnavailable:
    return PlatformUnavailable(
        f"no nimbus platform answers at {url} ({error.__class__.__name__}); "
        "start one with `nimbus up APP`, or set NIMBUS_URL"
    )


def check(response: httpx.Response) -> None:
    """Raise the platform's error as the nimbus exception it names (the body must be read)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message, name = str(body["error"]), body.get("type")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, name = response.text or f"HTTP {response.status_code}", None
    if response.status_code == 429:
        raise Throttled(message, int(response.headers.get("retry-after", "1")))
    error = _BY_NAME.get(name or "") or _BY_STATUS.get(response.status_code, NimbusError)
    raise error(message)


def invoke_path(function: str) -> str:
    return f"/functions/{quote(function, safe='')}/invoke"


def job_path(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def resource_path(name: str) -> str:
    return f"/resources/{quote(name, safe='')}"


def object_path(bucket: str, key: str) -> str:
    """Dots escaped too: an HTTP client would resolve `a/../b` to `b` (RFC 3986 section 5.2.4),
    and a key is not a path."""
    escaped = quote(key, safe="/").replace(".", "%2E")
    return f"/buckets/{quote(bucket, safe='')}/objects/{escaped}"


def async_params(job_id: str | None) -> dict[str, str]:
    return {"mode": "async"} | ({"id": job_id} if job_id is not None else {})


def invocation_result(record: Mapping[str, Any]) -> Any:
    """A synchronous invocation's result, or its failure raised as FunctionFailed."""
    error = record.get("error")
    if error is None:
        return record.get("result")
    raise FunctionFailed(
        f"{record['function']} failed ({record['outcome']}): {error['type']}: {error['message']}",
        error_type=error["type"],
        outcome=record["outcome"],
        request_id=record["id"],
        traceback=error.get("traceback", []),
    )


def job_result(job: Job) -> Any:
    """A finished job's result, or its last error raised as FunctionFailed."""
    if job.status == "succeeded":
        return job.result
    error = job.error or ErrorInfo("Handler", "Failed", "the invocation failed")
    raise FunctionFailed(
        f"{job.function} failed after {job.attempts} attempt(s): {error.type}: {error.message}",
        error_type=error.type,
        outcome="failed",
        request_id=job.request_ids[-1] if job.request_ids else None,
        traceback=error.traceback,
    )


class Poll:
    """The waits between status checks of an invocation (doubling), until `timeout` seconds."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._delay = POLL_FIRST

    def next_delay(self, job: Job) -> float:
        """Seconds to wait before checking `job` again; TimeoutError if that ends past the
        timeout (the invocation goes on)."""
        delay, self._delay = self._delay, min(self._delay * 2, POLL_MOST)
        if self._deadline is not None and time.monotonic() + delay > self._deadline:
            raise TimeoutError(
                f"invocation {job.id} of {job.function} is still {job.status} "
                f"after {self.timeout} s"
            )
        return delay


def table_key(
    key: Mapping[str, KeyValue] | None, attributes: Mapping[str, KeyValue]
) -> dict[str, KeyValue]:
    """A key given as a dict, as keyword arguments, or both (as `nimbus.Table.get` takes it)."""
    return {**(key or {}), **attributes}


def put_headers(
    content_type: str | None, metadata: Mapping[str, str] | None, size: int | None
) -> dict[str, str]:
    """A streamed put's headers: the size lets the platform refuse too big an object at once."""
    headers = {METADATA: json.dumps(dict(metadata or {}))}  # ASCII, as headers must be
    if content_type is not None:
        headers["content-type"] = content_type
    if size is not None:
        headers["content-length"] = str(size)
    return headers


def range_headers(byte_range: ByteRange | None) -> dict[str, str]:
    if byte_range is None:
        return {}
    first, last = byte_range
    if first < 0:
        return {"range": f"bytes={first}"}
    return {"range": f"bytes={first}-{'' if last is None else last}"}


def object_info(headers: httpx.Headers) -> ObjectInfo:
    return msgspec.json.decode(headers[OBJECT_INFO], type=ObjectInfo)


def file_size(file: IO[bytes]) -> int | None:
    """The bytes left to read in a regular file (None for a pipe: streamed chunked)."""
    try:
        status = os.fstat(file.fileno())
        position = file.tell()
    except (OSError, ValueError, AttributeError):
        return None
    return max(status.st_size - position, 0) if stat.S_ISREG(status.st_mode) else None
