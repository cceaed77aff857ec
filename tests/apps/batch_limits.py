"""Batches cut by payload size, and the reasons handlers give for failed items
(tests/test_batch_limits.py); see triggers_common for how handlers report what they saw."""

from __future__ import annotations

from typing import Any

import msgspec
from triggers_common import ENV, record, run_ops

import nimbus

MIB = 1024 * 1024

app = nimbus.App("batch-limits")

big = app.stream("big", partitions=1, max_record_bytes=8 * MIB)
documents = app.table("documents", key="id", max_item_bytes=8 * MIB)
ledger = app.stream("ledger", partitions=1)
ledger_failures = app.queue("ledger_failures")
payments = app.queue("payments", max_receives=2)  # keeps its own dead letters
charges = app.queue("charges")
sloppy = app.queue("sloppy")
quoted = app.queue("quoted", max_message_bytes=MIB)


@app.on_stream(big, batch_size=100, start="oldest", environment=ENV, memory_mb=1024, timeout=60)
def on_big(batch: nimbus.StreamBatch) -> None:
    """Records each batch: its records' keys and how many bytes its event took."""
    record("on_big", keys=[r.key for r in batch], size=len(msgspec.json.encode(batch)))


@app.on_table(documents, start="oldest", environment=ENV, memory_mb=1024, timeout=60)
def on_documents(batch: nimbus.TableBatch) -> None:
    for change in batch:
        record("on_documents", kind=change.kind, id=change.key["id"], sequence=change.sequence)


@app.on_stream(
    ledger, batch_size=10, start="oldest", environment=ENV,
    failure=nimbus.FailurePolicy(retries=0, on_failure="ledger_failures"),
)  # fmt: skip
def on_ledger(batch: nimbus.StreamBatch) -> nimbus.BatchResult:
    result = nimbus.BatchResult()
    for entry in batch:
        data = entry.json()
        record("on_ledger", sequence=entry.sequence, n=data["n"])
        if data.get("unbalanced"):
            result.fail(entry.id, f"entry {data['n']} does not balance")
    return result


@app.on_queue(
    quoted, batch_size=10, batching_window=2, environment=ENV, memory_mb=1024, timeout=60
)  # fmt: skip
def on_quoted(batch: nimbus.QueueBatch) -> None:
    """Records each batch: its messages' places and how many bytes its event took."""
    places = [int(m.attributes["place"]) for m in batch]
    record("on_quoted", places=places, size=len(msgspec.json.encode(batch)))


def _send_quoted(op: dict[str, Any]) -> Any:
    """`count` messages of `size` double quotes each: each quote is two bytes in JSON."""
    body = '"' * op["size"]
    for place in range(op["count"]):
        nimbus.Queue("quoted").send(body, attributes={"place": str(place)})


@app.on_queue(payments, environment=ENV, failure=nimbus.FailurePolicy(backoff=0.05))
def on_payments(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    """The queue dead-letters what keeps failing itself (max_receives)."""
    result = nimbus.BatchResult()
    for message in batch:
        payment = message.json()
        record("on_payments", id=payment["id"], receive_count=message.receive_count)
        if payment["declined"]:
            result.fail(message.id, f"card declined for {payment['id']}")
    return result


@app.on_queue(charges, environment=ENV, failure=nimbus.FailurePolicy(retries=0))
def on_charges(batch: nimbus.QueueBatch) -> nimbus.BatchResult:
    """The trigger gives up what failed at once (no retries)."""
    failed = [m.id for m in batch if m.json()["declined"]]
    return nimbus.BatchResult(failed=failed, reasons=dict.fromkeys(failed, "insufficient funds"))


@app.on_queue(
    sloppy, batch_size=10, batching_window=1, environment=ENV,
    failure=nimbus.FailurePolicy(retries=0),
)  # fmt: skip
def on_sloppy(batch: nimbus.QueueBatch) -> dict[str, Any]:
    """Gives reasons that do not fit what it reports failed."""
    first = batch.messages[0]
    record("on_sloppy", ids=[m.json()["id"] for m in batch])
    if first.json()["mode"] == "unknown-id":
        return {"failed": [first.id], "reasons": {"no-such-message": "oops"}}
    return {"failed": [first.id], "reasons": {first.id: 42}}


def _put_sized(op: dict[str, Any]) -> Any:
    """Records of `size` bytes, made here so that the test's requests stay small."""
    entries = [(r["key"], b"x" * r["size"]) for r in op["records"]]
    return nimbus.Stream(op["stream"]).put_batch(entries)


def _document(op: dict[str, Any]) -> bool:
    """A document of `size` characters; whether it replaced one."""
    return nimbus.Table("documents").put({"id": op["id"], "text": "y" * op["size"]}) is not None


@app.function(
    uses=[big, documents, ledger, ledger_failures, payments, charges, sloppy, quoted],
    memory_mb=1024, timeout=60,
)  # fmt: skip
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    extra = {"put_sized": _put_sized, "document": _document, "send_quoted": _send_quoted}
    return run_ops(event["ops"], extra)
