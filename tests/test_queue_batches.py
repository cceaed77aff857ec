"""How the queue trigger cuts claimed messages into batches: by count and by the UTF-8 bytes
of their bodies (Lambda's 6 MB), in order, never dropping or repeating a message (the cutting
itself: tests/test_batch_limits.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nimbus.services.queue import Message
from nimbus.triggers.base import cut
from nimbus.triggers.queue import body_bytes


def message(number: int, body: str) -> Message:
    return Message(
        id=str(number), body=body, attributes={}, receipt=f"{number}:r", receive_count=1,
        sent_at=0.0, first_received_at=0.0,
    )  # fmt: skip


def size_of(batch: list[Message]) -> int:
    return sum(len(m.body.encode()) for m in batch)


@given(
    bodies=st.lists(st.text(max_size=40), max_size=60),
    size=st.integers(1, 12),
    max_bytes=st.integers(1, 120),
)
def test_batches_keep_order_and_respect_both_limits(
    bodies: list[str], size: int, max_bytes: int
) -> None:
    messages = [message(n, body) for n, body in enumerate(bodies)]
    batches = cut(messages, size, max_bytes, body_bytes)
    assert [m for batch in batches for m in batch] == messages
    for batch in batches:
        assert 1 <= len(batch) <= size
        assert len(batch) == 1 or size_of(batch) <= max_bytes


def test_a_message_bigger_than_the_limit_travels_alone() -> None:
    messages = [message(0, "a"), message(1, "é" * 10), message(2, "b")]
    batches = cut(messages, 10, 5, body_bytes)
    assert [[m.id for m in batch] for batch in batches] == [["0"], ["1"], ["2"]]
