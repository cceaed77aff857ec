"""`nimbus usage` output: the usage report as a table, and what the same usage would cost
under another price sheet, side by side."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from nimbus.ops.usage.catalog import priced_kind
from nimbus.ops.usage.prices import PriceSheet


def reprice(report: dict[str, Any], sheet: PriceSheet) -> dict[str, Any]:
    """The report's usage priced under `sheet`: per row (kind, name) its costs, and the total."""
    rows = []
    for row in report["rows"]:
        kind = priced_kind(row["kind"])
        costs = sheet.costs(kind, row["usage"]) if kind is not None else {}
        rows.append(
            {"kind": row["kind"], "name": row["name"], "costs": costs, "cost": sum(costs.values())}
        )
    return {
        "price_sheet": sheet.name,
        "currency": sheet.currency,
        "rows": rows,
        "total": sum(row["cost"] for row in rows),
    }


def usage_table(report: dict[str, Any], compare: dict[str, Any] | None) -> Table:
    currency = report["currency"]
    table = Table("kind", "name", "usage", "stored", f"cost ({currency})")
    if compare is not None:
        table.add_column(f"{compare['price_sheet']} ({compare['currency']})")
    others = compare["rows"] if compare is not None else [None] * len(report["rows"])
    for row, other in zip(report["rows"], others, strict=True):
        stored = row["stored_bytes"]
        cells = [
            row["kind"],
            escape(row["name"]),
            escape(_summary(row["usage"])),
            "" if stored is None else _bytes(stored),
            _money(row["cost"]),
        ]
        table.add_row(*cells, *([_money(other["cost"])] if other is not None else []))
    totals = ["", "total", "", "", _money(report["total"])]
    table.add_row(*totals, *([_money(compare["total"])] if compare is not None else []))
    return table


def budget_table(budgets: list[dict[str, Any]]) -> Table:
    table = Table("budget", "period", "spent", "amount", "action", "state")
    for budget in budgets:
        state = "[red]exceeded[/red]" if budget["exceeded"] else "ok"
        if budget["exceeded"] and budget["action"] == "throttle":
            state += f", {budget['refused']} refused"
        table.add_row(
            escape(budget["target"]), budget["period"], _money(budget["spent"]),
            f"{budget['amount']:g} {budget['currency']}", budget["action"], state,
        )  # fmt: skip
    return table


def _summary(usage: dict[str, float]) -> str:
    return ", ".join(f"{metric} {_number(value)}" for metric, value in usage.items() if value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.6g}"


def _money(value: float) -> str:
    """Small amounts matter here (a request costs $0.0000002): they keep 3 significant digits."""
    if value == 0:
        return "0"
    return f"{value:.3g}" if value < 0.01 else f"{value:,.4f}"


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
