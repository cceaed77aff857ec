"""The platform API's resource endpoints: outside systems (the `nimbus.client` SDK, the CLI)
send to queues, publish to topics, read tables and move objects with the same operations
and services that functions use, so the semantics are identical.

- `POST /_nimbus/resources/{name}` runs one operation, a JSON object tagged with its `type`
  (`{"type": "queue.send", "body": "hi"}`), as DynamoDB's JSON protocol names the action in
  the request. The token is the permission: no `uses` check, but only resources the app
  declares are reachable.
- `PUT/GET/HEAD /_nimbus/buckets/{name}/objects/{key}` stream an object's bytes both ways
  (never whole in memory), with S3's headers: ETag, Content-Type, Last-Modified, Range.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from nimbus.edge.api_names import METADATA, OBJECT_INFO
from nimbus.errors import InvalidRequest, PayloadTooLarge
from nimbus.json_input import decode_json
from nimbus.services.bucket import (
    MIB,
    ByteRange,
    ObjectBody,
    ObjectInfo,
    check_key,
    check_metadata,
    content_type_for,
    resolve_range,
)
from nimbus.services.operations import OPERATIONS, Kind, kind_of, operation_kind, perform

if TYPE_CHECKING:
    from nimbus.controller import Controller
    from nimbus.spec.resources import BucketSpec

MAX_OPERATION_BYTES = 64 * MIB
"""The largest operation one request may carry (big objects go through the object routes)."""
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_decoders: dict[Kind, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(operations) for kind, operations in OPERATIONS.items()
}
_METADATA = msgspec.json.Decoder(dict[str, str])


class ObjectKey(Convertor[str]):
    """Any object key, line breaks included: Starlette's `path` convertor (`.*`) stops at a
    line break, and its `$` would take a trailing one off the key."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("object_key", ObjectKey())


class ResourcesAPI:
    """The platform API's resource routes: one operation on a resource, and objects streamed
    in and out of buckets."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    async def perform(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = kind_of(self.controller.spec, name)
        body = await _body(request, MAX_OPERATION_BYTES)
        try:
            op = decode_json(body, _decoders[kind])
        except msgspec.ValidationError as error:
            raise InvalidRequest(_invalid(name, kind, body, error)) from None
        except msgspec.DecodeError as error:
            raise InvalidRequest(f"the operation is not valid JSON: {error}") from None
        result = await perform(self.controller.services, kind, name, op)
        meter = self.controller.usage.meter
        if meter is not None:
            meter.service_call(name, op, result)
        return Response(msgspec.json.encode(result), media_type="application/json")

    async def put_object(self, request: Request) -> Response:
        name, key = self._object(request)
        content_type = request.headers.get("content-type")
        content_type_for(key, content_type)  # all checked before a byte is read
        metadata = check_metadata(_metadata(request.headers.get(METADATA)))
        limit = self._spec_of(name).max_object_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"object {key!r} of {declared} bytes is over bucket {name!r}'s max_object_bytes "
                f"of {limit}"
            )
        try:
            info = await self.controller.services.buckets.put(
                name, key, request.stream(), content_type=content_type, metadata=metadata
            )
        except ClientDisconnect:  # nothing was stored; no one is left to answer
            return Response(status_code=400)
        return Response(msgspec.json.encode(info), media_type="application/json")

    async def get_object(self, request: Request) -> Response:
        name, key = self._object(request)
        buckets = self.controller.services.buckets
        if request.method == "HEAD":
            info = await buckets.head(name, key)
            return Response(status_code=200, headers=_headers(info, info.size))
        byte_range = _range(request.headers.get("range"))
        try:
            info, body = await buckets.get(name, key, range=byte_range)
        except InvalidRequest as error:
            size = (await buckets.head(name, key)).size
            if byte_range is None or _satisfiable(byte_range, size):
                raise
            answer = {"error": error.message, "type": InvalidRequest.__name__}
            headers = {"content-range": f"bytes */{size}"}
            return Response(msgspec.json.encode(answer), 416, headers, "application/json")
        offset, length = resolve_range(byte_range, info.size)
        headers = _headers(info, length)
        if byte_range is None:
            return StreamingResponse(_chunks(body), 200, headers, info.content_type)
        headers["content-range"] = f"bytes {offset}-{offset + length - 1}/{info.size}"
        return StreamingResponse(_chunks(body), 206, headers, info.content_type)

    def _object(self, request: Request) -> tuple[str, str]:
        name, key = request.path_params["name"], request.path_params["key"]
        self._spec_of(name)
        check_key(key)
        return name, key

    def _spec_of(self, name: str) -> BucketSpec:
        kind = kind_of(self.controller.spec, name)
        if kind != "bucket":
            raise InvalidRequest(f"{name!r} is a {kind}, not a bucket")
        assert self.controller.spec is not None
        return self.controller.spec.buckets[name]


def resource_routes(controller: Controller, prefix: str) -> list[Route]:
    """The admin API's routes for outside callers' resource operations, under `prefix`."""
    api = ResourcesAPI(controller)
    objects = f"{prefix}/buckets/{{name}}/objects/{{key:object_key}}"
    return [
        Route(f"{prefix}/resources/{{name}}", api.perform, methods=["POST"]),
        Route(objects, api.put_object, methods=["PUT"]),
        Route(objects, api.get_object, methods=["GET", "HEAD"]),
    ]


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused as soon as it is known to be over `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a request of {declared} bytes is over the limit of {limit}")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request is over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _invalid(name: str, kind: Kind, body: bytes, error: msgspec.ValidationError) -> str:
    """Why an operation was refused; most helpful when it is another kind's operation."""
    try:
        tag = decode_json(body).get("type")
    except (msgspec.DecodeError, AttributeError):
        tag = None
    wanted = operation_kind(tag)
    if wanted is not None and wanted != kind:
        return f"{name!r} is a {kind}, not a {wanted}: {tag!r} is an operation on a {wanted}"
    return f"invalid {kind} operation on {name!r}: {error}"


def _metadata(header: str | None) -> dict[str, str]:
    if header is None:
        return {}
    try:
        metadata = decode_json(header, _METADATA)
    except msgspec.DecodeError:
        raise InvalidRequest(f"{METADATA} is a JSON object of strings, not {header!r}") from None
    return metadata


def _range(header: str | None) -> ByteRange | None:
    """One HTTP byte range (RFC 9110 section 14.1.2) as the bucket service takes it."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        raise InvalidRequest(f"Range {header!r} is not one range `bytes=first-last`")
    first, last = match.groups()
    if first == "":
        return -int(last), None
    return int(first), int(last) if last else None


def _satisfiable(byte_range: ByteRange, size: int) -> bool:
    try:
        resolve_range(byte_range, size)
    except InvalidRequest:
        return False
    return True


def _headers(info: ObjectInfo, length: int) -> dict[str, str]:
    return {
        "content-length": str(length),
        "content-type": info.content_type,
        "etag": info.etag,
        "last-modified": formatdate(info.last_modified, usegmt=True),
        "accept-ranges": "bytes",
        OBJECT_INFO: json.dumps(msgspec.to_builtins(info)),  # ASCII, as headers must be
    }


async def _chunks(body: ObjectBody) -> AsyncIterator[bytes]:
    """The object's chunks; its file is closed however the response ends."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        await body.aclose()
