"""W3C Trace Context (`traceparent`): start a trace, continue it one hop, read it safely.

Every event carries a `traceparent`; each hop (trigger -> handler -> service call) continues the
trace with a new span id. Input comes from outside (HTTP headers, published events), so nothing
here raises on a malformed value: it is ignored, and a new trace starts, as the spec asks.
"""

from __future__ import annotations

import functools
import os
import random
import re
from typing import NamedTuple

VERSION = "00"
SAMPLED = 0x01
RANDOM_TRACE_ID = 0x02
KNOWN_FLAGS = SAMPLED | RANDOM_TRACE_ID
"""The flags version 00 defines (Trace Context level 2); others are not passed on."""

_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_LENGTH = 55
_random = random.Random()  # seeded from os.urandom; ids must be unique, not secret
os.register_at_fork(after_in_child=_random.seed)  # instances are forked: each its own ids


class TraceParent(NamedTuple):
    version: str
    trace_id: str
    span_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse(traceparent: object) -> TraceParent | None:
    """The fields of a valid `traceparent`, or None when it is not one.

    Version 00 is exactly 55 characters; a later version may append `-...`, which is ignored;
    version ff, upper-case hex and all-zero ids are invalid.
    """
    if not isinstance(traceparent, str):
        return None
    return _parse(traceparent)


@functools.lru_cache(maxsize=256)
def _parse(traceparent: str) -> TraceParent | None:
    """`parse` of a string, remembered: the records of a batch, and the messages one call
    sent, mostly share one context."""
    value = traceparent.strip(" \t")
    found = _FIELDS.match(value)
    if found is None:
        return None
    version, trace_id, span_id, flags = found.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == VERSION and len(value) != _LENGTH:
        return None
    if len(value) > _LENGTH and value[_LENGTH] != "-":
        return None
    return TraceParent(version, trace_id, span_id, int(flags, 16))


def new_traceparent(sampled: bool = True) -> str:
    """A new trace with random ids (its trace id is random, so flag 02 is set too)."""
    flags = RANDOM_TRACE_ID | (SAMPLED if sampled else 0)
    return _format(new_trace_id(), flags)


def child(traceparent: str | None, *, sampled: bool = True) -> str:
    """The next hop of this trace: same trace id and flags, a new span id.

    A missing or invalid `traceparent` starts a new trace instead, `sampled` or not.
    """
    parent = parse(traceparent)
    if parent is None:
        return new_traceparent(sampled)
    return _format(parent.trace_id, parent.flags & KNOWN_FLAGS)


def random_bits(bits: int) -> int:
    """Random bits from the id generator (seeded anew in every forked child)."""
    return _random.getrandbits(bits)


def new_trace_id() -> str:
    return f"{_random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{_random.getrandbits(64) or 1:016x}"


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """The `traceparent` of span `span_id` of trace `trace_id` (ids as lower-case hex)."""
    return f"{VERSION}-{trace_id}-{span_id}-{flags:02x}"


def xray_header(traceparent: str | None) -> str | None:
    """The same trace as an AWS X-Ray header (`Root=1-…;Parent=…;Sampled=…`), for AWS-shaped
    events; None without a valid trace."""
    parent = parse(traceparent)
    if parent is None:
        return None
    root = f"1-{parent.trace_id[:8]}-{parent.trace_id[8:]}"
    return f"Root={root};Parent={parent.span_id};Sampled={int(parent.sampled)}"


def _format(trace_id: str, flags: int) -> str:
    return format_traceparent(trace_id, new_span_id(), flags)
