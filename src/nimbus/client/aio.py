"""`nimbus.client.AsyncClient`: the asyncio twin of `Client`, method for method.

async with AsyncClient() as nimbus:
    invocation = await nimbus.invoke_async("report", {"month": "2026-01"})
    print(await invocation.wait(timeout=600))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar, Unpack

import httpx
import msgspec

from nimbus.client import wire
from nimbus.sdk.bucket import CHUNK, object_body
from nimbus.sdk.queue import body_text, send_entries
from nimbus.sdk.topic import json_value, publish_entries
from nimbus.services import bucket, queue, table, topic

T = TypeVar("T")


class AsyncClient:
    """A platform's API, found as `Client` finds it."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        data_dir: Path | str | None = None,
        timeout: httpx.Timeout | float = wire.TIMEOUT,
    ) -> None:
        self.url, options = wire.connection(url, token, data_dir)
        self._http = httpx.AsyncClient(timeout=timeout, **options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **options: Any) -> Any:
        """Call the platform API at `path` (under /_nimbus) and return its JSON answer."""
        return (await self.send(method, path, **options)).json()

    async def send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise wire.unavailable(self.url, error) from None
        wire.check(response)
        return response

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str, **options: Any) -> AsyncIterator[httpx.Response]:
        """A response whose body is read as it arrives."""
        try:
            async with self._http.stream(method, path, **options) as response:
                if response.status_code >= 400:
                    await response.aread()
                    wire.check(response)
                yield response
        except httpx.TransportError as error:
            raise wire.unavailable(self.url, error) from None

    async def invoke(self, function: str, event: Any = None) -> Any:
        """Run `function` with `event` and return its result; its failure raises FunctionFailed,
        no free instance Throttled (with `retry_after`)."""
        event_json = msgspec.json.encode(event)
        record = await self.request("POST", wire.invoke_path(function), content=event_json)
        return wire.invocation_result(record)

    async def invoke_async(
        self, function: str, event: Any = None, *, id: str | None = None
    ) -> AsyncInvocation:
        """Queue an invocation (durably, with the function's retries) and return at once.
        With `id`, submitting again returns the invocation that `id` already named."""
        path, params = wire.invoke_path(function), wire.async_params(id)
        event_json = msgspec.json.encode(event)
        accepted = await self.request("POST", path, content=event_json, params=params)
        return AsyncInvocation(self, accepted["id"])

    def invocation(self, id: str) -> AsyncInvocation:
        """The asynchronous invocation `id`, to follow up on."""
        return AsyncInvocation(self, id)

    async def perform(self, resource: str, op: msgspec.Struct, result: type[T]) -> T:
        """Run one operation (a `nimbus.services.*` struct) on a declared resource, and return
        its answer decoded as `result`."""
        path, body = wire.resource_path(resource), msgspec.json.encode(op)
        answer = await self.send("POST", path, content=body)
        return msgspec.json.decode(answer.content, type=result)

    def queue(self, name: str) -> AsyncQueue:
        return AsyncQueue(self, name)

    def topic(self, name: str) -> AsyncTopic:
        return AsyncTopic(self, name)

    def table(self, name: str) -> AsyncTable:
        return AsyncTable(self, name)

    def bucket(self, name: str) -> AsyncBucket:
        return AsyncBucket(self, name)


class AsyncInvocation:
    """An asynchronous invocation: `await status()` now, or `await wait()` for its result."""

    def __init__(self, client: AsyncClient, id: str) -> None:
        self.id = id
        self._client = client

    async def status(self) -> wire.Job:
        return msgspec.convert(await self._client.request("GET", wire.job_path(self.id)), wire.Job)

    async def wait(self, timeout: float | None = None) -> Any:
        """The result once the invocation is done (FunctionFailed if it failed for good);
        TimeoutError if it is not done within `timeout` seconds."""
        poll = wire.Poll(timeout)
        while not (job := await self.status()).done:
            await asyncio.sleep(poll.next_delay(job))
        return wire.job_result(job)


class AsyncQueue(wire.Handle[AsyncClient]):
    """A declared queue, as `nimbus.Queue` is in function code."""

    async def send(self, body: object, **options: Unpack[wire.SendOptions]) -> str:
        """Send one message (str as is, bytes as UTF-8, else JSON); returns its id."""
        op = queue.Send(body=body_text(body), **options)
        return (await self._client.perform(self.name, op, queue.SendResult)).id

    async def send_batch(self, messages: Iterable[object]) -> queue.SendBatchResult:
        """Send bodies or SendEntry objects; an invalid one fails alone (see `.failed`)."""
        op = queue.SendBatch(entries=send_entries(messages))
        return await self._client.perform(self.name, op, queue.SendBatchResult)


class AsyncTopic(wire.Handle[AsyncClient]):
    """A declared topic, as `nimbus.Topic` is in function code."""

    async def publish(self, data: Any, **options: Unpack[wire.PublishOptions]) -> str:
        """Publish one event (any JSON value); returns its id once stored."""
        op = topic.Publish(data=json_value(data), **options)
        return await self._client.perform(self.name, op, str)

    async def publish_batch(self, entries: Iterable[Any]) -> list[topic.PublishResult]:
        """Up to 10 values or PublishEntry objects; one result per entry, in order."""
        op = topic.PublishBatch(entries=publish_entries(entries))
        return await self._client.perform(self.name, op, list[topic.PublishResult])


class AsyncTable(wire.Handle[AsyncClient]):
    """A declared table, as `nimbus.Table` is in function code."""

    async def get(
        self, key: Mapping[str, table.KeyValue] | None = None, /, **attributes: table.KeyValue
    ) -> table.Item | None:
        """The item with this key (a dict, or keyword arguments); None if there is none."""
        op = table.Get(key=wire.table_key(key, attributes))
        item: table.Item | None = await self._client.perform(self.name, op, wire.ITEM_OR_NONE)
        return item

    async def query(
        self, key_value: table.KeyValue, **options: Unpack[wire.QueryOptions]
    ) -> table.Page:
        """One page of a partition (of the table or of `index`) in sort key order."""
        op = table.Query(key_value=key_value, **options)
        return await self._client.perform(self.name, op, table.Page)

    async def scan(self, **options: Unpack[wire.ScanOptions]) -> table.Page:
        """One page of every item, in key order; pass `page.cursor` back for the next."""
        return await self._client.perform(self.name, table.Scan(**options), table.Page)


class AsyncBucket(wire.Handle[AsyncClient]):
    """Objects stream to and from the platform: a file is never read whole into memory."""

    async def put(
        self,
        key: str,
        data: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bucket.ObjectInfo:
        """Store bytes as they are, str as UTF-8, anything else as JSON."""
        body, content_type = object_body(key, data, content_type)
        return await self._put(key, body, wire.put_headers(content_type, metadata, len(body)))

    async def upload_file(
        self,
        key: str,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bucket.ObjectInfo:
        """Store a file (a path or a binary file object), read in a thread chunk by chunk."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as file:
                return await self.upload_file(
                    key, file, content_type=content_type, metadata=metadata
                )
        headers = wire.put_headers(content_type, metadata, wire.file_size(source))
        return await self._put(key, _file_chunks(source), headers)

    async def get(self, key: str, range: bucket.ByteRange | None = None) -> bytes:
        """The object's bytes (in memory: download_file for big ones), or those of a range:
        (first, last) inclusive, (first, None) to the end, (-n, None) the last n bytes."""
        path = wire.object_path(self.name, key)
        return (await self._client.send("GET", path, headers=wire.range_headers(range))).content

    async def download_file(
        self, key: str, target: str | os.PathLike[str] | IO[bytes]
    ) -> bucket.ObjectInfo:
        """Write the object to `target` (a path or a binary file object) as it arrives, in a
        thread; a path's file is removed on failure."""
        if not isinstance(target, str | os.PathLike):
            return await self._download(key, target)
        try:
            with open(target, "wb") as file:
                return await self._download(key, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise

    async def head(self, key: str) -> bucket.ObjectInfo:
        return await self._client.perform(self.name, bucket.HeadObject(key=key), bucket.ObjectInfo)

    async def delete(self, key: str) -> bool:
        """Remove the object; False if there was none (not an error)."""
        return await self._client.perform(self.name, bucket.DeleteObject(key=key), bool)

    async def list(
        self,
        prefix: str = "",
        delimiter: str | None = None,
        limit: int = bucket.MAX_LIST,
        cursor: str | None = None,
    ) -> bucket.Page:
        """One page of keys in order; pass `page.cursor` back for the next."""
        op = bucket.ListObjects(prefix=prefix, delimiter=delimiter, limit=limit, cursor=cursor)
        return await self._client.perform(self.name, op, bucket.Page)

    async def _download(self, key: str, file: IO[bytes]) -> bucket.ObjectInfo:
        async with self._client.stream("GET", wire.object_path(self.name, key)) as response:
            async for chunk in response.aiter_bytes(CHUNK):
                await asyncio.to_thread(file.write, chunk)
            return wire.object_info(response.headers)

    async def _put(self, key: str, body: Any, headers: dict[str, str]) -> bucket.ObjectInfo:
        path = wire.object_path(self.name, key)
        answer = await self._client.send("PUT", path, content=body, headers=headers)
        return msgspec.json.decode(answer.content, type=bucket.ObjectInfo)


async def _file_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """The file's chunks, read off the event loop."""
    while chunk := await asyncio.to_thread(file.read, CHUNK):
        yield chunk
