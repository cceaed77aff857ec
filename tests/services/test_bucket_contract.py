"""The bucket contract: S3 object semantics, streaming without holding objects in memory,
ListObjectsV2 listing, object events, upload sessions, durability; then the SDK handle end to
end through a real service socket (the controller's side served here with `perform`)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import Clock, run_killed
from nimbus.backends.embedded.bucket import EmbeddedBuckets
from nimbus.compute.protocol import HEADER, ErrorInfo, ServiceCall, ServiceReply, pack
from nimbus.errors import (
    ConditionFailed,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from nimbus.sdk import client
from nimbus.sdk.bucket import Bucket
from nimbus.services.bucket import (
    CALL_BYTES,
    MIB,
    BucketOp,
    Buckets,
    ByteRange,
    GetObject,
    ObjectEvent,
    ObjectInfo,
    Page,
    perform,
)
from nimbus.spec.resources import BucketSpec

BUCKET = "files"
LIMIT = 64 * MIB


def open_buckets(backend: str, data_dir: Path, clock: Callable[[], float]) -> Buckets:
    if backend == "embedded":
        return EmbeddedBuckets(data_dir, clock=clock)
    raise AssertionError(f"unknown backend {backend}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def buckets(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Buckets]:
    service = open_buckets(backend, tmp_path, clock)
    await service.create(BucketSpec(name=BUCKET, max_object_bytes=LIMIT))
    yield service
    await service.close()


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


async def read(buckets: Buckets, key: str, byte_range: ByteRange | None = None) -> bytes:
    _, body = await buckets.get(BUCKET, key, range=byte_range)
    return b"".join([chunk async for chunk in body])


async def all_events(buckets: Buckets, after: int = 0) -> list[ObjectEvent]:
    return await buckets.events(BUCKET, after, 1000)


# objects


@pytest.mark.anyio
async def test_put_get_head_round_trip(buckets: Buckets, clock: Clock) -> None:
    info = await buckets.put(BUCKET, "notes/a.txt", b"hello", metadata={"Owner": "ann", "x-n": "1"})
    expected = ObjectInfo(
        key="notes/a.txt",
        size=5,
        etag=etag(b"hello"),
        content_type="text/plain",
        metadata={"owner": "ann", "x-n": "1"},
        last_modified=clock.now,
    )
    assert info == expected
    assert await buckets.head(BUCKET, "notes/a.txt") == expected
    got, body = await buckets.get(BUCKET, "notes/a.txt")
    assert got == expected
    assert [chunk async for chunk in body] == [b"hello"]


@pytest.mark.anyio
async def test_content_type_is_given_guessed_or_octet_stream(buckets: Buckets) -> None:
    given = await buckets.put(BUCKET, "a.txt", b"{}", content_type="application/json")
    guessed = await buckets.put(BUCKET, "page.html", b"<p>")
    unknown = await buckets.put(BUCKET, "blob", b"\x00")
    assert (given.content_type, guessed.content_type) == ("application/json", "text/html")
    assert unknown.content_type == "application/octet-stream"


@pytest.mark.anyio
async def test_an_empty_object(buckets: Buckets) -> None:
    info = await buckets.put(BUCKET, "empty", b"")
    assert (info.size, info.etag) == (0, etag(b""))
    assert await read(buckets, "empty") == b""


@pytest.mark.anyio
async def test_missing_objects_and_buckets_are_not_found(buckets: Buckets) -> None:
    with pytest.raises(NotFound, match="no object 'nope'"):
        await buckets.head(BUCKET, "nope")
    with pytest.raises(NotFound, match="no object 'nope'"):
        await buckets.get(BUCKET, "nope")
    calls = [
        buckets.put("other", "k", b"x"),
        buckets.get("other", "k"),
        buckets.head("other", "k"),
        buckets.delete_object("other", "k"),
        buckets.list("other"),
        buckets.events("other"),
        buckets.latest_sequence("other"),
        buckets.upload_start("other", "k"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="no bucket named 'other'"):
            await call


@pytest.mark.anyio
async def test_delete_object_is_not_an_error_when_missing(buckets: Buckets) -> None:
    await buckets.put(BUCKET, "k", b"v")
    assert await buckets.delete_object(BUCKET, "k") is True
    assert await buckets.delete_object(BUCKET, "k") is False
    with pytest.raises(NotFound):
        await buckets.head(BUCKET, "k")
    assert [event.kind for event in await all_events(buckets)] == ["created", "deleted"]


@pytest.mark.anyio
async def test_get_with_if_match_fails_once_the_object_was_replaced(buckets: Buckets) -> None:
    first = await buckets.put(BUCKET, "k", b"one")
    assert (await buckets.get(BUCKET, "k", if_match=first.etag))[0] == first
    await buckets.put(BUCKET, "k", b"two")
    with pytest.raises(ConditionFailed, match="replaced"):
        await buckets.get(BUCKET, "k", if_match=first.etag)


# ranges

DATA = b"0123456789"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, 0), b"0"),
        ((2, 5), b"2345"),
        ((7, None), b"789"),
        ((7, 100), b"789"),
        ((-3, None), b"789"),
        ((-100, None), DATA),
        ((0, None), DATA),
    ],
)
async def test_ranges(buckets: Buckets, byte_range: ByteRange, expected: bytes) -> None:
    await buckets.put(BUCKET, "digits", DATA)
    info, body = await buckets.get(BUCKET, "digits", range=byte_range)
    assert info.size == len(DATA)
    assert b"".join([chunk async for chunk in body]) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "byte_range", "message"),
    [
        ("digits", (10, None), "not satisfiable: the object has 10 bytes"),
        ("digits", (12, 20), "not satisfiable"),
        ("empty", (0, None), "not satisfiable: the object has 0 bytes"),
        ("digits", (5, 2), "the last byte is before the first"),
        ("digits", (-3, 5), "a suffix range"),
    ],
)
async def test_bad_ranges_are_invalid_requests(
    buckets: Buckets, key: str, byte_range: ByteRange, message: str
) -> None:
    await buckets.put(BUCKET, "digits", DATA)
    await buckets.put(BUCKET, "empty", b"")
    with pytest.raises(InvalidRequest, match=message):
        await buckets.get(BUCKET, key, range=byte_range)


@pytest.mark.anyio
async def test_a_suffix_range_of_an_empty_object_is_empty(buckets: Buckets) -> None:
    """RFC 9110: a suffix range with a non-zero length is satisfiable, whatever the size."""
    await buckets.put(BUCKET, "empty", b"")
    assert await read(buckets, "empty", (-5, None)) == b""


# streaming


async def generated(size: int, chunk: int, seed: int, digest: Any) -> AsyncIterator[bytes]:
    """Fresh random chunks, hashed as they go: the test never holds the whole object."""
    source = random.Random(seed)
    for start in range(0, size, chunk):
        data = source.randbytes(min(chunk, size - start))
        digest.update(data)
        yield data


@pytest.mark.anyio
async def test_a_large_object_streams_both_ways_without_being_held(buckets: Buckets) -> None:
    """50 MB in and out while Python's allocations (all threads) peak far below that: the
    object is written and read in chunks, never materialised."""
    size, bound = 50 * MIB, 8 * MIB
    sent = hashlib.md5()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        info = await buckets.put(BUCKET, "big.bin", generated(size, 64 * 1024, 1, sent))
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        received = hashlib.md5()
        got, body = await buckets.get(BUCKET, "big.bin")
        total, largest = 0, 0
        async for chunk in body:
            received.update(chunk)
            total += len(chunk)
            largest = max(largest, len(chunk))
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (info.size, info.etag) == (size, f'"{sent.hexdigest()}"')
    assert got == info and total == size and received.hexdigest() == sent.hexdigest()
    assert largest <= MIB
    assert put_peak < bound, f"a put of {size} bytes peaked at {put_peak} bytes"
    assert get_peak < bound, f"a get of {size} bytes peaked at {get_peak} bytes"


@pytest.mark.anyio
async def test_a_reader_of_the_old_version_keeps_reading_it(buckets: Buckets) -> None:
    old = random.Random(2).randbytes(3 * MIB)
    await buckets.put(BUCKET, "k", old)
    _, body = await buckets.get(BUCKET, "k")
    first = await anext(body)
    new = await buckets.put(BUCKET, "k", b"new version")
    rest = b"".join([chunk async for chunk in body])
    assert first + rest == old
    assert await read(buckets, "k") == b"new version"
    assert await buckets.head(BUCKET, "k") == new


@pytest.mark.anyio
async def test_concurrent_overwrites_leave_one_whole_version(buckets: Buckets) -> None:
    versions = [bytes([n]) * (MIB + n) for n in range(8)]
    await asyncio.gather(*(buckets.put(BUCKET, "k", data) for data in versions))
    info = await buckets.head(BUCKET, "k")
    data = await read(buckets, "k")
    assert data in versions and info.etag == etag(data) and info.size == len(data)
    assert len(await all_events(buckets)) == 8


# size limits and bad input change nothing


async def assert_unchanged(buckets: Buckets, keys: list[str], sequence: int) -> None:
    page = await buckets.list(BUCKET)
    assert [info.key for info in page.objects] == keys
    assert await buckets.latest_sequence(BUCKET) == sequence


async def two_chunks_of(size: int) -> AsyncIterator[bytes]:
    yield b"a" * size
    yield b"b" * size


@pytest.mark.anyio
async def test_an_object_over_the_limit_leaves_nothing_behind(buckets: Buckets) -> None:
    await buckets.create(BucketSpec(name=BUCKET, max_object_bytes=1000))
    await buckets.put(BUCKET, "kept", b"old")
    await buckets.put(BUCKET, "exact", b"x" * 1000)
    with pytest.raises(PayloadTooLarge, match="'big' in bucket 'files' is over"):
        await buckets.put(BUCKET, "big", b"x" * 1001)
    with pytest.raises(PayloadTooLarge, match="max_object_bytes of 1000"):
        await buckets.put(BUCKET, "big", two_chunks_of(600))
    with pytest.raises(PayloadTooLarge):
        await buckets.put(BUCKET, "kept", two_chunks_of(600))
    await assert_unchanged(buckets, ["exact", "kept"], 2)
    assert await read(buckets, "kept") == b"old"


BAD_KEYS: dict[str, Any] = {
    "empty": "",
    "1025 bytes": "k" * 1025,
    "1026 UTF-8 bytes": "é" * 513,
    "lone surrogate": "\ud800",
    "int": 7,
    "None": None,
}


@pytest.mark.anyio
@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
async def test_bad_keys_are_refused(buckets: Buckets, key: Any) -> None:
    await buckets.put(BUCKET, "ok", b"v")
    for call in (
        buckets.put(BUCKET, key, b"x"),
        buckets.get(BUCKET, key),
        buckets.head(BUCKET, key),
        buckets.delete_object(BUCKET, key),
        buckets.upload_start(BUCKET, key),
    ):
        with pytest.raises(InvalidRequest, match="object key"):
            await call
    await assert_unchanged(buckets, ["ok"], 1)


@pytest.mark.anyio
async def test_the_longest_key_and_metadata_are_accepted(buckets: Buckets) -> None:
    key = "k" * 1024
    metadata = {"m": "v" * 2047}
    info = await buckets.put(BUCKET, key, b"x", metadata=metadata)
    assert info.metadata == metadata
    assert (await buckets.head(BUCKET, key)).metadata == metadata


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"bad name": "v"}, "not an HTTP header token"),
        ({"": "v"}, "not an HTTP header token"),
        ({"k": "two\nlines"}, "not a one-line string"),
        ({"k": 5}, "not a one-line string"),
        ({"m": "v" * 2048}, "2049 bytes is over the limit of 2048"),
        ({"m": "é" * 1024}, "over the limit"),
        ({"Name": "1", "name": "2"}, "given twice"),
    ],
)
async def test_bad_metadata_is_refused(buckets: Buckets, metadata: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await buckets.put(BUCKET, "k", b"x", metadata=metadata)
    with pytest.raises(InvalidRequest, match=message):
        await buckets.upload_start(BUCKET, "k", metadata=metadata)
    await assert_unchanged(buckets, [], 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    ["", "text/plain\r\nX-Evil: 1", "t" * 1025],
    ids=["empty", "header injection", "too long"],
)
async def test_bad_content_types_are_refused(buckets: Buckets, content_type: str) -> None:
    with pytest.raises(InvalidRequest, match="content type"):
        await buckets.put(BUCKET, "k", b"x", content_type=content_type)
    await assert_unchanged(buckets, [], 0)


@pytest.mark.anyio
async def test_keys_are_only_names(buckets: Buckets, tmp_path: Path) -> None:
    """A key that looks like a path stays a key: nothing is written outside the data dir."""
    for key in ("../../escape", "/abs/path", "a/./b/../c", "\x00nul"):
        await buckets.put(BUCKET, key, key.encode())
        assert await read(buckets, key) == key.encode()
    assert not (tmp_path.parent / "escape").exists()
    assert not Path("/abs/path").exists()


# listing


KEYS = [
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a/b/d",
    "a/c",
    "a//x",
    "ab",
    "b",
    "b.txt",
    "photos/2024/jan/1.jpg",
    "photos/2024/jan/2.jpg",
    "photos/2024/feb/1.jpg",
    "photos/2025/mar/1.jpg",
    "photos/index.html",
    "Z",
    "z",
    "é",
    "éa/b",
    "\uffff",
    "\U0001f600/smile",
    "\U0001f600/smile2",
]


def model_listing(prefix: str, delimiter: str | None) -> list[str]:
    """ListObjectsV2 as documented: keys in UTF-8 binary order; with a delimiter, every key
    with it after the prefix becomes its common prefix (shown once, where it sorts first)."""
    entries: list[str] = []
    for key in sorted(KEYS, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        found = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = key if found < 0 else key[: found + len(delimiter or "")] + "\x00PREFIX"
        if entry not in entries:
            entries.append(entry)
    return entries


def page_entries(page: Page) -> list[str]:
    """The page's objects and common prefixes merged back into key order."""
    rolled = [prefix + "\x00PREFIX" for prefix in page.common_prefixes]
    objects = [info.key for info in page.objects]
    return sorted(objects + rolled, key=lambda entry: entry.split("\x00")[0].encode())


@pytest.mark.anyio
async def test_listing_matches_list_objects_v2_for_every_page_size(buckets: Buckets) -> None:
    for key in KEYS:
        await buckets.put(BUCKET, key, b"")
    cases = [
        ("", None),
        ("", "/"),
        ("a", "/"),
        ("a/", "/"),
        ("a/b", "/"),
        ("photos/", "/"),
        ("photos/2024/", "/"),
        ("photos/", "jan"),
        ("é", None),
        ("\U0001f600", "/"),
        ("nothing", "/"),
        ("", "//"),
    ]
    for prefix, delimiter in cases:
        expected = model_listing(prefix, delimiter)
        for limit in (1, 2, 3, 7, 1000):
            entries: list[str] = []
            cursor = None
            while True:
                page = await buckets.list(
                    BUCKET, prefix=prefix, delimiter=delimiter, limit=limit, cursor=cursor
                )
                assert len(page.objects) + len(page.common_prefixes) <= limit
                entries += page_entries(page)
                cursor = page.cursor
                if cursor is None:
                    break
            assert entries == expected, (prefix, delimiter, limit)


@pytest.mark.anyio
async def test_a_listing_page_shows_objects_and_common_prefixes(buckets: Buckets) -> None:
    for key in ("photos/a.jpg", "photos/2024/x.jpg", "photos/2025/y.jpg", "readme"):
        await buckets.put(BUCKET, key, b"12")
    page = await buckets.list(BUCKET, prefix="photos/", delimiter="/")
    assert page.common_prefixes == ["photos/2024/", "photos/2025/"]
    assert [(info.key, info.size) for info in page.objects] == [("photos/a.jpg", 2)]
    assert page.cursor is None
    top = await buckets.list(BUCKET, delimiter="/", limit=1)
    assert (top.common_prefixes, top.objects, top.cursor is not None) == (["photos/"], [], True)
    rest = await buckets.list(BUCKET, delimiter="/", cursor=top.cursor)
    assert [info.key for info in rest.objects] == ["readme"] and rest.cursor is None


@pytest.mark.anyio
async def test_listing_goes_on_after_keys_change_between_pages(buckets: Buckets) -> None:
    """No duplicates and no gaps among keys that exist throughout."""
    for key in "bdfh":
        await buckets.put(BUCKET, key, b"")
    first = await buckets.list(BUCKET, limit=2)
    await buckets.delete_object(BUCKET, "d")
    await buckets.put(BUCKET, "a", b"")
    await buckets.put(BUCKET, "e", b"")
    rest = await buckets.list(BUCKET, cursor=first.cursor)
    assert [info.key for info in first.objects] == ["b", "d"]
    assert [info.key for info in rest.objects] == ["e", "f", "h"]


@pytest.mark.anyio
async def test_listing_arguments_are_checked(buckets: Buckets) -> None:
    await buckets.put(BUCKET, "k", b"")
    with pytest.raises(InvalidRequest, match="cursor"):
        await buckets.list(BUCKET, cursor="not a cursor!")
    with pytest.raises(InvalidRequest, match="cursor"):
        await buckets.list(BUCKET, cursor="")
    with pytest.raises(InvalidRequest, match="below 1"):
        await buckets.list(BUCKET, limit=0)
    with pytest.raises(InvalidRequest, match="prefix"):
        await buckets.list(BUCKET, prefix="p" * 1025)
    assert len((await buckets.list(BUCKET, limit=5000)).objects) == 1


# events


@pytest.mark.anyio
async def test_events_record_each_committed_change_in_order(buckets: Buckets, clock: Clock) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await buckets.put(BUCKET, "a", b"1", traceparent=trace)
    clock.now += 1
    await buckets.put(BUCKET, "b", b"22")
    await buckets.delete_object(BUCKET, "a")
    await buckets.delete_object(BUCKET, "a")
    await buckets.put(BUCKET, "b", b"333")
    events = await all_events(buckets)
    assert [(e.sequence, e.kind, e.key, e.size) for e in events] == [
        (1, "created", "a", 1),
        (2, "created", "b", 2),
        (3, "deleted", "a", 1),
        (4, "created", "b", 3),
    ]
    assert events[0].traceparent == trace and events[1].traceparent is None
    assert events[0].etag == events[2].etag == etag(b"1")
    assert (events[0].time, events[1].time) == (clock.now - 1, clock.now)
    assert await buckets.latest_sequence(BUCKET) == 4
    assert await buckets.events(BUCKET, 2, 1) == [events[2]]
    assert await buckets.events(BUCKET, 4) == []
    with pytest.raises(InvalidRequest, match="limit 0"):
        await buckets.events(BUCKET, 0, 0)


@pytest.mark.anyio
async def test_wait_wakes_on_a_commit_and_times_out_otherwise(buckets: Buckets) -> None:
    assert await buckets.wait(BUCKET, 0, timeout=0.01) is False
    waiter = asyncio.create_task(buckets.wait(BUCKET, 0, timeout=60))
    await asyncio.sleep(0)
    assert not waiter.done()
    await buckets.put(BUCKET, "k", b"v")
    assert await waiter is True
    assert await buckets.wait(BUCKET, 0, timeout=0) is True
    assert await buckets.wait(BUCKET, 1, timeout=0.01) is False


@pytest.mark.anyio
async def test_close_ends_waits(backend: str, tmp_path: Path, clock: Clock) -> None:
    buckets = open_buckets(backend, tmp_path, clock)
    await buckets.create(BucketSpec(name=BUCKET))
    waiter = asyncio.create_task(buckets.wait(BUCKET, 0, timeout=60))
    await asyncio.sleep(0.05)  # parked on its signal
    await buckets.close()
    assert await waiter is False


@pytest.mark.anyio
async def test_trim_drops_events_older_than_a_day(buckets: Buckets, clock: Clock) -> None:
    await buckets.put(BUCKET, "old", b"")
    clock.now += 23 * 3600
    await buckets.put(BUCKET, "new", b"")
    clock.now += 2 * 3600
    await buckets.trim(clock.now)
    assert [e.key for e in await all_events(buckets)] == ["new"]
    await buckets.put(BUCKET, "newer", b"")
    assert [e.sequence for e in await all_events(buckets)] == [2, 3]


# upload sessions


@pytest.mark.anyio
async def test_an_upload_session_appends_parts(buckets: Buckets, clock: Clock) -> None:
    upload = await buckets.upload_start(BUCKET, "doc.pdf", metadata={"by": "me"})
    assert await buckets.upload_part(BUCKET, upload, b"part one, ") == 10
    assert await buckets.upload_part(BUCKET, upload, b"") == 10
    assert await buckets.upload_part(BUCKET, upload, b"part two") == 18
    with pytest.raises(NotFound):
        await buckets.head(BUCKET, "doc.pdf")
    info = await buckets.upload_complete(BUCKET, upload)
    data = b"part one, part two"
    assert info == ObjectInfo(
        key="doc.pdf",
        size=18,
        etag=etag(data),
        content_type="application/pdf",
        metadata={"by": "me"},
        last_modified=clock.now,
    )
    assert await read(buckets, "doc.pdf") == data
    with pytest.raises(NotFound, match="no upload"):
        await buckets.upload_part(BUCKET, upload, b"more")
    assert [e.kind for e in await all_events(buckets)] == ["created"]


@pytest.mark.anyio
async def test_an_empty_upload_makes_an_empty_object(buckets: Buckets) -> None:
    upload = await buckets.upload_start(BUCKET, "empty")
    assert (await buckets.upload_complete(BUCKET, upload)).size == 0
    assert await read(buckets, "empty") == b""


@pytest.mark.anyio
async def test_an_upload_over_the_limit_is_aborted(buckets: Buckets) -> None:
    await buckets.create(BucketSpec(name=BUCKET, max_object_bytes=100))
    upload = await buckets.upload_start(BUCKET, "k")
    await buckets.upload_part(BUCKET, upload, b"x" * 60)
    with pytest.raises(PayloadTooLarge, match="over the bucket's max_object_bytes of 100"):
        await buckets.upload_part(BUCKET, upload, b"x" * 60)
    with pytest.raises(NotFound, match="no upload"):
        await buckets.upload_complete(BUCKET, upload)
    await assert_unchanged(buckets, [], 0)


@pytest.mark.anyio
async def test_aborted_unknown_and_abandoned_uploads(buckets: Buckets, clock: Clock) -> None:
    await buckets.create(BucketSpec(name="other"))
    aborted = await buckets.upload_start(BUCKET, "a")
    await buckets.upload_part(BUCKET, aborted, b"data")
    await buckets.upload_abort(BUCKET, aborted)
    idle = await buckets.upload_start(BUCKET, "b")
    active = await buckets.upload_start(BUCKET, "c")
    clock.now += 3000
    await buckets.upload_part(BUCKET, active, b"still here")
    clock.now += 1000
    await buckets.trim(clock.now)
    for name, upload in ((BUCKET, aborted), (BUCKET, idle), (BUCKET, "nope"), ("other", active)):
        with pytest.raises(NotFound, match="no upload"):
            await buckets.upload_part(name, upload, b"x")
    await buckets.upload_complete(BUCKET, active)
    await assert_unchanged(buckets, ["c"], 1)


# bucket lifecycle and durability


@pytest.mark.anyio
async def test_create_is_idempotent_and_delete_removes_all_but_the_sequence(
    buckets: Buckets,
) -> None:
    await buckets.put(BUCKET, "k", b"v")
    await buckets.create(BucketSpec(name=BUCKET, max_object_bytes=LIMIT))
    assert await read(buckets, "k") == b"v"
    upload = await buckets.upload_start(BUCKET, "partial")
    await buckets.delete(BUCKET)
    await buckets.delete(BUCKET)
    with pytest.raises(NotFound, match="no bucket"):
        await buckets.head(BUCKET, "k")
    with pytest.raises(NotFound):
        await buckets.upload_part(BUCKET, upload, b"x")
    await buckets.create(BucketSpec(name=BUCKET))
    await assert_unchanged(buckets, [], 1)
    assert await all_events(buckets) == []
    await buckets.put(BUCKET, "k", b"new")
    assert [event.sequence for event in await all_events(buckets)] == [2]


@pytest.mark.anyio
async def test_everything_survives_close_and_reopen(
    backend: str, tmp_path: Path, clock: Clock
) -> None:
    first = open_buckets(backend, tmp_path, clock)
    await first.create(BucketSpec(name=BUCKET, max_object_bytes=1000))
    await first.put(BUCKET, "a", b"alpha", metadata={"k": "v"}, content_type="text/x-a")
    await first.put(BUCKET, "b", b"beta")
    await first.put(BUCKET, "b", b"beta 2")
    await first.delete_object(BUCKET, "a")
    await first.put(BUCKET, "dir/c", b"gamma")
    infos = (await first.list(BUCKET)).objects
    events = await all_events(first)
    await first.close()

    second = open_buckets(backend, tmp_path, clock)
    try:
        assert (await second.list(BUCKET)).objects == infos
        assert await read(second, "b") == b"beta 2"
        assert await all_events(second) == events
        assert await second.latest_sequence(BUCKET) == 5
        with pytest.raises(PayloadTooLarge):
            await second.put(BUCKET, "big", b"x" * 1001)
        await second.put(BUCKET, "d", b"delta")
        assert (await all_events(second, 5))[0].sequence == 6
    finally:
        await second.close()


# the embedded backend's files


def files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.anyio
async def test_embedded_files_are_named_by_id_and_replaced_files_go(tmp_path: Path) -> None:
    buckets = EmbeddedBuckets(tmp_path)
    objects = tmp_path / "bucket" / "objects"
    try:
        await buckets.create(BucketSpec(name=BUCKET))
        await buckets.put(BUCKET, "../name", b"one")
        _, body = await buckets.get(BUCKET, "../name")
        await buckets.put(BUCKET, "../name", b"two")
        assert len(files(objects)) == 1 and "name" not in files(objects)[0]
        assert [chunk async for chunk in body] == [b"one"]
        await buckets.delete_object(BUCKET, "../name")
        assert files(objects) == []
        upload = await buckets.upload_start(BUCKET, "u")
        await buckets.upload_part(BUCKET, upload, b"x" * MIB)
        assert len(files(tmp_path / "bucket" / "partial")) == 1
        await buckets.upload_abort(BUCKET, upload)
        assert files(tmp_path / "bucket" / "partial") == []
    finally:
        await buckets.close()


@pytest.mark.anyio
async def test_embedded_an_oversized_put_leaves_no_file(tmp_path: Path) -> None:
    buckets = EmbeddedBuckets(tmp_path)
    try:
        await buckets.create(BucketSpec(name=BUCKET, max_object_bytes=3 * MIB))
        with pytest.raises(PayloadTooLarge):
            await buckets.put(BUCKET, "big", two_chunks_of(2 * MIB))
        assert files(tmp_path / "bucket" / "objects") == []
        assert files(tmp_path / "bucket" / "partial") == []
    finally:
        await buckets.close()


KILLED = """
import asyncio, os, signal, sys
from pathlib import Path
from nimbus.backends.embedded.bucket import EmbeddedBuckets
from nimbus.spec.resources import BucketSpec

async def main():
    buckets = EmbeddedBuckets(Path(sys.argv[1]), fsync=True)
    await buckets.create(BucketSpec(name="files"))
    await buckets.put("files", "kept", b"acknowledged")
    await buckets.put("files", "kept", b"acknowledged twice")
    upload = await buckets.upload_start("files", "unfinished")
    await buckets.upload_part("files", upload, b"partial")
    (Path(sys.argv[1]) / "bucket" / "objects" / "stray").write_bytes(b"renamed, not committed")
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.anyio
async def test_embedded_acknowledged_puts_survive_kill_9(tmp_path: Path) -> None:
    assert run_killed(KILLED, str(tmp_path)) == ["acknowledged"]
    buckets = EmbeddedBuckets(tmp_path)
    try:
        assert await read(buckets, "kept") == b"acknowledged twice"
        assert [e.sequence for e in await all_events(buckets)] == [1, 2]
        assert len(files(tmp_path / "bucket" / "objects")) == 1
        assert files(tmp_path / "bucket" / "partial") == []
    finally:
        await buckets.close()


# the SDK handle, through a real service socket


async def serve(sock: socket.socket, service: Buckets) -> None:
    """The controller's end of an instance's service socket: decode, perform, reply."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    calls = msgspec.msgpack.Decoder(ServiceCall)
    ops: msgspec.msgpack.Decoder[BucketOp] = msgspec.msgpack.Decoder(BucketOp)
    while True:
        try:
            header = await reader.readexactly(HEADER.size)
        except asyncio.IncompleteReadError:
            break
        call = calls.decode(await reader.readexactly(HEADER.unpack(header)[0]))
        try:
            value = await perform(service, call.resource, ops.decode(call.op))
            reply = ServiceReply(call.id, value=msgspec.msgpack.encode(value))
        except Exception as error:  # a bug fails its call instead of hanging the test
            info = ErrorInfo(kind="Handler", type=type(error).__name__, message=str(error))
            reply = ServiceReply(call.id, error=info)
        writer.write(pack(reply))
        await writer.drain()
    writer.close()


@pytest.fixture
async def sdk(buckets: Buckets, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bucket]:
    """`Bucket(BUCKET)` as function code has it; call its methods in a thread."""
    worker_end, controller_end = socket.socketpair()
    monkeypatch.setattr(client._Installed, "connection", None)
    client.install(worker_end)
    server = asyncio.create_task(serve(controller_end, buckets))
    try:
        yield Bucket(BUCKET)
    finally:
        worker_end.close()
        await server


@pytest.mark.anyio
async def test_sdk_put_get_head_delete_list(sdk: Bucket, buckets: Buckets) -> None:
    def scenario() -> None:
        assert sdk.put("raw.bin", b"\x00\x01").content_type == "application/octet-stream"
        assert sdk.put("note", "héllo").content_type == "text/plain; charset=utf-8"
        assert sdk.put("table.csv", "a,b").content_type == "text/csv"
        info = sdk.put("doc", {"n": 1}, metadata={"Kind": "json"})
        assert (info.content_type, info.metadata) == ("application/json", {"kind": "json"})
        assert sdk.get("doc") == b'{"n":1}'
        assert sdk.get("note") == "héllo".encode()
        assert sdk.get("note", range=(1, 2)) == "é".encode()
        assert sdk.get("note", range=(-2, None)) == b"lo"
        assert sdk.head("doc") == info
        page = sdk.list(limit=2)
        assert [i.key for i in page.objects] == ["doc", "note"] and page.cursor is not None
        assert [i.key for i in sdk.list(cursor=page.cursor).objects] == ["raw.bin", "table.csv"]
        assert sdk.delete("doc") is True and sdk.delete("doc") is False
        with pytest.raises(NotFound, match="no object 'doc'"):
            sdk.get("doc")
        with pytest.raises(InvalidRequest, match="not satisfiable"):
            sdk.get("note", range=(100, None))

    await asyncio.to_thread(scenario)
    assert [e.kind for e in await all_events(buckets)] == ["created"] * 4 + ["deleted"]


@pytest.mark.anyio
async def test_sdk_moves_large_objects_in_chunks(
    sdk: Bucket, buckets: Buckets, tmp_path: Path
) -> None:
    data = random.Random(3).randbytes(3 * MIB + 5)
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    def scenario() -> None:
        assert sdk.put("whole", data).etag == etag(data)
        assert sdk.get("whole") == data
        assert sdk.get("whole", range=(MIB - 2, 2 * MIB + 1)) == data[MIB - 2 : 2 * MIB + 2]
        assert sdk.upload_file("by-path.bin", source).size == len(data)
        with source.open("rb") as file:
            assert sdk.upload_file("by-file", file, metadata={"a": "b"}).etag == etag(data)
        assert sdk.download_file("by-file", tmp_path / "copy.bin").metadata == {"a": "b"}
        assert sdk.head("by-path.bin").content_type == "application/octet-stream"
        sdk.put("empty", b"")
        assert sdk.get("empty") == b""
        sdk.download_file("empty", tmp_path / "empty.bin")

    await asyncio.to_thread(scenario)
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert (tmp_path / "empty.bin").read_bytes() == b""
    assert await read(buckets, "by-path.bin") == data


@pytest.mark.anyio
async def test_sdk_upload_over_the_limit_fails_and_leaves_nothing(
    sdk: Bucket, buckets: Buckets, tmp_path: Path
) -> None:
    await buckets.create(BucketSpec(name=BUCKET, max_object_bytes=2 * MIB))
    data = b"x" * (2 * MIB + 1)

    def scenario() -> None:
        with pytest.raises(PayloadTooLarge, match="max_object_bytes"):
            sdk.put("big", data)
        with pytest.raises(NotFound):
            sdk.download_file("big", tmp_path / "big.bin")

    await asyncio.to_thread(scenario)
    assert not (tmp_path / "big.bin").exists()
    await assert_unchanged(buckets, [], 0)


@pytest.mark.anyio
async def test_perform_refuses_a_get_over_what_one_call_carries(buckets: Buckets) -> None:
    await buckets.put(BUCKET, "big", b"x" * (CALL_BYTES + 1))
    with pytest.raises(PayloadTooLarge, match="get it in ranges"):
        await perform(buckets, BUCKET, GetObject(key="big"))
    result = await perform(buckets, BUCKET, GetObject(key="big", range=(-3, None)))
    assert result.data == b"xxx"


def test_the_sdk_loads_no_backend_in_function_code() -> None:
    code = "import json, sys, nimbus.sdk.bucket; print(json.dumps(sorted(sys.modules)))"
    loaded = subprocess.check_output([sys.executable, "-c", code], text=True)
    platform = ("sqlite3", "nimbus.backends", "nimbus.ops", "uvicorn", "starlette")
    assert [name for name in msgspec.json.decode(loaded) if name.startswith(platform)] == []
