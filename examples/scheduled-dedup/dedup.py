"""The scheduled job: merge customers that share a normalised e-mail address.

Of each group of duplicates the oldest customer stays. It keeps its own values, gains the
fields it lacks from the others (oldest first) and lists their ids in `merged_ids`; the others
are deleted. Every write is conditional on the version read, so a customer changed while the
job ran is left for the next run, and running the job again changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from api import customers, normalise_email

import nimbus
from nimbus.services.table import Item


def merge(group: list[Item]) -> tuple[Item, dict[str, Any], list[Item]]:
    """The oldest customer, the document it becomes, and the duplicates it replaces."""
    oldest_first = sorted(group, key=lambda item: (item.data["created_at"], item.data["id"]))
    keeper, duplicates = oldest_first[0], oldest_first[1:]
    merged = dict(keeper.data)
    merged_ids = set(keeper.data.get("merged_ids", []))
    for duplicate in duplicates:
        for field, value in duplicate.data.items():
            merged.setdefault(field, value)
        merged_ids |= {duplicate.data["id"], *duplicate.data.get("merged_ids", [])}
    merged["merged_ids"] = sorted(merged_ids)
    return keeper, merged, duplicates


def merge_duplicates(event: nimbus.ScheduleTick | None, context: nimbus.Context) -> dict[str, int]:
    """Run by the schedule (a ScheduleTick), or now with `nimbus invoke merge-duplicates`."""
    groups: defaultdict[str, list[Item]] = defaultdict(list)
    for item in customers.scan_all():
        groups[normalise_email(item.data["email"])].append(item)
    merged = removed = 0
    for email, group in groups.items():
        if len(group) == 1:
            continue
        keeper, document, duplicates = merge(group)
        try:
            customers.put(document, if_version=keeper.version)
        except nimbus.ConditionFailed:
            context.logger.info("%s changed during the run; merged next time", document["id"])
            continue
        for duplicate in duplicates:
            try:
                customers.delete({"id": duplicate.data["id"]}, if_version=duplicate.version)
                removed += 1
            except nimbus.ConditionFailed:
                context.logger.info("%s changed during the run", duplicate.data["id"])
        merged += 1
        context.logger.info("%s: kept %s, merged %d", email, document["id"], len(duplicates))
    return {"merged": merged, "removed": removed}
