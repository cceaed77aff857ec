"""What a batch handler's answer says failed, read the way its style expects."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import msgspec

from nimbus.events import aws
from nimbus.events.types import failed_items


def reported_failures(style: str, result: bytes, ids: Collection[str] | None) -> list[str]:
    """The ids of the items the handler reported as failed (see `item_failures`)."""
    return list(item_failures(style, result, ids))


def item_failures(style: str, result: bytes, ids: Collection[str] | None) -> dict[str, str | None]:
    """The items the handler reported as failed (`ids`: the batch's, when known), in order,
    each with the reason it gave (None: none; Lambda's answer has no place for one).

    An AWS-style answer is read as Lambda reads it (no `batchItemFailures`: all succeeded; a
    malformed list: all failed); a nimbus-style answer that is malformed raises
    InvalidBatchResponse.
    """
    value = msgspec.json.decode(result)
    if style != "aws":
        return failed_items(value, ids)
    if ids is not None:
        return dict.fromkeys(aws.batch_item_failures(value, ids))
    failures = value.get("batchItemFailures") if isinstance(value, Mapping) else None
    if not failures:
        return {}
    return dict.fromkeys(
        str(f.get("itemIdentifier") if isinstance(f, Mapping) else f) for f in failures
    )
