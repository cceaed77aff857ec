"""The handle function code uses for an object store bucket: `Bucket("uploads").get(key)`.

Each call is one message to the platform, so large objects travel in chunks of CHUNK bytes:
puts of more go through an upload session, gets of more are ranged gets of one version (its
ETag is checked on every chunk, so a concurrent overwrite fails the read instead of mixing
two versions).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

import msgspec

from nimbus.errors import NimbusError
from nimbus.sdk import client
from nimbus.services.bucket import (
    DEFAULT_CONTENT_TYPE,
    MIB,
    AbortUpload,
    BucketOp,
    ByteRange,
    CompleteUpload,
    DeleteObject,
    GetObject,
    GetResult,
    HeadObject,
    ListObjects,
    ObjectInfo,
    Page,
    PutObject,
    StartUpload,
    UploadPart,
    content_type_for,
    resolve_range,
)

CHUNK = MIB
T = TypeVar("T")


class Bucket:
    def __init__(self, name: str) -> None:
        self.name = name

    def put(
        self,
        key: str,
        data: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store `data`: bytes as they are, str as UTF-8, anything else as JSON."""
        body, content_type = object_body(key, data, content_type)
        if len(body) <= CHUNK:
            op = PutObject(
                key=key, data=body, content_type=content_type, metadata=dict(metadata or {})
            )
            return self._call(op, ObjectInfo)
        parts = (body[start : start + CHUNK] for start in range(0, len(body), CHUNK))
        return self._upload(key, parts, content_type, metadata)

    def get(self, key: str, range: ByteRange | None = None) -> bytes:
        """The object's bytes, or those of an HTTP-style range: (first, last) inclusive,
        (first, None) to the end, (-n, None) the last n bytes."""
        return b"".join(self._read(key, range))

    def head(self, key: str) -> ObjectInfo:
        return self._call(HeadObject(key=key), ObjectInfo)

    def delete(self, key: str) -> bool:
        """Remove the object; False if there was none (not an error)."""
        return self._call(DeleteObject(key=key), bool)

    def list(
        self,
        prefix: str = "",
        delimiter: str | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page:
        """One page of keys in order; pass `page.cursor` back for the next."""
        op = ListObjects(prefix=prefix, delimiter=delimiter, limit=limit, cursor=cursor)
        return self._call(op, Page)

    def upload_file(
        self,
        key: str,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store a file (a path or a binary file object) read and sent in chunks."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as file:
                return self._upload(key, file_chunks(file), content_type, metadata)
        return self._upload(key, file_chunks(source), content_type, metadata)

    def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Write the object to `path` chunk by chunk as they arrive; removed on failure."""
        info = self.head(key)
        try:
            with open(path, "wb") as file:
                for chunk in self._chunks(key, info, 0, info.size):
                    file.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return info

    def _read(self, key: str, byte_range: ByteRange | None) -> Iterator[bytes]:
        info = self.head(key)
        offset, length = resolve_range(byte_range, info.size)
        return self._chunks(key, info, offset, length)

    def _chunks(self, key: str, info: ObjectInfo, offset: int, length: int) -> Iterator[bytes]:
        """Ranged gets of one version of the object: each fails if the ETag changed."""
        for start in range(offset, offset + length, CHUNK):
            last = min(start + CHUNK, offset + length) - 1
            op = GetObject(key=key, range=(start, last), if_match=info.etag)
            yield self._call(op, GetResult).data

    def _upload(
        self,
        key: str,
        parts: Iterable[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> ObjectInfo:
        start = StartUpload(key=key, content_type=content_type, metadata=dict(metadata or {}))
        upload = self._call(start, str)
        try:
            for part in parts:
                self._call(UploadPart(upload=upload, data=part), int)
            return self._call(CompleteUpload(upload=upload), ObjectInfo)
        except BaseException:
            with contextlib.suppress(NimbusError):  # already ended, e.g. by a size error
                self._call(AbortUpload(upload=upload), type(None))
            raise

    def _call(self, op: BucketOp, result: type[T]) -> T:
        return client.call(self.name, op, result)


def object_body(key: str, data: Any, content_type: str | None) -> tuple[bytes, str | None]:
    """The bytes to store and their content type (None: the platform guesses from the key)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), content_type
    if isinstance(data, str):
        return data.encode(), content_type or _text_type(key)
    return msgspec.json.encode(data), content_type or "application/json"


def _text_type(key: str) -> str:
    """Text is plain text unless the key's extension tells more (`.csv`, `.html`)."""
    guessed = content_type_for(key, None)
    return "text/plain; charset=utf-8" if guessed == DEFAULT_CONTENT_TYPE else guessed


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK):
        yield chunk
