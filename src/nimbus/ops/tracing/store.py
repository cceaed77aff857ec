"""Traces kept locally, in the data folder's own `traces.db`, for `nimbus traces` and the
dashboard: entries written in batches by the database's writer thread, bounded to the newest
`keep` entries (invocations and service calls; the oldest are dropped first), and expanded
into spans when read.

Writing is what every invocation pays for, reading is what a person asks for now and then, so
the table has no index but its insertion order: an entry costs one append, and the oldest are
dropped in chunks of half the bound (one range delete) rather than one by one. Reads look only
at the newest `keep` entries, so what was dropped and what waits to be are the same to them; a
trace is found by scanning those (tens of ms for the default bound).

A trace's entries arrive over time (a queue hop later, a retry later), so traces are not
stored as such: they are the entries that share a trace id, summed up when asked for.

A batch's invocation is in the trace of one of its records and links to the others' (see
invocations.py). Reading a trace also finds the invocations that link to it, in the same scan
(the trace id appears in their stored bytes), and shows what they did in their own trace: so
each record's trace shows the invocation that processed it, and writes stay one append.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec

from nimbus.ops.database import Database
from nimbus.ops.tracing.expand import spans_of
from nimbus.ops.tracing.spans import Entry, InvocationEntry, Span

FILE = "traces.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, trace_key INTEGER NOT NULL, trace_id TEXT NOT NULL,
    function TEXT NOT NULL, entry BLOB NOT NULL);
DROP INDEX IF EXISTS entries_by_trace;
"""
INSERT = "INSERT INTO entries (trace_key, trace_id, function, entry) VALUES"
NEWEST = "seq > (SELECT COALESCE(MAX(seq), 0) FROM entries) - ?"
"""The condition that keeps a read to the newest `keep` entries."""
PRUNE = f"DELETE FROM entries WHERE NOT ({NEWEST})"
COUNT = f"SELECT COUNT(*) FROM entries WHERE NOT ({NEWEST})"
FIND = f"SELECT trace_id, entry FROM entries WHERE (trace_key = ? OR instr(entry, ?)) AND {NEWEST}"
"""A trace's entries and those that may link to it (its id is in their bytes), in one scan."""
PAGE = 1000  # entries read at a time, newest first, to find the latest traces
MAX_SEQUENCE = 2**63 - 1  # SQLite's largest integer
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Entry] = msgspec.msgpack.Decoder(Entry)


class TraceStore:
    def __init__(self, data_dir: Path, *, keep: int, fsync: bool = False) -> None:
        self.db = Database(data_dir / FILE, SCHEMA, fsync=fsync)
        self._keep = keep
        self._over = self.db.read_now(COUNT, (keep,))[0][0]  # entries beyond the bound
        self._prune_at = max(1, keep // 2)

    def export(self, entries: Sequence[Entry]) -> None:
        rows = [(_key(e.trace_id), e.trace_id, e.function, _encoder.encode(e)) for e in entries]
        self.db.submit_rows(INSERT, rows)
        self._over += len(rows)
        if self._over >= self._prune_at:  # the oldest half-bound's worth, in one delete
            self.db.submit(PRUNE, (self._keep,))
            self._over = 0

    def close(self) -> None:
        self.db.close()

    async def recent(self, function: str | None, limit: int) -> list[dict[str, Any]]:
        """Summaries of the `limit` traces seen last (that `function` took part in), the one
        with the newest span first."""
        ids: dict[str, None] = {}  # in the order found
        before = MAX_SEQUENCE
        where = "AND function = ?" if function else ""
        while len(ids) < limit:
            page = await self.db.read(
                f"SELECT seq, trace_id FROM entries WHERE seq < ? AND {NEWEST} {where} "
                "ORDER BY seq DESC LIMIT ?",
                (before, self._keep, function, PAGE) if function else (before, self._keep, PAGE),
            )
            for row in page:
                ids.setdefault(row["trace_id"], None)
            if len(page) < PAGE:
                break
            before = page[-1]["seq"]
        found = await self._entries(list(ids)[:limit])
        return [summary(trace_id, spans_of(entries)) for trace_id, entries in found.items()]

    async def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Every span of the trace that is still kept (`spans`), and the spans of other traces
        linked to it (`linked`, see `linked_to`), each in the order they started; None when
        neither is kept."""
        rows = await self.db.read(FIND, (_key(trace_id), trace_id.encode(), self._keep))
        own: list[Entry] = []
        linking: set[str] = set()
        for row in rows:
            entry = _decoder.decode(row["entry"])
            if row["trace_id"] == trace_id:
                own.append(entry)
            elif isinstance(entry, InvocationEntry) and any(t == trace_id for t, _ in entry.links):
                linking.add(row["trace_id"])
        others = await self._entries(sorted(linking))
        linked = linked_to(trace_id, spans_of(chain.from_iterable(others.values())))
        if not own and not linked:
            return None
        return {"trace_id": trace_id, "spans": _ordered(spans_of(own)), "linked": _ordered(linked)}

    async def _entries(self, ids: list[str]) -> dict[str, list[Entry]]:
        found: dict[str, list[Entry]] = {trace_id: [] for trace_id in ids}
        if ids:
            marks = ",".join("?" * len(ids))
            rows = await self.db.read(
                f"SELECT trace_id, entry FROM entries WHERE trace_key IN ({marks}) AND {NEWEST}",
                [*(_key(trace_id) for trace_id in ids), self._keep],
            )
            for row in rows:
                if row["trace_id"] in found:
                    found[row["trace_id"]].append(_decoder.decode(row["entry"]))
        return found


def _key(trace_id: str) -> int:
    """The trace id's first 63 bits, as an integer: cheaper to compare in a scan than the text
    (a SQLite integer is signed)."""
    return int(trace_id[:16], 16) >> 1


def linked_to(trace_id: str, spans: Iterable[Span]) -> list[Span]:
    """Of `spans` (of other traces), those that link to a span of trace `trace_id` (a batch's
    delivery that processed one of its records) and everything under them in their own trace."""
    children: dict[tuple[str, str | None], list[Span]] = {}
    pending: list[Span] = []
    for span in spans:
        if span.trace_id != trace_id:
            children.setdefault((span.trace_id, span.parent_id), []).append(span)
            if any(linked == trace_id for linked, _ in span.links):
                pending.append(span)
    found: dict[tuple[str, str], Span] = {}
    while pending:
        span = pending.pop()
        key = (span.trace_id, span.span_id)
        if key not in found:
            found[key] = span
            pending += children.get(key, [])
    return list(found.values())


def summary(trace_id: str, spans: Sequence[Span]) -> dict[str, Any]:
    """One line of the trace list: its root (the first span whose parent is not kept here:
    the trace may have started outside, or its oldest spans were dropped), where it ran, how
    long it took from its first span's start to its last one's end, and its errors."""
    ids = {span.span_id for span in spans}
    ordered = sorted(spans, key=lambda span: span.start_ns)
    root = next((s for s in ordered if s.parent_id not in ids), ordered[0])
    start, end = ordered[0].start_ns, max(span.end_ns for span in spans)
    return {
        "trace_id": trace_id,
        "root": {"name": root.name, "kind": root.kind, "span_id": root.span_id},
        "function": root.function,
        "functions": sorted({span.function for span in spans if span.function}),
        "start": start / 1e9,
        "duration_ms": (end - start) / 1e6,
        "span_count": len(spans),
        "error_count": sum(1 for span in spans if span.status == "error"),
    }


def span_json(span: Span) -> dict[str, Any]:
    """A span as the admin API shows it: times in seconds since the epoch and milliseconds
    (nanosecond integers do not survive JavaScript's numbers)."""
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "kind": span.kind,
        "function": span.function,
        "start": span.start_ns / 1e9,
        "duration_ms": (span.end_ns - span.start_ns) / 1e6,
        "status": span.status,
        "message": span.message,
        "attributes": span.attributes,
        "links": [{"trace_id": trace, "span_id": linked} for trace, linked in span.links],
    }


def _ordered(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """The spans as the admin API shows them, in the order they started."""
    return [span_json(span) for span in sorted(spans, key=lambda span: span.start_ns)]
