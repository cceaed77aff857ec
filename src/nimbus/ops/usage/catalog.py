"""What is metered: the kinds of things that cost money and the metrics of each.

Kinds follow the AWS services a price sheet prices them like: a standard queue and a FIFO
queue are priced apart (as SQS prices them), every other resource kind is its own. Quantities
are kept in the units prices are quoted in, so that a cost is a quantity times a unit price.
"""

from __future__ import annotations

from typing import Literal, get_args

PricedKind = Literal[
    "function", "queue", "fifo_queue", "topic", "stream", "table", "bucket", "websocket"
]
KINDS: tuple[PricedKind, ...] = get_args(PricedKind)

DELIVERIES = "deliveries"
"""Invocations a resource triggered (a queue's batches, a topic's events...), retries included."""
GB_MONTHS = "gb_months"
"""Stored bytes over time: GiB kept for a month of 730 hours (AWS's month for storage)."""
OPERATION_PREFIX = "op:"
"""Requests per operation are kept as `op:send`, `op:receive`...: counted, never priced."""

_STORED = {DELIVERIES: "invocations it triggered", GB_MONTHS: "GiB stored for 730 hours"}
_QUEUE = {
    "requests": "API requests; each 64 KiB of a request's bodies counts as one more (as SQS)",
    "messages_sent": "messages sent",
    "messages_received": "messages handed out by receives (its triggers' included)",
    **_STORED,
}
METRICS: dict[PricedKind, dict[str, str]] = {
    "function": {
        "requests": "invocations that ran (throttled requests are not invocations)",
        "gb_seconds": "billed duration (1 ms steps) times configured memory, in GiB-seconds",
        "billed_ms": "billed duration, ms",
    },
    "queue": _QUEUE,
    "fifo_queue": _QUEUE,
    "topic": {"requests": "events published (each entry of a batch counts)", **_STORED},
    "stream": {
        "requests": "API requests",
        "records": "records put",
        "ingested_gb": "GiB put, each record rounded up to 1 KiB (as Kinesis on-demand)",
        "stream_hours": "hours the stream existed while the platform ran",
        **_STORED,
    },
    "table": {
        "requests": "API requests",
        "read_units": "items read (at least one a request)",
        "write_units": "items written or deleted",
        **_STORED,
    },
    "bucket": {
        "requests": "API requests",
        "read_requests": "GET and HEAD requests",
        "write_requests": "PUT, COPY, POST and LIST requests (as S3 prices LIST)",
        **_STORED,
    },
    "websocket": {"requests": "API requests", "messages": "messages sent to clients", **_STORED},
}


def priced_kind(kind: str) -> PricedKind | None:
    """`kind` if it is one (a ledger row's kind is text), else None."""
    return kind if kind in KINDS else None
