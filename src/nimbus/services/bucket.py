"""Buckets: object stores with the semantics of Amazon S3, and their object events.

An object is a key (UTF-8, 1 to 1024 bytes) naming bytes, a content type and user metadata;
a put replaces the whole object atomically (readers of the old version keep reading it) and
its ETag is the MD5 of its bytes, quoted as S3 quotes it. Keys list in UTF-8 binary order, with
prefixes and delimiters rolled up into common prefixes as ListObjectsV2 does. Large objects
stream in chunks both ways and are never held whole in memory; function code, whose calls are
single messages, moves them through upload sessions and ranged gets.

Every committed put and delete appends an object event (created / deleted) to the bucket's
event log, in the same transaction: sequence numbers increase without gaps, events are kept for
`EVENT_RETENTION`, and consumers long-poll with `wait`.
"""

from __future__ import annotations

import builtins
import mimetypes
import re
from collections.abc import AsyncIterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, assert_never

import msgspec

from nimbus.errors import InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from nimbus.spec.resources import BucketSpec

MIB = 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
"""S3: the UTF-8 bytes of every user metadata key and value together."""
MAX_CONTENT_TYPE = 1024
MAX_LIST = 1000
"""ListObjectsV2 returns at most 1000 entries; a larger limit is lowered to it."""
MAX_EVENTS = 10000
CALL_BYTES = 8 * MIB
"""The most object bytes one `get` through the service socket carries (a ranged get)."""
EVENT_RETENTION = 86400.0
"""Seconds an object event is kept."""
UPLOAD_IDLE = 3600.0
"""Seconds after its last call that an unfinished upload session is abandoned and removed."""
DEFAULT_CONTENT_TYPE = "application/octet-stream"

ByteRange = tuple[int, int | None]
"""HTTP-style, inclusive: (first, last) bytes, (first, None) to the end, (-n, None) the last
n bytes."""
EventKind = Literal["created", "deleted"]
"""As `nimbus.spec.resources.BucketEvent` (not imported: function code must not load pydantic)."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ObjectInfo(msgspec.Struct, kw_only=True, frozen=True):
    key: str
    size: int
    etag: str
    """The MD5 of the bytes in hex, in double quotes (as S3 returns it)."""
    content_type: str
    metadata: dict[str, str] = {}
    """User metadata; keys in lower case, as S3 returns them."""
    last_modified: float
    """When the put committed, seconds since the epoch."""


class Page(msgspec.Struct, kw_only=True, frozen=True):
    objects: list[ObjectInfo]
    common_prefixes: list[str] = []
    cursor: str | None = None
    """Pass back to list on; None when this page is the last."""


class ObjectEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A committed change of one object; a deleted event carries the removed object's size
    and ETag."""

    sequence: int
    kind: EventKind
    key: str
    size: int
    etag: str
    time: float
    traceparent: str | None = None


class GetResult(msgspec.Struct, kw_only=True, frozen=True):
    info: ObjectInfo
    data: bytes


class ObjectBody(Protocol):
    """An object's bytes (or a range of them) in chunks; `aclose` when stopping early."""

    def __aiter__(self) -> ObjectBody: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Buckets(Protocol):
    """Every bucket of the platform; each method takes the bucket's name first."""

    async def create(self, spec: BucketSpec) -> None:
        """Create, or update the size limit (existing objects stay)."""

    async def delete(self, name: str) -> None:
        """Remove the bucket, its objects, events and uploads; nothing to do if it is absent.
        A bucket created again under the name goes on with the next sequence number."""

    async def close(self) -> None: ...

    async def put(
        self,
        name: str,
        key: str,
        body: bytes | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        traceparent: str | None = None,
    ) -> ObjectInfo:
        """Store the object (replacing any), committed with its created event when this
        returns; over the bucket's max_object_bytes: PayloadTooLarge and nothing stored."""

    async def get(
        self, name: str, key: str, *, range: ByteRange | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, ObjectBody]:
        """The object's info (of the whole object) and its bytes, or those of `range`; with
        `if_match`, ConditionFailed unless the object's ETag is that one."""

    async def head(self, name: str, key: str) -> ObjectInfo: ...

    async def delete_object(self, name: str, key: str, *, traceparent: str | None = None) -> bool:
        """Remove the object; False (and no event) if there was none, which is no error."""

    async def list(
        self,
        name: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        limit: int = MAX_LIST,
        cursor: str | None = None,
    ) -> Page:
        """Objects whose keys start with `prefix`, in UTF-8 binary order; with a delimiter,
        keys with it after the prefix roll up into common prefixes (each counts as one entry)."""

    async def upload_start(
        self,
        name: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Begin an upload session; returns its id."""

    async def upload_part(self, name: str, upload: str, data: bytes) -> int:
        """Append to the upload; returns its size so far. Over the limit: PayloadTooLarge and
        the session is aborted."""

    async def upload_complete(self, name: str, upload: str) -> ObjectInfo:
        """Store the uploaded bytes as the object (as `put` does) and end the session."""

    async def upload_abort(self, name: str, upload: str) -> None: ...

    async def events(
        self, name: str, after: int = 0, limit: int = 100
    ) -> builtins.list[ObjectEvent]:
        """Up to `limit` events with sequence > `after`, in order."""

    async def latest_sequence(self, name: str) -> int:
        """The sequence of the bucket's last event (0 before the first)."""

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        """Long poll: True once an event after `after` exists, False on timeout."""

    async def trim(self, now: float) -> None:
        """Drop events older than EVENT_RETENTION and uploads idle for UPLOAD_IDLE."""


# Backend-neutral rules every backend applies the same way.


def check_key(key: str, what: str = "key") -> None:
    if not isinstance(key, str) or not key:
        raise InvalidRequest(f"an object {what} is a non-empty string, not {key!r}")
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        raise InvalidRequest(f"object {what} {key!r} is not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise InvalidRequest(f"object {what} of {size} bytes is over the limit of {MAX_KEY_BYTES}")


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as stored: names are HTTP header tokens (they travel as `x-amz-meta-*`
    headers), lower-cased; values have no control characters; 2 KB in all."""
    checked: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InvalidRequest(f"metadata name {name!r} is not an HTTP header token")
        if not isinstance(value, str) or _CONTROL.search(value):
            raise InvalidRequest(f"metadata {name!r}: value {value!r} is not a one-line string")
        if name.lower() in checked:
            raise InvalidRequest(f"metadata name {name!r} is given twice (names ignore case)")
        checked[name.lower()] = value
    try:
        size = sum(len(name) + len(value.encode()) for name, value in checked.items())
    except UnicodeEncodeError:
        raise InvalidRequest("metadata values must be valid UTF-8") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"user metadata of {size} bytes is over the limit of {MAX_METADATA_BYTES}"
        )
    return checked


def content_type_for(key: str, content_type: str | None) -> str:
    """The given content type, else one guessed from the key's extension."""
    if content_type is None:
        return mimetypes.guess_type(key, strict=False)[0] or DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or not 0 < len(content_type) <= MAX_CONTENT_TYPE:
        raise InvalidRequest(f"content type {content_type!r} is not 1 to 1024 characters")
    if _CONTROL.search(content_type):
        raise InvalidRequest(f"content type {content_type!r} has control characters")
    return content_type


def check_listing(prefix: str, delimiter: str | None, limit: int) -> int:
    """The listing's arguments are valid; returns the limit to use."""
    if prefix != "":
        check_key(prefix, "prefix")
    if delimiter:
        check_key(delimiter, "delimiter")
    if limit < 1:
        raise InvalidRequest(f"list limit {limit} is below 1")
    return min(limit, MAX_LIST)


def check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise InvalidRequest(f"limit {limit} is not between 1 and {most}")


def resolve_range(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """(offset, length) of the bytes a range selects in an object of `size` bytes, as HTTP
    (RFC 9110) resolves it: a last byte past the end is cut to the end; a first byte at or
    past the end, or any range of an empty object but a suffix, is unsatisfiable."""
    if byte_range is None:
        return 0, size
    first, last = byte_range
    if first < 0:
        if last is not None:
            raise InvalidRequest(f"range {byte_range}: a suffix range (-n, None) has no end")
        length = min(-first, size)
        return size - length, length
    if last is not None and last < first:
        raise InvalidRequest(f"range {byte_range}: the last byte is before the first")
    if first >= size:
        raise InvalidRequest(f"range {byte_range} is not satisfiable: the object has {size} bytes")
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


def etag_of(md5_hex: str) -> str:
    return f'"{md5_hex}"'


# The operations a function may call through `nimbus.sdk.bucket.Bucket`.


class PutObject(msgspec.Struct, tag="bucket.put", kw_only=True, frozen=True):
    key: str
    data: bytes
    content_type: str | None = None
    metadata: dict[str, str] = {}
    traceparent: str | None = None


class GetObject(msgspec.Struct, tag="bucket.get", kw_only=True, frozen=True):
    """At most CALL_BYTES per call: larger objects are read in ranges."""

    key: str
    range: ByteRange | None = None
    if_match: str | None = None


class HeadObject(msgspec.Struct, tag="bucket.head", kw_only=True, frozen=True):
    key: str


class DeleteObject(msgspec.Struct, tag="bucket.delete", kw_only=True, frozen=True):
    key: str
    traceparent: str | None = None


class ListObjects(msgspec.Struct, tag="bucket.list", kw_only=True, frozen=True):
    prefix: str = ""
    delimiter: str | None = None
    limit: int = MAX_LIST
    cursor: str | None = None


class StartUpload(msgspec.Struct, tag="bucket.upload_start", kw_only=True, frozen=True):
    key: str
    content_type: str | None = None
    metadata: dict[str, str] = {}
    traceparent: str | None = None


class UploadPart(msgspec.Struct, tag="bucket.upload_part", kw_only=True, frozen=True):
    upload: str
    data: bytes


class CompleteUpload(msgspec.Struct, tag="bucket.upload_complete", kw_only=True, frozen=True):
    upload: str


class AbortUpload(msgspec.Struct, tag="bucket.upload_abort", kw_only=True, frozen=True):
    upload: str


BucketOp = (
    PutObject
    | GetObject
    | HeadObject
    | DeleteObject
    | ListObjects
    | StartUpload
    | UploadPart
    | CompleteUpload
    | AbortUpload
)


async def perform(service: Buckets, resource: str, op: BucketOp) -> Any:
    match op:
        case PutObject():
            return await service.put(
                resource,
                op.key,
                op.data,
                content_type=op.content_type,
                metadata=op.metadata,
                traceparent=op.traceparent,
            )
        case GetObject():
            return await _get(service, resource, op)
        case HeadObject():
            return await service.head(resource, op.key)
        case DeleteObject():
            return await service.delete_object(resource, op.key, traceparent=op.traceparent)
        case ListObjects():
            return await service.list(
                resource, prefix=op.prefix, delimiter=op.delimiter, limit=op.limit,
                cursor=op.cursor,
            )  # fmt: skip
        case StartUpload():
            return await service.upload_start(
                resource,
                op.key,
                content_type=op.content_type,
                metadata=op.metadata,
                traceparent=op.traceparent,
            )
        case UploadPart():
            return await service.upload_part(resource, op.upload, op.data)
        case CompleteUpload():
            return await service.upload_complete(resource, op.upload)
        case AbortUpload():
            return await service.upload_abort(resource, op.upload)
        case _:
            assert_never(op)


async def _get(service: Buckets, resource: str, op: GetObject) -> GetResult:
    """Read the bytes into one reply, refusing more than CALL_BYTES before reading any."""
    info, body = await service.get(resource, op.key, range=op.range, if_match=op.if_match)
    _, length = resolve_range(op.range, info.size)
    if length > CALL_BYTES:
        await body.aclose()
        raise PayloadTooLarge(
            f"object {op.key!r}: {length} bytes are over the {CALL_BYTES} one call may "
            "carry; get it in ranges (Bucket.get and download_file do)"
        )
    return GetResult(info=info, data=b"".join([chunk async for chunk in body]))
