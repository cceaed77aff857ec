"""Request and job ids are UUIDv7: time-ordered, with a random tail people can tell apart."""

from __future__ import annotations

import time
import uuid

from nimbus.ids import new_id, short_id


def test_ids_are_uuid7_and_sort_by_time() -> None:
    first = new_id()
    time.sleep(0.002)  # a later millisecond: a distinct clock value, not a timing assertion
    second = new_id()
    assert uuid.UUID(first).version == 7
    assert first < second
    assert short_id(first) != short_id(new_id())
