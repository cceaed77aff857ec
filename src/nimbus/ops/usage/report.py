"""The usage report: per function and resource, what was used over a window and what it costs
under a price sheet (the usage API's answer, which the CLI and the dashboard show)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from nimbus.errors import InvalidRequest
from nimbus.ops.usage.budgets import BudgetStatus
from nimbus.ops.usage.catalog import METRICS, OPERATION_PREFIX, priced_kind
from nimbus.ops.usage.ledger import Key, Totals
from nimbus.ops.usage.prices import PriceSheet

By = Literal["all", "function", "resource"]
BY: tuple[By, ...] = ("all", "function", "resource")


class UsageRow(msgspec.Struct, kw_only=True):
    kind: str
    """`function`, or the resource's priced kind: `queue`, `fifo_queue`, `topic`, `stream`,
    `table`, `bucket`, `websocket`."""
    name: str
    usage: dict[str, float]
    """Each metric of the kind (docs/usage.md), zero when unused."""
    operations: dict[str, int]
    """Requests per operation: `{"send": 3, "receive": 2}`."""
    costs: dict[str, float]
    """The cost of each metric the sheet prices."""
    cost: float
    stored_bytes: int | None = None
    """The latest sample of what the resource stores (None for functions)."""


class UsageReport(msgspec.Struct, kw_only=True):
    since: float
    until: float
    by: By
    currency: str
    price_sheet: str
    rows: list[UsageRow]
    total: float
    budgets: list[BudgetStatus]


def usage_row(kind: str, name: str, quantities: Mapping[str, float], sheet: PriceSheet) -> UsageRow:
    priced = priced_kind(kind)
    metrics = METRICS[priced] if priced is not None else {}
    usage = {metric: quantities.get(metric, 0.0) for metric in metrics}
    operations = {
        metric.removeprefix(OPERATION_PREFIX): int(quantity)
        for metric, quantity in sorted(quantities.items())
        if metric.startswith(OPERATION_PREFIX)
    }
    costs = sheet.costs(priced, usage) if priced is not None else {}
    return UsageRow(
        kind=kind, name=name, usage=usage, operations=operations, costs=costs,
        cost=sum(costs.values()),
    )  # fmt: skip


def build_report(
    totals: Totals,
    stored: Mapping[Key, int],
    sheet: PriceSheet,
    *,
    since: float,
    until: float,
    by: By,
    budgets: list[BudgetStatus],
) -> UsageReport:
    keys = sorted(set(totals) | set(stored), key=lambda key: (key[0] != "function", key))
    if by == "function":
        keys = [key for key in keys if key[0] == "function"]
    elif by == "resource":
        keys = [key for key in keys if key[0] != "function"]
    rows = []
    for kind, name in keys:
        row = usage_row(kind, name, totals.get((kind, name), {}), sheet)
        if kind != "function":
            row.stored_bytes = stored.get((kind, name), 0)
        rows.append(row)
    return UsageReport(
        since=since, until=until, by=by, currency=sheet.currency, price_sheet=sheet.name,
        rows=rows, total=sum(row.cost for row in rows), budgets=budgets,
    )  # fmt: skip


def parse_by(text: str) -> By:
    if text not in BY:
        raise InvalidRequest(f"by must be one of {', '.join(BY)}, not {text!r}")
    return text
