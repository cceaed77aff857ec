"""The table change feed on random histories (hypothesis): replaying it from 0 rebuilds the
table, every committed write appears in it exactly once and in per-key order, and a write whose
condition failed leaves nothing behind, whether writes run one by one or concurrently."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nimbus.backends.embedded.table import EmbeddedTables
from nimbus.errors import ConditionFailed
from nimbus.services.table import Change, Item, Tables
from nimbus.spec.resources import IndexSpec, TableSpec

BACKENDS: dict[str, Callable[..., Tables]] = {"embedded": EmbeddedTables}
SPEC = TableSpec(
    name="t", key="pk", sort_key="sk", indexes={"by_tag": IndexSpec(key="tag", sort_key="n")}
)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

Key = tuple[str, int]
Guard = tuple[Literal["none", "exists", "absent", "n_below", "version"], int]


@dataclass(frozen=True)
class Op:
    """put {key, n, tag?}; update adding n and setting tag (None: removing it); delete."""

    kind: Literal["put", "update", "delete"]
    key: Key
    n: int
    tag: str | None
    guard: Guard

    def document(self) -> dict[str, Any]:
        base = {"pk": self.key[0], "sk": self.key[1], "n": self.n}
        return base if self.tag is None else {**base, "tag": self.tag}

    def allowed(self, current: Item | None) -> bool:
        """The guard, evaluated by the model in plain Python."""
        kind, operand = self.guard
        if kind == "exists":
            return current is not None
        if kind == "absent":
            return current is None
        if kind == "n_below":
            return current is not None and current.data["n"] < operand
        if kind == "version":
            return current is not None and current.version == operand
        return True

    def effect(self, current: Item | None) -> dict[str, Any] | None:
        """The document this op leaves (None: no item)."""
        if self.kind == "delete":
            return None
        if self.kind == "put":
            return self.document()
        created: dict[str, Any] = {"pk": self.key[0], "sk": self.key[1]}
        data = dict(current.data) if current else created
        data["n"] = data.get("n", 0) + self.n
        if self.tag is None:
            data.pop("tag", None)
        else:
            data["tag"] = self.tag
        return data

    async def run(self, tables: Tables) -> Item | None:
        kind, operand = self.guard
        options: dict[str, dict[str, Any]] = {
            "none": {},
            "exists": {"condition": {"pk": {"exists": True}}},
            "absent": {"condition": {"pk": {"not_exists": True}}},
            "n_below": {"condition": {"n": {"<": operand}}},
            "version": {"if_version": operand},
        }
        conditions = options[kind]
        key = {"pk": self.key[0], "sk": self.key[1]}
        if self.kind == "put":
            return await tables.put("t", self.document(), **conditions)
        if self.kind == "delete":
            return await tables.delete_item("t", key, **conditions)
        tag = {"set": {"tag": self.tag}} if self.tag is not None else {"remove": ["tag"]}
        return await tables.update("t", key, add={"n": self.n}, **tag, **conditions)


guards = st.one_of(
    st.sampled_from([("none", 0), ("exists", 0), ("absent", 0)]),
    st.tuples(st.just("n_below"), st.integers(-1, 4)),
    st.tuples(st.just("version"), st.integers(1, 3)),
)


def ops(adds: st.SearchStrategy[int]) -> st.SearchStrategy[Op]:
    return st.builds(
        Op,
        kind=st.sampled_from(["put", "update", "delete"]),
        key=st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2)),
        n=adds,
        tag=st.sampled_from([None, "x", "y"]),
        guard=guards,
    )


def run(backend: str, scenario: Callable[[Tables], Any]) -> None:
    """Run a scenario on a fresh backend in a directory of its own."""

    async def main() -> None:
        with tempfile.TemporaryDirectory() as directory:
            tables = BACKENDS[backend](Path(directory))
            try:
                await tables.create(SPEC)
                await scenario(tables)
            finally:
                await tables.close()

    asyncio.run(main())


def key_of(change: Change) -> Key:
    return (str(change.key["pk"]), int(change.key["sk"]))


def replay(changes: list[Change]) -> dict[Key, dict[str, Any]]:
    table: dict[Key, dict[str, Any]] = {}
    for change in changes:
        if change.new is None:
            del table[key_of(change)]
        else:
            table[key_of(change)] = change.new
    return table


async def contents(tables: Tables) -> dict[Key, Item]:
    found: dict[Key, Item] = {}
    cursor: str | None = None
    while True:
        page = await tables.scan("t", limit=4, cursor=cursor)
        found.update({(item.data["pk"], item.data["sk"]): item for item in page.items})
        if page.cursor is None:
            return found
        cursor = page.cursor


async def check_feed(tables: Tables) -> tuple[list[Change], dict[Key, Item]]:
    """The checks that hold for any history: increasing sequences, each key's changes a chain
    (each old image is the previous new image), the replay equal to the table and its index."""
    changes = await tables.changes("t", after=0, limit=1000)
    sequences = [change.sequence for change in changes]
    assert sequences == sorted(set(sequences))
    latest: dict[Key, dict[str, Any] | None] = defaultdict(lambda: None)
    for change in changes:
        assert change.old == latest[key_of(change)]
        assert change.kind == (
            "INSERT" if change.old is None else "MODIFY" if change.new else "REMOVE"
        )
        latest[key_of(change)] = change.new
    table = await contents(tables)
    assert replay(changes) == {key: item.data for key, item in table.items()}
    for tag in ("x", "y"):
        page = await tables.query("t", tag, index="by_tag", limit=1000)
        indexed = sorted(
            (d["n"], d["pk"], d["sk"]) for d in replay(changes).values() if d.get("tag") == tag
        )
        assert [(i.data["n"], i.data["pk"], i.data["sk"]) for i in page.items] == indexed
    return changes, table


@PROPERTY
@given(history=st.lists(ops(st.integers(-2, 2)), max_size=40))
def test_a_sequential_history_is_exactly_its_feed(backend: str, history: list[Op]) -> None:
    async def scenario(tables: Tables) -> None:
        model: dict[Key, Item] = {}
        expected: list[tuple[str, Key, Any, Any]] = []
        for op in history:
            current = model.get(op.key)
            try:
                result = await op.run(tables)
            except ConditionFailed:
                assert not op.allowed(current)
                continue
            assert op.allowed(current)
            after = op.effect(current)
            old = None if current is None else current.data
            if after is None:
                assert result == current
                model.pop(op.key, None)
            elif old is None or after != old:
                model[op.key] = Item(
                    data=after, version=1 if current is None else current.version + 1
                )
            else:
                after = old  # nothing changed: no change expected
            if after != old:
                kind = "INSERT" if old is None else "REMOVE" if after is None else "MODIFY"
                expected.append((kind, op.key, old, after))
            if op.kind == "update":
                assert result == model[op.key]
            elif op.kind == "put":
                assert result == current
        changes, table = await check_feed(tables)
        assert [(c.kind, key_of(c), c.old, c.new) for c in changes] == expected
        assert table == model

    run(backend, scenario)


@PROPERTY
@given(batches=st.lists(st.lists(ops(st.integers(1, 3)), max_size=8), max_size=6))
def test_concurrent_writes_each_appear_once_in_per_key_order(
    backend: str, batches: list[list[Op]]
) -> None:
    """Updates always add (so they always change the item); each committed write is matched to
    its change by key, kind and version, which the chain of changes of each key determines."""

    async def scenario(tables: Tables) -> None:
        committed: Counter[tuple[Key, str, int]] = Counter()
        for batch in batches:
            results = await asyncio.gather(
                *[op.run(tables) for op in batch], return_exceptions=True
            )
            for op, result in zip(batch, results, strict=True):
                if isinstance(result, ConditionFailed):
                    continue
                assert not isinstance(result, BaseException)
                committed.update(identities(op, result))
        changes, table = await check_feed(tables)
        assert Counter(chain_identities(changes)) == committed
        written = {key: version for key, kind, version in chain_identities(changes)}
        assert {key: item.version for key, item in table.items()} == {
            key: version for key, version in written.items() if key in table
        }

    run(backend, scenario)


def identities(op: Op, result: Item | None) -> list[tuple[Key, str, int]]:
    """The change a committed op made, known from what it returned (none if it changed
    nothing: a delete of no item, a put of the same document)."""
    if op.kind == "delete":
        return [] if result is None else [(op.key, "REMOVE", result.version)]
    if op.kind == "update":
        assert result is not None
        return [(op.key, "INSERT" if result.version == 1 else "MODIFY", result.version)]
    if result is None:
        return [(op.key, "INSERT", 1)]
    if result.data == op.document():
        return []
    return [(op.key, "MODIFY", result.version + 1)]


def chain_identities(changes: list[Change]) -> list[tuple[Key, str, int]]:
    """Each change with the version it wrote (or removed), counted along its key's chain."""
    version: dict[Key, int] = defaultdict(int)
    found: list[tuple[Key, str, int]] = []
    for change in changes:
        key = key_of(change)
        if change.kind != "REMOVE":
            version[key] = 1 if change.kind == "INSERT" else version[key] + 1
        found.append((key, change.kind, version[key]))
        if change.kind == "REMOVE":
            version[key] = 0
    return found
