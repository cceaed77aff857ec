"""The controller <-> worker frame codec: frames survive any split of the byte stream."""

from __future__ import annotations

import socket
import threading
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from nimbus.compute.protocol import (
    ErrorInfo,
    FrameBuffer,
    FromWorker,
    HttpEvent,
    Invoke,
    Log,
    Result,
    SocketReader,
    ToWorker,
    pack,
)

texts = st.text(max_size=40)
results = st.builds(
    Result,
    id=texts,
    duration_ms=st.floats(0, 1e6),
    peak_memory_kb=st.integers(0, 1 << 30),
    value=st.binary(max_size=200),
    error=st.none()
    | st.builds(ErrorInfo, kind=st.sampled_from(["Handler", "Crash"]), type=texts, message=texts),
)
logs = st.builds(
    Log, id=texts, level=st.sampled_from(["INFO", "ERROR"]), message=texts, time=st.floats(0, 2e9)
)
worker_frames = st.lists(results | logs, max_size=20)


@given(frames=worker_frames, cuts=st.lists(st.integers(0, 5000), max_size=30))
def test_frames_survive_any_split(frames: list[Any], cuts: list[int]) -> None:
    stream = b"".join(pack(frame) for frame in frames)
    buffer = FrameBuffer(msgspec.msgpack.Decoder(FromWorker))
    decoded: list[Any] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        decoded += buffer.feed(stream[start:cut])
        start = cut
    assert decoded == frames


@given(
    body=st.binary(max_size=70_000),
    headers=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), max_size=5),
)
def test_blocking_reader_gets_what_was_packed(
    body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    frame = Invoke(
        "id", "http", 1.0, True, b"null", HttpEvent("POST", "/x", {"a": "b"}, b"q=1", headers, body)
    )
    left, right = socket.socketpair()
    with left, right:
        reader = SocketReader(right, msgspec.msgpack.Decoder(ToWorker))
        writer = threading.Thread(target=left.sendall, args=(pack(frame) * 2,))
        writer.start()
        assert reader.next() == frame
        assert reader.next() == frame
        writer.join()
        left.close()
        assert reader.next() is None
