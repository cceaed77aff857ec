"""Contract of the stream service (Kinesis Data Streams semantics), run against every backend.

Time is an injected clock, so positions by time and retention are tested without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimbus.sdk.stream
from conftest import Clock, run_killed
from nimbus.backends.embedded.stream import EmbeddedStreams
from nimbus.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PlatformUnavailable,
)
from nimbus.sdk.stream import Stream
from nimbus.services.stream import (
    MAX_BATCH,
    Entry,
    Put,
    PutBatch,
    PutResult,
    Read,
    ReadResult,
    Record,
    StreamOp,
    Streams,
    partition_for,
    perform,
)
from nimbus.spec.resources import StreamSpec

T0 = 1_700_000_000.0
HOUR = 3600.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def open_streams(backend: str, path: Path, clock: Callable[[], float]) -> Streams:
    if backend == "embedded":
        return EmbeddedStreams(path, clock=clock)
    raise AssertionError(f"no stream backend named {backend!r}")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def make(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Callable[[], Streams]]:
    """Opens the backend on the same data dir each time (a restart); closes all at the end."""
    opened: list[Streams] = []

    def make_one() -> Streams:
        opened.append(open_streams(backend, tmp_path / "data", clock))
        return opened[-1]

    yield make_one
    for service in opened:
        await service.close()


@pytest.fixture
async def streams(make: Callable[[], Streams]) -> Streams:
    service = make()
    await service.create(StreamSpec(name="clicks", partitions=4, retention=HOUR))
    return service


def key_in(partition: int, partitions: int = 4, prefix: str = "k") -> str:
    """A partition key that hashes to `partition`."""
    return next(
        f"{prefix}{n}"
        for n in range(10000)
        if partition_for(f"{prefix}{n}", partitions) == partition
    )


async def read_all(streams: Streams, name: str, partition: int, limit: int = 100) -> list[Record]:
    """Every retained record of a partition, page by page from the oldest."""
    records: list[Record] = []
    after: int | None = None
    while True:
        page = await streams.read(name, partition, after=after, limit=limit)
        if not page.records:
            return records
        records += page.records
        after = page.after


async def read_everything(streams: Streams, name: str = "clicks") -> list[Record]:
    info = await streams.info(name)
    return [r for p in info.partitions for r in await read_all(streams, name, p.partition)]


# putting and partitioning


@pytest.mark.anyio
async def test_put_goes_to_the_partition_of_its_key_with_increasing_sequences(
    streams: Streams,
) -> None:
    results = [await streams.put("clicks", "user-1", f"{n}".encode()) for n in range(5)]
    assert {r.partition for r in results} == {partition_for("user-1", 4)}
    sequences = [r.sequence for r in results]
    assert sequences == sorted(set(sequences))
    records = await read_all(streams, "clicks", results[0].partition)
    assert [(r.key, r.data, r.sequence) for r in records] == [
        ("user-1", f"{n}".encode(), s) for n, s in enumerate(sequences)
    ]


@pytest.mark.anyio
async def test_records_carry_key_data_arrival_and_traceparent(
    streams: Streams, clock: Clock
) -> None:
    result = await streams.put("clicks", "k", b"\x00\xff", traceparent=TRACEPARENT)
    plain = await streams.put("clicks", "k", b"")
    [first, second] = (await streams.read("clicks", result.partition, after=None)).records
    assert first == Record(
        partition=result.partition,
        sequence=result.sequence,
        key="k",
        data=b"\x00\xff",
        arrival=T0,
        traceparent=TRACEPARENT,
    )
    assert (second.sequence, second.data, second.traceparent) == (plain.sequence, b"", None)


def test_partitions_are_contiguous_md5_hash_ranges() -> None:
    """Kinesis maps MD5(key) as a 128-bit integer onto equal hash ranges, one per shard: keys in
    hash order fill partition 0, then 1, and so on; with two, the top bit decides."""
    keys = [f"key-{n}" for n in range(2000)]
    hashes = {key: int.from_bytes(hashlib.md5(key.encode()).digest(), "big") for key in keys}
    for key in keys:
        assert partition_for(key, 2) == hashes[key] >> 127
        assert partition_for(key, 1) == 0
    for partitions in (3, 5, 7, 256):
        in_hash_order = [
            partition_for(key, partitions) for key in sorted(keys, key=hashes.__getitem__)
        ]
        assert in_hash_order == sorted(in_hash_order)
        assert set(in_hash_order) <= set(range(partitions))
    assert partition_for(chr(0x1F600), 2) == hashlib.md5("😀".encode()).digest()[0] >> 7


@pytest.mark.anyio
async def test_keys_spread_over_every_partition(streams: Streams) -> None:
    entries: list[Entry] = [(f"customer-{n}", b"x", None) for n in range(2000)]
    results = await streams.put_batch("clicks", entries)
    counts = [0] * 4
    for result in results:
        counts[result.partition] += 1
    assert all(300 < count < 700 for count in counts), counts
    info = await streams.info("clicks")
    assert [p.count for p in info.partitions] == counts


@pytest.mark.anyio
async def test_put_batch_numbers_every_entry_in_order(streams: Streams) -> None:
    entries: list[Entry] = [(f"k{n % 7}", f"{n}".encode(), TRACEPARENT) for n in range(50)]
    results = await streams.put_batch("clicks", entries)
    assert len(results) == 50
    assert [r.sequence for r in results] == sorted({r.sequence for r in results})
    assert [r.partition for r in results] == [partition_for(k, 4) for k, _, _ in entries]
    by_sequence = {r.sequence: r for r in await read_everything(streams)}
    for result, (key, data, _) in zip(results, entries, strict=True):
        record = by_sequence[result.sequence]
        assert (record.partition, record.key, record.data) == (result.partition, key, data)
        assert record.traceparent == TRACEPARENT
    assert await streams.put_batch("clicks", []) == []


@pytest.mark.anyio
async def test_a_full_batch_is_one_put(streams: Streams) -> None:
    entries: list[Entry] = [(f"k{n}", b"v" * 10, None) for n in range(MAX_BATCH)]
    results = await streams.put_batch("clicks", entries)
    assert len({r.sequence for r in results}) == MAX_BATCH
    assert sum(p.count for p in (await streams.info("clicks")).partitions) == MAX_BATCH


@pytest.mark.anyio
async def test_concurrent_puts_are_all_kept_in_sequence_order(streams: Streams) -> None:
    key = key_in(2)
    results = await asyncio.gather(*(streams.put("clicks", key, b"%d" % n) for n in range(200)))
    records = await read_all(streams, "clicks", 2, limit=17)
    assert [r.sequence for r in records] == sorted(r.sequence for r in results)
    assert sorted(r.data for r in records) == sorted(b"%d" % n for n in range(200))


# reading, positions and replay


@pytest.mark.anyio
async def test_read_pages_after_a_sequence_and_replays(streams: Streams) -> None:
    key = key_in(1)
    results = [await streams.put("clicks", key, b"%d" % n) for n in range(10)]
    page = await streams.read("clicks", 1, after=None, limit=4)
    assert [r.sequence for r in page.records] == [r.sequence for r in results[:4]]
    assert (page.after, page.trimmed) == (results[3].sequence, False)
    rest = await streams.read("clicks", 1, after=page.after, limit=100)
    assert [r.data for r in rest.records] == [b"%d" % n for n in range(4, 10)]
    end = await streams.read("clicks", 1, after=rest.after)
    assert (end.records, end.after, end.trimmed) == ([], rest.after, False)
    again = await streams.read("clicks", 1, after=results[5].sequence)
    assert again.records == rest.records[2:]
    assert (await streams.read("clicks", 0, after=None)).records == []


@pytest.mark.anyio
async def test_positions_latest_and_oldest(streams: Streams) -> None:
    key = key_in(3)
    before = await streams.put("clicks", key, b"before")
    latest = await streams.position("clicks", 3, "latest")
    after = await streams.put("clicks", key, b"after")
    assert [r.data for r in (await streams.read("clicks", 3, after=latest)).records] == [b"after"]
    oldest = await streams.position("clicks", 3, "oldest")
    records = (await streams.read("clicks", 3, after=oldest)).records
    assert [r.sequence for r in records] == [before.sequence, after.sequence]
    assert await streams.position("clicks", 0, "latest") == after.sequence


@pytest.mark.anyio
async def test_position_at_time(streams: Streams, clock: Clock) -> None:
    key = key_in(0)
    for name in ("a", "b", "c"):
        await streams.put("clicks", key, name.encode())
        clock.advance(10)

    async def from_time(at: float) -> list[bytes]:
        after = await streams.position("clicks", 0, "at_time", at)
        return [r.data for r in (await streams.read("clicks", 0, after=after)).records]

    assert await from_time(T0 - 100) == [b"a", b"b", b"c"]
    assert await from_time(T0 + 10) == [b"b", b"c"]
    assert await from_time(T0 + 15) == [b"c"]
    future = await streams.position("clicks", 0, "at_time", T0 + 1000)
    await streams.put("clicks", key, b"d")
    assert [r.data for r in (await streams.read("clicks", 0, after=future)).records] == [b"d"]


@pytest.mark.anyio
async def test_arrival_times_never_go_back(streams: Streams, clock: Clock) -> None:
    key = key_in(0)
    await streams.put("clicks", key, b"first")
    clock.advance(-60)
    await streams.put("clicks", key, b"second")
    arrivals = [r.arrival for r in await read_all(streams, "clicks", 0)]
    assert arrivals == [T0, T0]


# retention


@pytest.mark.anyio
async def test_trim_removes_records_older_than_retention(streams: Streams, clock: Clock) -> None:
    key = key_in(2)
    old = await streams.put("clicks", key, b"old")
    other = await streams.put("clicks", key_in(1), b"other partition, old")
    clock.advance(HOUR / 2)
    kept = await streams.put("clicks", key, b"kept")
    clock.advance(HOUR / 2)
    assert await streams.trim(clock()) == 0  # exactly the retention: not older yet
    clock.advance(1)
    assert await streams.trim(clock()) == 2
    assert [r.data for r in await read_all(streams, "clicks", 2)] == [b"kept"]
    assert await read_all(streams, "clicks", 1) == []
    assert await streams.trim(clock()) == 0

    stale = await streams.read("clicks", 2, after=old.sequence - 1)
    assert (stale.trimmed, [r.sequence for r in stale.records]) == (True, [kept.sequence])
    from_oldest = await streams.read("clicks", 2, after=None)
    assert (from_oldest.trimmed, from_oldest.records) == (False, stale.records)
    caught_up = await streams.read("clicks", 2, after=old.sequence)
    assert (caught_up.trimmed, caught_up.records) == (False, stale.records)
    emptied = await streams.read("clicks", 1, after=0)
    assert (emptied.trimmed, emptied.records, emptied.after) == (True, [], other.sequence)
    assert await streams.position("clicks", 2, "oldest") == old.sequence
    assert await streams.position("clicks", 1, "oldest") == other.sequence
    assert await streams.wait("clicks", 2, 0, timeout=60) is True  # "kept" is there
    assert await streams.wait("clicks", 1, 0, timeout=0.05) is False  # only trimmed ones


@pytest.mark.anyio
async def test_trim_follows_each_streams_retention(streams: Streams, clock: Clock) -> None:
    await streams.create(StreamSpec(name="long", partitions=1, retention=10 * HOUR))
    await streams.put("clicks", "k", b"short-lived")
    await streams.put("long", "k", b"long-lived")
    clock.advance(2 * HOUR)
    assert await streams.trim(clock()) == 1
    assert [r.data for r in await read_all(streams, "long", 0)] == [b"long-lived"]
    assert await read_everything(streams) == []


# info and iterator age


@pytest.mark.anyio
async def test_info_and_age(streams: Streams, clock: Clock) -> None:
    key = key_in(1)
    first = await streams.put("clicks", key, b"a")
    clock.advance(30)
    second = await streams.put("clicks", key, b"b")
    clock.advance(10)
    info = await streams.info("clicks")
    assert (info.name, info.retention, info.max_record_bytes) == ("clicks", HOUR, 1024 * 1024)
    assert [(p.partition, p.first, p.last, p.count) for p in info.partitions] == [
        (0, None, None, 0),
        (1, first.sequence, second.sequence, 2),
        (2, None, None, 0),
        (3, None, None, 0),
    ]
    assert await streams.age("clicks", 1, None) == 40
    assert await streams.age("clicks", 1, first.sequence) == 10
    assert await streams.age("clicks", 1, second.sequence) == 0
    assert await streams.age("clicks", 0, None) == 0


# long polling


@pytest.mark.anyio
async def test_wait_is_woken_by_a_put_to_its_partition(streams: Streams) -> None:
    after = await streams.position("clicks", 3, "latest")
    waiting = asyncio.create_task(streams.wait("clicks", 3, after, timeout=60))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    await streams.put("clicks", key_in(0), b"elsewhere")
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    put = await streams.put("clicks", key_in(3), b"here")
    assert await waiting is True
    assert await streams.wait("clicks", 3, after, timeout=60) is True  # already there
    assert await streams.wait("clicks", 3, put.sequence, timeout=0.05) is False


@pytest.mark.anyio
async def test_wait_ends_when_the_stream_is_deleted_or_the_service_closed(
    make: Callable[[], Streams],
) -> None:
    service = make()
    await service.create(StreamSpec(name="a", partitions=1))
    await service.create(StreamSpec(name="b", partitions=1))
    deleted = asyncio.create_task(service.wait("a", 0, 0, timeout=60))
    closed = asyncio.create_task(service.wait("b", 0, 0, timeout=60))
    await asyncio.sleep(0)
    await service.delete("a")
    with pytest.raises(NotFound):
        await deleted
    await service.close()
    assert await closed is False
    with pytest.raises(PlatformUnavailable):
        await service.put("b", "k", b"x")


# lifecycle and durability


@pytest.mark.anyio
async def test_create_is_idempotent_and_updates_limits_keeping_data(streams: Streams) -> None:
    result = await streams.put("clicks", "k", b"12345")
    await streams.create(StreamSpec(name="clicks", partitions=4, retention=HOUR))
    await streams.create(
        StreamSpec(name="clicks", partitions=4, retention=2 * HOUR, max_record_bytes=4)
    )
    info = await streams.info("clicks")
    assert (info.retention, info.max_record_bytes) == (2 * HOUR, 4)
    assert [r.sequence for r in await read_everything(streams)] == [result.sequence]
    with pytest.raises(PayloadTooLarge):
        await streams.put("clicks", "k", b"1234")


@pytest.mark.anyio
async def test_changing_the_partition_count_is_refused(streams: Streams) -> None:
    await streams.put("clicks", "k", b"x")
    with pytest.raises(Conflict, match="resharding"):
        await streams.create(StreamSpec(name="clicks", partitions=8, retention=2 * HOUR))
    info = await streams.info("clicks")
    assert (len(info.partitions), info.retention) == (4, HOUR)


@pytest.mark.anyio
async def test_delete_removes_the_stream_and_its_records(streams: Streams) -> None:
    first = await streams.put("clicks", "k", b"x")
    await streams.delete("clicks")
    await streams.delete("clicks")  # already gone: nothing to do
    with pytest.raises(NotFound):
        await streams.info("clicks")
    await streams.create(StreamSpec(name="clicks", partitions=2))
    assert await read_everything(streams) == []
    again = await streams.put("clicks", "k", b"y")
    assert again.sequence > first.sequence


@pytest.mark.anyio
async def test_records_and_sequences_survive_a_restart(
    make: Callable[[], Streams], clock: Clock
) -> None:
    service = make()
    await service.create(StreamSpec(name="clicks", partitions=4, retention=HOUR))
    entries: list[Entry] = [(f"k{n}", b"%d" % n, None) for n in range(20)]
    results = await service.put_batch("clicks", entries)
    before = await read_everything(service)
    await service.close()

    service = make()
    assert await read_everything(service) == before
    assert (await service.info("clicks")).retention == HOUR
    after = await service.put("clicks", "k0", b"new")
    assert after.sequence > max(r.sequence for r in results)
    assert after.partition == results[0].partition

    clock.advance(2 * HOUR)  # trim everything, then restart: numbers still not reused
    assert await service.trim(clock()) == 21
    await service.close()
    service = make()
    assert await read_everything(service) == []
    last = await service.put("clicks", "k0", b"newer")
    assert last.sequence > after.sequence
    page = await service.read("clicks", last.partition, after=0)
    assert (page.trimmed, [r.data for r in page.records]) == (True, [b"newer"])


KILLED_PRODUCER = """
import asyncio, os, signal, sys
from pathlib import Path
from nimbus.backends.embedded.stream import EmbeddedStreams
from nimbus.spec.resources import StreamSpec

async def main() -> None:
    streams = EmbeddedStreams(Path(sys.argv[1]))
    await streams.create(StreamSpec(name="clicks", partitions=3))
    for n in range(40):
        result = await streams.put("clicks", f"k{n}", b"%d" % n)
        print(result.sequence, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.anyio
async def test_acknowledged_puts_survive_kill_9(
    backend: str, tmp_path: Path, make: Callable[[], Streams]
) -> None:
    if backend != "embedded":
        pytest.skip("the killed producer runs the embedded backend in its own process")
    acknowledged = [int(line) for line in run_killed(KILLED_PRODUCER, str(tmp_path / "data"))]
    assert len(acknowledged) == 40
    service = make()
    assert sorted(r.sequence for r in await read_everything(service)) == acknowledged
    assert (await service.put("clicks", "k", b"x")).sequence > acknowledged[-1]


# bad input changes nothing


@pytest.mark.anyio
async def test_bad_puts_are_refused_and_write_nothing(streams: Streams) -> None:
    await streams.create(StreamSpec(name="small", partitions=2, max_record_bytes=10))
    await streams.put("small", "key", b"1234567")  # 3 + 7 bytes: exactly the limit
    before = await streams.info("small")
    with pytest.raises(PayloadTooLarge, match="11 bytes"):
        await streams.put("small", "key", b"12345678")
    with pytest.raises(PayloadTooLarge, match="max_record_bytes"):
        await streams.put("small", "é", b"123456789")  # the key counts in UTF-8 bytes
    with pytest.raises(InvalidRequest, match="empty"):
        await streams.put("small", "", b"x")
    with pytest.raises(InvalidRequest, match="256"):
        await streams.put("clicks", "k" * 257, b"x")
    with pytest.raises(PayloadTooLarge, match="entry 2"):
        await streams.put_batch(
            "small", [("a", b"1", None), ("b", b"2", None), ("c", b"x" * 10, None)]
        )
    with pytest.raises(InvalidRequest, match="entry 1"):
        await streams.put_batch("small", [("a", b"1", None), ("", b"2", None)])
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        await streams.put("small", "\ud800", b"x")  # a lone surrogate: no UTF-8 key
    with pytest.raises(InvalidRequest, match=r"entry 1: .*not valid Unicode"):
        await streams.put_batch("small", [("a", b"1", None), ("b\udfff", b"2", None)])
    with pytest.raises(InvalidRequest, match="10000"):
        await streams.put_batch("small", [("a", b"1", None)] * (MAX_BATCH + 1))
    with pytest.raises(NotFound, match="nope"):
        await streams.put("nope", "k", b"x")
    with pytest.raises(NotFound):
        await streams.put_batch("nope", [("k", b"x", None)])
    assert await streams.info("small") == before
    assert await read_everything(streams) == []


@pytest.mark.anyio
async def test_bad_reads_are_refused(streams: Streams) -> None:
    put = await streams.put("clicks", key_in(0), b"x")
    for call in (
        streams.read("nope", 0, after=None),
        streams.position("nope", 0, "latest"),
        streams.wait("nope", 0, 0, timeout=1),
        streams.info("nope"),
        streams.age("nope", 0, None),
    ):
        with pytest.raises(NotFound, match="nope"):
            await call
    bad: list[Coroutine[Any, Any, object]] = [
        streams.read("clicks", 4, after=None),
        streams.read("clicks", -1, after=None),
        streams.read("clicks", 0, after=-1),
        streams.read("clicks", 0, after=put.sequence + 1),
        streams.read("clicks", 0, after=None, limit=0),
        streams.read("clicks", 0, after=None, limit=10001),
        streams.position("clicks", 0, "at_time"),
        streams.position("clicks", 0, "latest", T0),
        streams.position("clicks", 9, "oldest"),
        streams.wait("clicks", 0, put.sequence + 1, timeout=1),
        streams.age("clicks", 7, None),
    ]
    for refused in bad:
        with pytest.raises(InvalidRequest):
            await refused
    assert [r.sequence for r in await read_everything(streams)] == [put.sequence]


# the operations functions call


@pytest.mark.anyio
async def test_perform_runs_every_operation(streams: Streams) -> None:
    key = key_in(1)
    put = await perform(streams, "clicks", Put(key=key, data=b"one", traceparent=TRACEPARENT))
    assert put == PutResult(partition=1, sequence=put.sequence)
    batch = await perform(streams, "clicks", PutBatch(entries=[(key, b"two"), (key, b"three")]))
    assert [r.partition for r in batch] == [1, 1]

    page = await perform(streams, "clicks", Read(partition=1, limit=2))
    assert [r.data for r in page.records] == [b"one", b"two"]
    assert page.records[0].traceparent == TRACEPARENT
    rest = await perform(streams, "clicks", Read(partition=1, after=page.after))
    assert [r.data for r in rest.records] == [b"three"]
    assert (await perform(streams, "clicks", Read(partition=1, start="latest"))).records == []
    oldest = await perform(streams, "clicks", Read(partition=1, start="oldest"))
    assert len(oldest.records) == 3
    timed = await perform(streams, "clicks", Read(partition=1, start="at_time", at=T0))
    assert timed.records == oldest.records
    with pytest.raises(InvalidRequest, match="not both"):
        await perform(streams, "clicks", Read(partition=1, after=0, start="oldest"))
    with pytest.raises(InvalidRequest, match="at_time"):
        await perform(streams, "clicks", Read(partition=1, at=T0))


def test_operations_travel_as_tagged_msgpack() -> None:
    ops: list[StreamOp] = [
        Put(key="k", data=b"x"),
        PutBatch(entries=[("k", b"x")], traceparent=TRACEPARENT),
        Read(partition=2, start="at_time", at=T0, limit=5),
    ]
    decoder = msgspec.msgpack.Decoder(StreamOp)
    assert [decoder.decode(msgspec.msgpack.encode(op)) for op in ops] == ops
    tags = {msgspec.msgpack.decode(msgspec.msgpack.encode(op))["type"] for op in ops}
    assert tags == {"stream.put", "stream.put_batch", "stream.read"}


@pytest.mark.anyio
async def test_sdk_handle_round_trips_through_the_wire_types(
    streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handle's calls go through msgpack and `perform` as the controller would run them."""
    loop = asyncio.get_running_loop()
    decoder = msgspec.msgpack.Decoder(StreamOp)

    def call(resource: str, op: msgspec.Struct, result: type[Any]) -> Any:
        decoded = decoder.decode(msgspec.msgpack.encode(op))
        running = asyncio.run_coroutine_threadsafe(perform(streams, resource, decoded), loop)
        return msgspec.msgpack.decode(msgspec.msgpack.encode(running.result()), type=result)

    monkeypatch.setattr(nimbus.sdk.stream, "call", call)
    handle = Stream("clicks")
    key = key_in(2)

    def produce() -> list[tuple[int, int]]:
        return [
            handle.put(b"raw", key=key),
            handle.put("text", key=key),
            handle.put({"n": 1}, key=key),
            *handle.put_batch([(key, [1, 2]), (key, bytearray(b"ba"))]),
        ]

    results = await asyncio.to_thread(produce)
    assert [partition for partition, _ in results] == [2] * 5
    page = await asyncio.to_thread(handle.read, 2, start="oldest", limit=10)
    assert isinstance(page, ReadResult)
    assert [r.data for r in page.records] == [b"raw", b"text", b'{"n":1}', b"[1,2]", b"ba"]
    assert [r.sequence for r in page.records] == [sequence for _, sequence in results]
    assert (await asyncio.to_thread(handle.read, 2, after=page.after)).records == []
    with pytest.raises(InvalidRequest):
        await asyncio.to_thread(handle.put, b"x", key="")


# the property: per key, reading every partition from the start gives back exactly its puts


keys = st.one_of(st.sampled_from(["a", "b", "c", "d", "e"]), st.text(min_size=1, max_size=6))
payloads = st.binary(max_size=16)
steps = st.lists(
    st.one_of(
        st.tuples(keys, payloads),
        st.lists(st.tuples(keys, payloads), min_size=1, max_size=6),
    ),
    max_size=25,
)


@given(partitions=st.integers(min_value=1, max_value=6), steps=steps)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.anyio
async def test_each_key_reads_back_exactly_its_puts_in_order(
    backend: str, partitions: int, steps: list[tuple[str, bytes] | list[tuple[str, bytes]]]
) -> None:
    expected: dict[str, list[bytes]] = {}
    with tempfile.TemporaryDirectory() as directory:
        service = open_streams(backend, Path(directory), Clock())
        await service.create(StreamSpec(name="s", partitions=partitions))
        for step in steps:
            batch = step if isinstance(step, list) else [step]
            if isinstance(step, list):
                await service.put_batch("s", [(key, data, None) for key, data in batch])
            else:
                await service.put("s", step[0], step[1])
            for key, data in batch:
                expected.setdefault(key, []).append(data)
        got: dict[str, list[bytes]] = {}
        for partition in range(partitions):
            records = await read_all(service, "s", partition, limit=4)
            assert [r.sequence for r in records] == sorted({r.sequence for r in records})
            for record in records:
                assert partition_for(record.key, partitions) == partition
                got.setdefault(record.key, []).append(record.data)
        await service.close()
    assert got == expected


MIB = 1024 * 1024


@pytest.mark.anyio
async def test_a_read_holds_at_most_read_bytes_but_always_one_record(
    backend: str, tmp_path: Path
) -> None:
    """Kinesis caps GetRecords at 10 MiB: a read of many big records returns fewer of them
    (the rest on the next read), and a record bigger than the cap still comes alone."""
    streams = open_streams(backend, tmp_path / "big", Clock(T0))
    try:
        await streams.create(StreamSpec(name="big", partitions=1, max_record_bytes=10 * MIB))
        chunk = 4 * MIB
        for n in range(4):
            await streams.put("big", "k", bytes([n]) * chunk)
        first = await streams.read("big", 0, after=None, limit=100)
        assert [r.data[0] for r in first.records] == [0, 1]  # 8 MiB; a third would pass 10
        rest = await streams.read("big", 0, after=first.after, limit=100)
        assert [r.data[0] for r in rest.records] == [2, 3]
        await streams.put("big", "k", b"x" * (10 * MIB - 1))
        alone = await streams.read("big", 0, after=rest.after, limit=100)
        assert len(alone.records) == 1 and len(alone.records[0].data) == 10 * MIB - 1
    finally:
        await streams.close()
