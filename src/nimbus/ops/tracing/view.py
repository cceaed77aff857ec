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


def span_tree(
    trace_id: str, spans: Sequence[dict[str, Any]], linked: Sequence[dict[str, Any]] = ()
) -> Tree:
    """The spans under their parents, each parent's children in the order they started; a span
    whose parent is not here (outside the platform, or no longer kept) is a root. `linked`:
    spans of other traces (a batch that processed one of this trace's messages, and what it
    did); each of their roots hangs under the span of this trace it links to, marked."""
    everything = sorted([*spans, *linked], key=lambda span: span["start"])
    kept = {_key(span) for span in everything}
    children: dict[Key | None, list[dict[str, Any]]] = {}
    for span in everything:
        children.setdefault(_parent(span, trace_id, kept), []).append(span)
    origin = min((span["start"] for span in spans or linked), default=0.0)
    tree = Tree(f"trace [bold]{trace_id}[/bold]", highlight=False)
    pending = [(tree, span) for span in children.get(None, [])]
    while pending:
        node, span = pending.pop(0)
        label = _label(span, origin)
        if span["trace_id"] != trace_id and (span["trace_id"], span["parent_id"]) not in kept:
            label += f" [magenta](linked, in trace {span['trace_id']})[/magenta]"
        branch = node.add(label, highlight=False)
        pending += [(branch, child) for child in children.get(_key(span), [])]
    return tree


Key = tuple[str, str]
"""A span's trace and span ids."""


def _key(span: dict[str, Any]) -> Key:
    return span["trace_id"], span["span_id"]


def _parent(span: dict[str, Any], trace_id: str, kept: set[Key]) -> Key | None:
    """The span it hangs under: its parent when that is kept; for a span of another trace, else
    the span of trace `trace_id` it links to; None (a root) when neither is kept."""
    candidates = [(span["trace_id"], span["parent_id"])]
    if span["trace_id"] != trace_id:
        links = [link for link in span.get("links", ()) if link["trace_id"] == trace_id]
        candidates += [(trace_id, link["span_id"]) for link in links]
    return next((key for key in candidates if key in kept), None)


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
