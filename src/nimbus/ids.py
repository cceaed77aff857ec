"""Request and job ids: UUIDv7 (RFC 9562), time-ordered so they sort by time and index cheaply."""

from __future__ import annotations

import os
import random
import time

SHORT = 12
_random = random.Random()  # seeded from os.urandom; ids need to be unique, not secret
os.register_at_fork(after_in_child=_random.seed)  # forked instances must not repeat each other


def new_id() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | _random.getrandbits(80)
    value = value & ~(0xF << 76 | 0x3 << 62) | 0x7 << 76 | 0x2 << 62
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def short_id(full: str) -> str:
    """The random tail, for people: the head of a UUIDv7 is the same for ids of one moment."""
    return full[-SHORT:]
