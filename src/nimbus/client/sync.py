"""`nimbus.client.Client`: a running platform's functions and resources from outside it,
over the platform API with its token (the CLI uses it too).

    with Client() as nimbus:                        # URL and token: arguments, env, data dir
        nimbus.invoke("resize", {"key": "a.png"})   # the result, or FunctionFailed
        nimbus.queue("orders").send({"id": 7})
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar, Unpack

import httpx
import msgspec

from nimbus.client import wire
from nimbus.sdk.bucket import CHUNK, file_chunks, object_body
from nimbus.sdk.queue import body_text, send_entries
from nimbus.sdk.topic import json_value, publish_entries
from nimbus.services import bucket, queue, table, topic

T = TypeVar("T")


class Client:
    """A platform's API. `url`, `token`: given, else NIMBUS_URL / NIMBUS_TOKEN, else what the
    platform running with `data_dir` (NIMBUS_DATA_DIR, `.nimbus`) wrote down."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        data_dir: Path | str | None = None,
        timeout: httpx.Timeout | float = wire.TIMEOUT,
    ) -> None:
        self.url, options = wire.connection(url, token, data_dir)
        self._http = httpx.Client(timeout=timeout, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **options: Any) -> Any:
        """Call the platform API at `path` (under /_nimbus) and return its JSON answer."""
        return self.send(method, path, **options).json()

    def send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise wire.unavailable(self.url, error) from None
        wire.check(response)
        return response

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **options: Any) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives."""
        try:
            with self._http.stream(method, path, **options) as response:
                if response.status_code >= 400:
                    response.read()
                    wire.check(response)
                yield response
        except httpx.TransportError as error:
            raise wire.unavailable(self.url, error) from None

    def invoke(self, function: str, event: Any = None) -> Any:
        """Run `function` with `event` and return its result; its failure raises FunctionFailed,
        no free instance Throttled (with `retry_after`)."""
        event_json = msgspec.json.encode(event)
        record = self.request("POST", wire.invoke_path(function), content=event_json)
        return wire.invocation_result(record)

    def invoke_async(
        self, function: str, event: Any = None, *, id: str | None = None
    ) -> Invocation:
        """Queue an invocation (durably, with the function's retries) and return at once.
        With `id`, submitting again returns the invocation that `id` already named."""
        path, params = wire.invoke_path(function), wire.async_params(id)
        accepted = self.request("POST", path, content=msgspec.json.encode(event), params=params)
        return Invocation(self, accepted["id"])

    def invocation(self, id: str) -> Invocation:
        """The asynchronous invocation `id`, to follow up on."""
        return Invocation(self, id)

    def perform(self, resource: str, op: msgspec.Struct, result: type[T]) -> T:
        """Run one operation (a `nimbus.services.*` struct) on a declared resource, and return
        its answer decoded as `result`."""
        answer = self.send("POST", wire.resource_path(resource), content=msgspec.json.encode(op))
        return msgspec.json.decode(answer.content, type=result)

    def queue(self, name: str) -> Queue:
        return Queue(self, name)

    def topic(self, name: str) -> Topic:
        return Topic(self, name)

    def table(self, name: str) -> Table:
        return Table(self, name)

    def bucket(self, name: str) -> Bucket:
        return Bucket(self, name)


class Invocation:
    """An asynchronous invocation: `status()` now, or `wait()` for its result."""

    def __init__(self, client: Client, id: str) -> None:
        self.id = id
        self._client = client

    def status(self) -> wire.Job:
        return msgspec.convert(self._client.request("GET", wire.job_path(self.id)), wire.Job)

    def wait(self, timeout: float | None = None) -> Any:
        """The result once the invocation is done (FunctionFailed if it failed for good);
        TimeoutError if it is not done within `timeout` seconds."""
        poll = wire.Poll(timeout)
        while not (job := self.status()).done:
            time.sleep(poll.next_delay(job))
        return wire.job_result(job)


class Queue(wire.Handle[Client]):
    """A declared queue, as `nimbus.Queue` is in function code."""

    def send(self, body: object, **options: Unpack[wire.SendOptions]) -> str:
        """Send one message (str as is, bytes as UTF-8, else JSON); returns its id."""
        op = queue.Send(body=body_text(body), **options)
        return self._client.perform(self.name, op, queue.SendResult).id

    def send_batch(self, messages: Iterable[object]) -> queue.SendBatchResult:
        """Send bodies or SendEntry objects; an invalid one fails alone (see `.failed`)."""
        op = queue.SendBatch(entries=send_entries(messages))
        return self._client.perform(self.name, op, queue.SendBatchResult)


class Topic(wire.Handle[Client]):
    """A declared topic, as `nimbus.Topic` is in function code."""

    def publish(self, data: Any, **options: Unpack[wire.PublishOptions]) -> str:
        """Publish one event (any JSON value); returns its id once stored."""
        op = topic.Publish(data=json_value(data), **options)
        return self._client.perform(self.name, op, str)

    def publish_batch(self, entries: Iterable[Any]) -> list[topic.PublishResult]:
        """Up to 10 values or PublishEntry objects; one result per entry, in order."""
        op = topic.PublishBatch(entries=publish_entries(entries))
        return self._client.perform(self.name, op, list[topic.PublishResult])


class Table(wire.Handle[Client]):
    """A declared table, as `nimbus.Table` is in function code."""

    def get(
        self, key: Mapping[str, table.KeyValue] | None = None, /, **attributes: table.KeyValue
    ) -> table.Item | None:
        """The item with this key (a dict, or keyword arguments); None if there is none."""
        op = table.Get(key=wire.table_key(key, attributes))
        item: table.Item | None = self._client.perform(self.name, op, wire.ITEM_OR_NONE)
        return item

    def query(self, key_value: table.KeyValue, **options: Unpack[wire.QueryOptions]) -> table.Page:
        """One page of a partition (of the table or of `index`) in sort key order."""
        op = table.Query(key_value=key_value, **options)
        return self._client.perform(self.name, op, table.Page)

    def scan(self, **options: Unpack[wire.ScanOptions]) -> table.Page:
        """One page of every item, in key order; pass `page.cursor` back for the next."""
        return self._client.perform(self.name, table.Scan(**options), table.Page)


class Bucket(wire.Handle[Client]):
    """Objects stream to and from the platform: a file is never read whole into memory."""

    def put(
        self,
        key: str,
        data: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bucket.ObjectInfo:
        """Store bytes as they are, str as UTF-8, anything else as JSON."""
        body, content_type = object_body(key, data, content_type)
        return self._put(key, body, wire.put_headers(content_type, metadata, len(body)))

    def upload_file(
        self,
        key: str,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> bucket.ObjectInfo:
        """Store a file (a path or a binary file object), streamed in chunks."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as file:
                return self.upload_file(key, file, content_type=content_type, metadata=metadata)
        headers = wire.put_headers(content_type, metadata, wire.file_size(source))
        return self._put(key, file_chunks(source), headers)

    def get(self, key: str, range: bucket.ByteRange | None = None) -> bytes:
        """The object's bytes (in memory: download_file for big ones), or those of a range:
        (first, last) inclusive, (first, None) to the end, (-n, None) the last n bytes."""
        path = wire.object_path(self.name, key)
        return self._client.send("GET", path, headers=wire.range_headers(range)).content

    def download_file(
        self, key: str, target: str | os.PathLike[str] | IO[bytes]
    ) -> bucket.ObjectInfo:
        """Write the object to `target` (a path or a binary file object) as it arrives; a
        path's file is removed on failure."""
        if not isinstance(target, str | os.PathLike):
            return self._download(key, target)
        try:
            with open(target, "wb") as file:
                return self._download(key, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise

    def head(self, key: str) -> bucket.ObjectInfo:
        return self._client.perform(self.name, bucket.HeadObject(key=key), bucket.ObjectInfo)

    def delete(self, key: str) -> bool:
        """Remove the object; False if there was none (not an error)."""
        return self._client.perform(self.name, bucket.DeleteObject(key=key), bool)

    def list(
        self,
        prefix: str = "",
        delimiter: str | None = None,
        limit: int = bucket.MAX_LIST,
        cursor: str | None = None,
    ) -> bucket.Page:
        """One page of keys in order; pass `page.cursor` back for the next."""
        op = bucket.ListObjects(prefix=prefix, delimiter=delimiter, limit=limit, cursor=cursor)
        return self._client.perform(self.name, op, bucket.Page)

    def _download(self, key: str, file: IO[bytes]) -> bucket.ObjectInfo:
        with self._client.stream("GET", wire.object_path(self.name, key)) as response:
            for chunk in response.iter_bytes(CHUNK):
                file.write(chunk)
            return wire.object_info(response.headers)

    def _put(self, key: str, body: Any, headers: dict[str, str]) -> bucket.ObjectInfo:
        path = wire.object_path(self.name, key)
        answer = self._client.send("PUT", path, content=body, headers=headers)
        return msgspec.json.decode(answer.content, type=bucket.ObjectInfo)
