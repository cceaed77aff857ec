"""How the CLI shows traces: a table of recent traces, and one trace as a tree of spans with
their durations and offsets from the trace's start (as the admin API returns them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree


def trace_table(traces: Sequence[dict[str, Any]]) -> Table:
    table = Table("started", "trace id", "root", "function", "duration", "spans", "errors")
    for found in traces:
        errors = found["error_count"]
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(found["start"])),
            found["trace_id"],
            escape(found["root"]["name"]),
            escape(found["function"] or "-"),
            f"{found['duration_ms']:.2f} ms",
            str(found["span_count"]),
            f"[red]{errors}[/red]" if errors else "",
        )
    return table


def span_tree(trace_id: str, spans: Sequence[dict[str, Any]]) -> Tree:
    """The spans under their parents, each parent's children in the order they started; a span
    whose parent is not here (outside the platform, or no longer kept) is a root."""
    ids = {span["span_id"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda span: span["start"]):
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    origin = min((span["start"] for span in spans), default=0.0)
    tree = Tree(f"trace [bold]{trace_id}[/bold]", highlight=False)
    pending = [(tree, span) for span in children.get(None, [])]
    while pending:
        node, span = pending.pop(0)
        branch = node.add(_label(span, origin), highlight=False)
        pending += [(branch, child) for child in children.get(span["span_id"], [])]
    return tree


def _label(span: dict[str, Any], origin: float) -> str:
    offset = (span["start"] - origin) * 1000
    text = (
        f"[bold]{escape(span['name'])}[/bold] {span['duration_ms']:.2f} ms "
        f"[dim]+{offset:.2f} ms {span['kind']}[/dim]"
    )
    if span["function"]:
        text += f" [cyan]{escape(span['function'])}[/cyan]"
    if span["status"] == "error":
        text += f" [red]error: {escape(span['message'] or '')}[/red]"
    return text
