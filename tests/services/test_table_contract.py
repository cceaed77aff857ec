"""The table service's contract (DynamoDB table + Streams semantics), run on every backend."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from conftest import Clock, run_killed
from nimbus.backends.embedded.table import EmbeddedTables
from nimbus.errors import (
    ConditionFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from nimbus.sdk.table import Table
from nimbus.services.table import (
    Change,
    Delete,
    Get,
    Item,
    Page,
    Put,
    Query,
    Scan,
    TableOp,
    Tables,
    Update,
    perform,
)
from nimbus.spec.resources import IndexSpec, TableSpec

pytestmark = pytest.mark.anyio
T = TypeVar("T")

BACKENDS: dict[str, Callable[..., Tables]] = {"embedded": EmbeddedTables}

PEOPLE = TableSpec(name="people", key="id", ttl="expires_at")
ORDERS = TableSpec(
    name="orders",
    key="customer",
    sort_key="at",
    indexes={
        "by_status": IndexSpec(key="status", sort_key="total"),
        "by_sku": IndexSpec(key="sku"),
    },
)
T0 = 1_000_000.0
NOT_A_KEY: Any = ["open"]
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]


class Harness:
    """The backend under test, which a test may close and open again on the same files."""

    def __init__(self, backend: str, path: Path, clock: Clock) -> None:
        self.backend, self.path, self.clock = backend, path, clock
        self.tables = self.build()

    def build(self) -> Tables:
        return BACKENDS[self.backend](self.path, clock=self.clock)

    async def reopen(self) -> Tables:
        await self.tables.close()
        self.tables = self.build()
        return self.tables


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def harness(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Harness]:
    harness = Harness(backend, tmp_path / "data", clock)
    await harness.tables.create(PEOPLE)
    await harness.tables.create(ORDERS)
    yield harness
    await harness.tables.close()


@pytest.fixture
def tables(harness: Harness) -> Tables:
    return harness.tables


async def everything(tables: Tables, name: str) -> list[dict[str, Any]]:
    """Every item's document, scanned page by page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await tables.scan(name, limit=3, cursor=cursor)
        found += [item.data for item in page.items]
        if page.cursor is None:
            return found
        cursor = page.cursor


async def feed(tables: Tables, name: str) -> list[Change]:
    return await tables.changes(name, after=0, limit=1000)


def order_keys(page: Page) -> list[Any]:
    return [item.data["at"] for item in page.items]


# Put, get, delete.


async def test_put_get_and_delete_return_the_items_they_replace(tables: Tables) -> None:
    assert await tables.put("people", {"id": "ada", "name": "Ada"}) is None
    assert await tables.get("people", {"id": "ada"}) == Item(
        data={"id": "ada", "name": "Ada"}, version=1
    )
    old = await tables.put("people", {"id": "ada", "name": "Ada L."})
    assert old == Item(data={"id": "ada", "name": "Ada"}, version=1)
    assert await tables.get("people", {"id": "ada"}) == Item(
        data={"id": "ada", "name": "Ada L."}, version=2
    )
    removed = await tables.delete_item("people", {"id": "ada"})
    assert removed == Item(data={"id": "ada", "name": "Ada L."}, version=2)
    assert await tables.get("people", {"id": "ada"}) is None
    assert await tables.delete_item("people", {"id": "ada"}) is None
    assert [change.kind for change in await feed(tables, "people")] == [
        "INSERT",
        "MODIFY",
        "REMOVE",
    ]


async def test_keys_are_strings_or_numbers_and_numbers_compare_by_value(tables: Tables) -> None:
    await tables.put("people", {"id": "1", "kind": "string"})
    await tables.put("people", {"id": 1, "kind": "number"})
    assert (await tables.get("people", {"id": 1.0})) == Item(
        data={"id": 1, "kind": "number"}, version=1
    )
    found = await tables.get("people", {"id": "1"})
    assert found is not None and found.data["kind"] == "string"
    await tables.put("people", {"id": 1.0, "kind": "float"})
    assert len(await everything(tables, "people")) == 2


@pytest.mark.parametrize(
    "key",
    [
        {},
        {"id": "a", "extra": 1},
        {"name": "a"},
        {"id": ["a"]},
        {"id": True},
        {"id": None},
        {"id": ""},
        {"id": "x" * 2049},
        {"id": 2**64},
        {"id": float("inf")},
        "a",
    ],
)
async def test_a_bad_key_is_invalid(tables: Tables, key: Any) -> None:
    with pytest.raises(InvalidRequest):
        await tables.get("people", key)
    with pytest.raises(InvalidRequest):
        await tables.delete_item("people", key)
    with pytest.raises(InvalidRequest):
        await tables.update("people", key, set={"a": 1})


@pytest.mark.parametrize(
    "item",
    [
        {"name": "no key"},
        {"id": {"nested": "map"}},
        {"id": "a", "score": float("nan")},
        {"id": "a", "count": 2**64},
        {"id": "a", "blob": b"bytes"},
        {"id": "a", "when": object()},
        {"id": "a", "map": {1: "int key"}},
        {"id": "a", "deep": DEEP},
        {"id": "a", "text": "\ud800"},
        ["id", "a"],
    ],
)
async def test_a_bad_item_is_invalid_and_changes_nothing(tables: Tables, item: Any) -> None:
    with pytest.raises(InvalidRequest):
        await tables.put("people", item)
    assert await everything(tables, "people") == []
    assert await feed(tables, "people") == []


async def test_an_item_over_the_size_limit_is_refused(tables: Tables) -> None:
    await tables.create(TableSpec(name="small", key="id", max_item_bytes=64))
    with pytest.raises(PayloadTooLarge):
        await tables.put("small", {"id": "a", "text": "x" * 64})
    await tables.put("small", {"id": "a", "text": "short"})
    with pytest.raises(PayloadTooLarge):
        await tables.update("small", {"id": "a"}, set={"text": "x" * 64})
    assert await everything(tables, "small") == [{"id": "a", "text": "short"}]
    assert len(await feed(tables, "small")) == 1


async def test_a_write_of_the_same_document_changes_nothing(tables: Tables) -> None:
    await tables.put("people", {"id": "ada", "tags": ["a", 1.0], "n": 1})
    assert await tables.put("people", {"n": 1.0, "tags": ["a", 1], "id": "ada"}) is not None
    same = await tables.update("people", {"id": "ada"}, set={"n": 1})
    assert same.version == 1
    assert len(await feed(tables, "people")) == 1


async def test_true_is_not_one(tables: Tables) -> None:
    await tables.put("people", {"id": "ada", "flag": 1})
    await tables.put("people", {"id": "ada", "flag": True})
    assert len(await feed(tables, "people")) == 2


# Update.


async def test_update_creates_the_item_and_sets_removes_and_adds(tables: Tables) -> None:
    created = await tables.update("people", {"id": "ada"}, set={"name": "Ada"}, add={"visits": 1})
    assert created == Item(data={"id": "ada", "name": "Ada", "visits": 1}, version=1)
    updated = await tables.update(
        "people", {"id": "ada"}, set={"city": "London"}, remove=["name"], add={"visits": 2.5}
    )
    assert updated == Item(data={"id": "ada", "city": "London", "visits": 3.5}, version=2)
    assert await tables.get("people", {"id": "ada"}) == updated
    bare = await tables.update("people", {"id": "bob"}, remove=["nothing"])
    assert bare == Item(data={"id": "bob"}, version=1)
    changes = await feed(tables, "people")
    assert [(c.kind, c.old, c.new) for c in changes] == [
        ("INSERT", None, created.data),
        ("MODIFY", created.data, updated.data),
        ("INSERT", None, {"id": "bob"}),
    ]


@pytest.mark.parametrize(
    ("updates", "words"),
    [
        ({"set": {"id": "other"}}, "key"),
        ({"remove": ["id"]}, "key"),
        ({"add": {"id": 1}}, "key"),
        ({"set": {"a": 1}, "remove": ["a"]}, "conflicting"),
        ({"set": {"a": 1}, "add": {"a": 1}}, "conflicting"),
        ({"remove": ["a", "a"]}, "conflicting"),
        ({"add": {"a": "1"}}, "number"),
        ({"add": {"a": True}}, "number"),
        ({"add": {"name": 1}}, "string"),
        ({"set": {"a": float("nan")}}, "JSON"),
        ({"remove": "a"}, "list"),
    ],
)
async def test_a_bad_update_is_invalid_and_changes_nothing(
    tables: Tables, updates: dict[str, Any], words: str
) -> None:
    await tables.put("people", {"id": "ada", "name": "Ada"})
    with pytest.raises(InvalidRequest, match=words):
        await tables.update("people", {"id": "ada"}, **updates)
    assert await tables.get("people", {"id": "ada"}) == Item(
        data={"id": "ada", "name": "Ada"}, version=1
    )
    assert len(await feed(tables, "people")) == 1


# Conditions and versions.


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"name": "Ada"}, True),
        ({"name": "Bob"}, False),
        ({"age": 36.0}, True),
        ({"age": "36"}, False),
        ({"tags": ["x", "y"]}, True),
        ({"address": {"=": {"city": "London"}}}, True),
        ({"address": {"<>": {"city": "Paris"}}}, True),
        ({"name": {"<>": "Bob"}}, True),
        ({"missing": {"<>": "Bob"}}, True),
        ({"missing": {"=": None}}, False),
        ({"nothing": None}, True),
        ({"age": {">": 30, "<=": 36}}, True),
        ({"age": {">": 36}}, False),
        ({"age": {"<": "z"}}, False),
        ({"name": {">=": "Ada", "<": "Adb"}}, True),
        ({"missing": {"<": 5}}, False),
        ({"age": {"between": [36, 40]}}, True),
        ({"age": {"between": [37, 40]}}, False),
        ({"name": {"between": ["A", "B"]}}, True),
        ({"name": {"begins_with": "Ad"}}, True),
        ({"name": {"begins_with": "ad"}}, False),
        ({"age": {"begins_with": "3"}}, False),
        ({"name": {"exists": True}}, True),
        ({"missing": {"exists": True}}, False),
        ({"missing": {"not_exists": True}}, True),
        ({"id": {"not_exists": True}}, False),
        ({"name": "Ada", "age": {">": 40}}, False),
    ],
)
async def test_conditions_follow_dynamodb(
    tables: Tables, condition: dict[str, Any], expected: bool
) -> None:
    document = {
        "id": "ada",
        "name": "Ada",
        "age": 36,
        "tags": ["x", "y"],
        "address": {"city": "London"},
        "nothing": None,
    }
    await tables.put("people", document)
    before = await feed(tables, "people")
    if expected:
        await tables.update("people", {"id": "ada"}, add={"n": 1}, condition=condition)
        assert len(await feed(tables, "people")) == len(before) + 1
        return
    with pytest.raises(ConditionFailed):
        await tables.update("people", {"id": "ada"}, add={"n": 1}, condition=condition)
    with pytest.raises(ConditionFailed):
        await tables.put("people", {"id": "ada"}, condition=condition)
    with pytest.raises(ConditionFailed):
        await tables.delete_item("people", {"id": "ada"}, condition=condition)
    assert await tables.get("people", {"id": "ada"}) == Item(data=document, version=1)
    assert await feed(tables, "people") == before


async def test_a_condition_on_a_missing_item_sees_every_attribute_missing(tables: Tables) -> None:
    with pytest.raises(ConditionFailed):
        await tables.delete_item("people", {"id": "ghost"}, condition={"id": {"exists": True}})
    with pytest.raises(ConditionFailed):
        await tables.update("people", {"id": "ghost"}, set={"a": 1}, condition={"a": {">": 0}})
    await tables.put("people", {"id": "ada"}, condition={"id": {"not_exists": True}})
    with pytest.raises(ConditionFailed):
        await tables.put("people", {"id": "ada", "x": 1}, condition={"id": {"not_exists": True}})
    assert await everything(tables, "people") == [{"id": "ada"}]


@pytest.mark.parametrize(
    ("condition", "if_version"),
    [
        ({}, None),
        ({"a": {}}, None),
        ({"a": {"~": 1}}, None),
        ({"a": {"<": [1]}}, None),
        ({"a": {"<": True}}, None),
        ({"a": {"<": None}}, None),
        ({"a": {"begins_with": 1}}, None),
        ({"a": {"between": [1]}}, None),
        ({"a": {"between": [2, 1]}}, None),
        ({"a": {"between": [1, "z"]}}, None),
        ({"a": {"exists": False}}, None),
        ({"a": {"not_exists": 1}}, None),
        ({"a": {"not_exists": True, "=": 1}}, None),
        ({"a": {"exists": True, "not_exists": True}}, None),
        ({"a": {"=": float("nan")}}, None),
        ({"a": {"b": 1}}, None),
        ("a = 1", None),
        (None, 0),
        (None, True),
        (None, "1"),
        ({"id": {"not_exists": True}}, 1),
    ],
)
async def test_a_malformed_condition_is_invalid_and_changes_nothing(
    tables: Tables, condition: Any, if_version: Any
) -> None:
    await tables.put("people", {"id": "ada", "a": 1})
    with pytest.raises(InvalidRequest):
        await tables.put("people", {"id": "ada"}, condition=condition, if_version=if_version)
    with pytest.raises(InvalidRequest):
        await tables.delete_item(
            "people", {"id": "ada"}, condition=condition, if_version=if_version
        )
    with pytest.raises(InvalidRequest):
        await tables.update(
            "people", {"id": "ada"}, set={"b": 2}, condition=condition, if_version=if_version
        )
    assert await tables.get("people", {"id": "ada"}) == Item(data={"id": "ada", "a": 1}, version=1)
    assert len(await feed(tables, "people")) == 1


async def test_versions_make_writes_optimistic(tables: Tables) -> None:
    await tables.put("people", {"id": "ada", "n": 0})
    first = await tables.update("people", {"id": "ada"}, add={"n": 1}, if_version=1)
    assert first.version == 2
    with pytest.raises(ConditionFailed, match="version 2"):
        await tables.update("people", {"id": "ada"}, add={"n": 1}, if_version=1)
    with pytest.raises(ConditionFailed):
        await tables.put("people", {"id": "ada", "n": 9}, if_version=3)
    await tables.put("people", {"id": "ada", "n": 5}, if_version=2, condition={"n": 1})
    with pytest.raises(ConditionFailed):
        await tables.delete_item("people", {"id": "ada"}, if_version=2)
    with pytest.raises(ConditionFailed):
        await tables.put("people", {"id": "new"}, if_version=1)
    assert (await tables.delete_item("people", {"id": "ada"}, if_version=3)) == Item(
        data={"id": "ada", "n": 5}, version=3
    )
    again = await tables.update("people", {"id": "ada"}, set={"n": 0})
    assert again.version == 1


# Query and scan.


async def fill_orders(tables: Tables) -> None:
    for at in [10, 2, 1.5, "b", "a", "B", "é", "ab"]:
        await tables.put("orders", {"customer": "c1", "at": at})
    await tables.put("orders", {"customer": "c2", "at": 1})


async def test_query_orders_numbers_by_value_then_strings_by_code_point(tables: Tables) -> None:
    await fill_orders(tables)
    page = await tables.query("orders", "c1")
    assert order_keys(page) == [1.5, 2, 10, "B", "a", "ab", "b", "é"]
    assert page.cursor is None
    backwards = await tables.query("orders", "c1", forward=False)
    assert order_keys(backwards) == [*reversed(order_keys(page))]
    assert order_keys(await tables.query("orders", "c2")) == [1]
    assert (await tables.query("orders", "nobody")).items == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ({"=": 2}, [2]),
        ({"=": 2.0}, [2]),
        ({"=": "2"}, []),
        ({"<": 10}, [1.5, 2]),
        ({"<=": 10}, [1.5, 2, 10]),
        ({">": 2}, [10]),
        ({">=": "a"}, ["a", "ab", "b", "é"]),
        ({"<": "a"}, ["B"]),
        ({"between": [2, 10]}, [2, 10]),
        ({"between": ["a", "b"]}, ["a", "ab", "b"]),
        ({"begins_with": "a"}, ["a", "ab"]),
        ({"begins_with": ""}, ["B", "a", "ab", "b", "é"]),
        ({"begins_with": "\U0010ffff"}, []),
    ],
)
async def test_query_sort_conditions_compare_within_a_type(
    tables: Tables, sort: dict[str, Any], expected: list[Any]
) -> None:
    await fill_orders(tables)
    assert order_keys(await tables.query("orders", "c1", sort=sort)) == expected
    reverse = await tables.query("orders", "c1", sort=sort, forward=False)
    assert order_keys(reverse) == [*reversed(expected)]


@pytest.mark.parametrize(
    "sort",
    [
        *({}, {"<": 1, ">": 0}, {"~": 1}, {"<": [1]}, {"begins_with": 1}, {"between": [3, 1]}),
        *({"<": "\ud800"}, {"begins_with": "a\udfff"}, {"between": ["\ud800", "\udfff"]}),
        "x",
    ],
)
async def test_a_bad_sort_condition_is_invalid(tables: Tables, sort: Any) -> None:
    with pytest.raises(InvalidRequest):
        await tables.query("orders", "c1", sort=sort)


async def test_a_sort_condition_needs_a_sort_key(tables: Tables) -> None:
    with pytest.raises(InvalidRequest, match="sort key"):
        await tables.query("people", "ada", sort={"=": 1})
    with pytest.raises(InvalidRequest, match="sort key"):
        await tables.query("orders", "sku-1", index="by_sku", sort={"=": 1})


async def test_query_and_scan_pages_have_no_gaps_and_no_duplicates(tables: Tables) -> None:
    for at in range(23):
        await tables.put("orders", {"customer": "c1", "at": at})
    for forward in (True, False):
        seen: list[Any] = []
        cursor: str | None = None
        while True:
            page = await tables.query("orders", "c1", limit=5, forward=forward, cursor=cursor)
            assert len(page.items) <= 5
            seen += order_keys(page)
            if page.cursor is None:
                break
            cursor = page.cursor
        assert seen == sorted(range(23), reverse=not forward)
    exact = await tables.query("orders", "c1", limit=23)
    assert len(exact.items) == 23 and exact.cursor is None
    assert sorted(d["at"] for d in await everything(tables, "orders")) == list(range(23))


async def test_a_cursor_survives_writes_between_pages(tables: Tables) -> None:
    for at in range(10):
        await tables.put("orders", {"customer": "c1", "at": at * 10})
    first = await tables.query("orders", "c1", limit=4)
    assert first.cursor is not None
    await tables.put("orders", {"customer": "c1", "at": 5})  # before the cursor: not seen
    await tables.put("orders", {"customer": "c1", "at": 55})  # after it: seen once
    await tables.delete_item("orders", {"customer": "c1", "at": 30})  # the last item read
    rest = await tables.query("orders", "c1", cursor=first.cursor)
    assert order_keys(rest) == [40, 50, 55, 60, 70, 80, 90]


@pytest.mark.parametrize("cursor", ["garbage!", "", "AAAA", 7])
async def test_a_malformed_cursor_is_invalid(tables: Tables, cursor: Any) -> None:
    with pytest.raises(InvalidRequest):
        await tables.query("orders", "c1", cursor=cursor)
    with pytest.raises(InvalidRequest):
        await tables.scan("orders", cursor=cursor)


@pytest.mark.parametrize("position", [2**64 - 1, float("nan"), float("inf")])
async def test_a_forged_cursor_is_invalid(harness: Harness, position: Any) -> None:
    """A cursor whose position the backend cannot have written (a number SQLite cannot hold)
    is refused as malformed, not failed on in the database."""
    if harness.backend != "embedded":
        pytest.skip("the cursor's encoding is the embedded backend's")
    from nimbus.backends.embedded.table import _Cursor

    query = _Cursor("orders", None, "c1").encode((position,))
    scan = _Cursor("orders", None, None).encode(("c1", position))
    with pytest.raises(InvalidRequest, match="malformed"):
        await harness.tables.query("orders", "c1", cursor=query)
    with pytest.raises(InvalidRequest, match="malformed"):
        await harness.tables.scan("orders", cursor=scan)


async def test_a_cursor_fits_only_its_own_listing(tables: Tables) -> None:
    await fill_orders(tables)
    cursor = (await tables.query("orders", "c1", limit=2)).cursor
    assert cursor is not None
    with pytest.raises(InvalidRequest, match="another"):
        await tables.query("orders", "c2", cursor=cursor)
    with pytest.raises(InvalidRequest, match="another"):
        await tables.scan("orders", cursor=cursor)
    with pytest.raises(InvalidRequest, match="another"):
        await tables.query("orders", "c1", index="by_sku", cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5])
async def test_limits_are_checked(tables: Tables, limit: Any) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        await tables.query("orders", "c1", limit=limit)
    with pytest.raises(InvalidRequest, match="limit"):
        await tables.scan("orders", limit=limit)
    with pytest.raises(InvalidRequest, match="limit"):
        await tables.changes("orders", limit=limit)


async def test_filters_drop_items_after_the_limit_is_counted(tables: Tables) -> None:
    for at in range(10):
        await tables.put("orders", {"customer": "c1", "at": at, "even": at % 2 == 0})
    page = await tables.query("orders", "c1", filter={"even": True}, limit=4)
    assert order_keys(page) == [0, 2]
    assert page.cursor is not None
    found: list[Any] = []
    cursor: str | None = None
    while True:
        page = await tables.scan("orders", filter={"at": {">=": 5}}, limit=3, cursor=cursor)
        found += [item.data["at"] for item in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert found == [5, 6, 7, 8, 9]
    with pytest.raises(InvalidRequest):
        await tables.scan("orders", filter={"at": {"~": 1}})


# Secondary indexes.


async def test_a_global_index_has_its_own_key_and_holds_only_items_with_it(
    tables: Tables,
) -> None:
    await tables.put("orders", {"customer": "c1", "at": 1, "status": "open", "total": 30})
    await tables.put("orders", {"customer": "c2", "at": 1, "status": "open", "total": 10})
    await tables.put("orders", {"customer": "c2", "at": 2, "status": "open", "total": 20})
    await tables.put("orders", {"customer": "c3", "at": 1, "status": "open"})  # no sort key
    await tables.put("orders", {"customer": "c3", "at": 2, "total": 5})  # no key
    await tables.put("orders", {"customer": "c3", "at": 3, "status": "done", "total": 1})

    def totals(page: Page) -> list[Any]:
        return [item.data["total"] for item in page.items]

    assert totals(await tables.query("orders", "open", index="by_status")) == [10, 20, 30]
    ranged = await tables.query("orders", "open", index="by_status", sort={">=": 20})
    assert totals(ranged) == [20, 30]
    await tables.update("orders", {"customer": "c2", "at": 2}, set={"status": "done"})
    assert totals(await tables.query("orders", "open", index="by_status")) == [10, 30]
    assert totals(await tables.query("orders", "done", index="by_status")) == [1, 20]
    await tables.update("orders", {"customer": "c1", "at": 1}, remove=["status"])
    await tables.delete_item("orders", {"customer": "c2", "at": 1})
    assert (await tables.query("orders", "open", index="by_status")).items == []
    assert (await tables.query("orders", "done", index="by_status", forward=False)).items[
        0
    ].version == 2


async def test_index_pages_break_ties_by_the_item_key(tables: Tables) -> None:
    for at in range(7):
        await tables.put("orders", {"customer": "c1", "at": at, "sku": "s"})
        await tables.put("orders", {"customer": "c0", "at": at, "sku": "s"})
    seen: list[tuple[str, int]] = []
    cursor: str | None = None
    while True:
        page = await tables.query("orders", "s", index="by_sku", limit=4, cursor=cursor)
        seen += [(item.data["customer"], item.data["at"]) for item in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == sorted((c, at) for c in ("c0", "c1") for at in range(7))


async def test_index_keys_must_be_keys_and_unknown_indexes_are_invalid(tables: Tables) -> None:
    with pytest.raises(InvalidRequest, match="by_status"):
        await tables.put("orders", {"customer": "c1", "at": 1, "status": ["open"], "total": 1})
    with pytest.raises(InvalidRequest, match="by_sku"):
        await tables.put("orders", {"customer": "c1", "at": 1, "sku": ""})
    assert await everything(tables, "orders") == []
    with pytest.raises(InvalidRequest, match="no index"):
        await tables.query("orders", "open", index="nope")
    with pytest.raises(InvalidRequest):
        await tables.query("orders", NOT_A_KEY, index="by_status")


# TTL.


async def test_expired_items_are_invisible_then_swept_with_marked_changes(
    tables: Tables, clock: Clock
) -> None:
    await tables.put("people", {"id": "old", "expires_at": T0 + 10})
    await tables.put("people", {"id": "kept", "expires_at": "never"})
    await tables.put("people", {"id": "plain"})
    clock.now = T0 + 10
    assert await tables.get("people", {"id": "old"}) is not None
    clock.now = T0 + 11
    assert await tables.get("people", {"id": "old"}) is None
    assert sorted(d["id"] for d in await everything(tables, "people")) == ["kept", "plain"]
    assert [i.data["id"] for i in (await tables.query("people", "old")).items] == []
    assert await tables.sweep(T0 + 5) == 0
    assert await tables.sweep() == 1
    last = (await feed(tables, "people"))[-1]
    assert (last.kind, last.key, last.old, last.new, last.expired) == (
        "REMOVE",
        {"id": "old"},
        {"id": "old", "expires_at": T0 + 10},
        None,
        True,
    )
    assert await tables.sweep() == 0


async def test_a_write_over_an_expired_item_records_its_expiry_first(
    tables: Tables, clock: Clock
) -> None:
    await tables.put("people", {"id": "ada", "expires_at": T0 + 1, "n": 1})
    clock.now = T0 + 2
    with pytest.raises(ConditionFailed):
        await tables.update("people", {"id": "ada"}, add={"n": 1}, condition={"n": 1})
    assert await tables.delete_item("people", {"id": "ada"}) is None
    fresh = await tables.update("people", {"id": "ada"}, add={"n": 1})
    assert fresh == Item(data={"id": "ada", "n": 1}, version=1)
    changes = await feed(tables, "people")
    assert [(c.kind, c.expired) for c in changes] == [
        ("INSERT", False),
        ("REMOVE", True),
        ("INSERT", False),
    ]
    assert await tables.sweep() == 0


async def test_many_expired_items_are_swept_in_batches(tables: Tables, clock: Clock) -> None:
    for n in range(620):
        await tables.put("people", {"id": n, "expires_at": T0})
    clock.now = T0 + 1
    assert await tables.sweep() == 620
    assert await everything(tables, "people") == []


# The change feed.


async def test_changes_carry_images_keys_time_and_trace(tables: Tables, clock: Clock) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await tables.put("orders", {"customer": "c1", "at": 1, "n": 1}, traceparent=trace)
    clock.now = T0 + 1
    await tables.update("orders", {"customer": "c1", "at": 1}, add={"n": 1})
    await tables.delete_item("orders", {"customer": "c1", "at": 1}, traceparent=trace)
    changes = await feed(tables, "orders")
    key = {"customer": "c1", "at": 1}
    assert [(c.kind, c.key, c.old, c.new, c.traceparent, c.time) for c in changes] == [
        ("INSERT", key, None, {**key, "n": 1}, trace, T0),
        ("MODIFY", key, {**key, "n": 1}, {**key, "n": 2}, None, T0 + 1),
        ("REMOVE", key, {**key, "n": 2}, None, trace, T0 + 1),
    ]
    sequences = [c.sequence for c in changes]
    assert sequences == sorted(set(sequences)) and {c.table for c in changes} == {"orders"}
    assert await tables.latest_sequence("orders") == sequences[-1]
    assert await tables.changes("orders", after=sequences[0], limit=1) == changes[1:2]
    with pytest.raises(InvalidRequest):
        await tables.changes("orders", after=-1)


async def test_sequences_increase_across_tables(tables: Tables) -> None:
    await tables.put("people", {"id": "a"})
    await tables.put("orders", {"customer": "c", "at": 1})
    await tables.put("people", {"id": "b"})
    people = [c.sequence for c in await feed(tables, "people")]
    orders = [c.sequence for c in await feed(tables, "orders")]
    assert people[0] < orders[0] < people[1]
    assert await tables.latest_sequence("people") == people[1]


async def test_wait_returns_when_a_change_commits(tables: Tables) -> None:
    latest = await tables.latest_sequence("people")
    assert await tables.wait("people", latest, timeout=0) is False
    waiter = asyncio.create_task(tables.wait("people", latest, timeout=60))
    await asyncio.sleep(0)
    assert not waiter.done()
    await tables.put("orders", {"customer": "c", "at": 1})  # another table: still waiting
    await asyncio.sleep(0)
    assert not waiter.done()
    await tables.put("people", {"id": "ada"})
    assert await waiter is True
    assert await tables.wait("people", latest, timeout=60) is True
    with pytest.raises(InvalidRequest):
        await tables.wait("people", latest, timeout=-1)


async def test_old_changes_are_trimmed_but_sequences_go_on(harness: Harness, clock: Clock) -> None:
    tables = harness.tables
    await tables.create(TableSpec(name="brief", key="id", change_retention=60))
    await tables.put("brief", {"id": "a"})
    clock.now = T0 + 30
    await tables.put("brief", {"id": "b"})
    clock.now = T0 + 61
    await tables.sweep()
    [kept] = await feed(tables, "brief")
    assert kept.new == {"id": "b"}
    clock.now = T0 + 200
    await tables.sweep()
    assert await feed(tables, "brief") == []
    latest = await tables.latest_sequence("brief")
    assert latest == kept.sequence
    tables = await harness.reopen()
    await tables.put("brief", {"id": "c"})
    [after] = await feed(tables, "brief")
    assert after.sequence > latest


async def test_concurrent_writes_to_one_item_are_serialised(tables: Tables) -> None:
    await asyncio.gather(
        *[tables.update("people", {"id": "ada"}, add={"n": 1}) for _ in range(40)],
        *[tables.put("people", {"id": f"p{n}"}) for n in range(40)],
    )
    item = await tables.get("people", {"id": "ada"})
    assert item == Item(data={"id": "ada", "n": 40}, version=40)
    chain = [c for c in await feed(tables, "people") if c.key == {"id": "ada"}]
    assert [(c.old or {}).get("n") for c in chain] == [None, *range(1, 40)]
    assert [c.new["n"] for c in chain if c.new] == list(range(1, 41))


async def test_a_cancelled_write_still_finishes(tables: Tables) -> None:
    writes = [asyncio.create_task(tables.update("people", {"id": "a"}, add={"n": 1}))]
    writes += [asyncio.create_task(tables.update("people", {"id": "a"}, add={"n": 1}))]
    await asyncio.sleep(0)
    writes[0].cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    assert (await tables.update("people", {"id": "a"}, add={"n": 1})).data["n"] == 3
    chain = await feed(tables, "people")
    assert all(a.new == b.old for a, b in itertools.pairwise(chain))
    assert await tables.latest_sequence("people") == chain[-1].sequence


# Lifecycle and durability.


async def test_create_is_idempotent_and_a_new_spec_keeps_the_items(
    tables: Tables, clock: Clock
) -> None:
    await tables.create(PEOPLE)
    await tables.put("people", {"id": "ada", "team": "x", "until": T0 + 1})
    await tables.put("people", {"id": "bob", "team": ["bad"]})
    indexed = PEOPLE.model_copy(
        update={"indexes": {"by_team": IndexSpec(key="team")}, "ttl": "until"}
    )
    await tables.create(indexed)
    page = await tables.query("people", "x", index="by_team")
    assert [item.data["id"] for item in page.items] == ["ada"]
    clock.now = T0 + 2
    assert await tables.get("people", {"id": "ada"}) is None
    await tables.create(PEOPLE)
    assert await tables.get("people", {"id": "ada"}) is not None
    with pytest.raises(InvalidRequest, match="no index"):
        await tables.query("people", "x", index="by_team")
    with pytest.raises(Conflict, match="key"):
        await tables.create(TableSpec(name="people", key="name"))
    await tables.create(TableSpec(name="empty", key="a"))
    await tables.create(TableSpec(name="empty", key="b", sort_key="c"))
    await tables.put("empty", {"b": 1, "c": 2})
    assert len(await everything(tables, "people")) == 2


async def test_a_deleted_table_is_gone_and_its_name_can_be_reused(tables: Tables) -> None:
    await tables.put("people", {"id": "ada"})
    await tables.delete("people")
    await tables.delete("people")
    with pytest.raises(NotFound):
        await tables.get("people", {"id": "ada"})
    await tables.create(PEOPLE)
    assert await everything(tables, "people") == []
    assert await feed(tables, "people") == []
    assert await tables.latest_sequence("people") == 0


async def test_unknown_tables_are_not_found(tables: Tables) -> None:
    calls = [
        tables.put("nope", {"id": 1}),
        tables.get("nope", {"id": 1}),
        tables.delete_item("nope", {"id": 1}),
        tables.update("nope", {"id": 1}),
        tables.query("nope", 1),
        tables.scan("nope"),
        tables.changes("nope"),
        tables.latest_sequence("nope"),
        tables.wait("nope", 0, 0),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="nope"):
            await call


async def test_everything_survives_a_close_and_reopen(harness: Harness, clock: Clock) -> None:
    tables = harness.tables
    await tables.create(PEOPLE.model_copy(update={"indexes": {"by_team": IndexSpec(key="team")}}))
    await tables.put("people", {"id": "ada", "team": "x"})
    await tables.update("people", {"id": "ada"}, add={"n": 2})
    await tables.put("orders", {"customer": "c1", "at": 1})
    before = await feed(tables, "people")
    tables = await harness.reopen()
    assert await tables.get("people", {"id": "ada"}) == Item(
        data={"id": "ada", "team": "x", "n": 2}, version=2
    )
    assert [i.data["id"] for i in (await tables.query("people", "x", index="by_team")).items] == [
        "ada"
    ]
    assert await feed(tables, "people") == before
    assert await tables.latest_sequence("people") == before[-1].sequence
    await tables.put("people", {"id": "bob"})
    assert (await feed(tables, "people"))[-1].sequence > before[-1].sequence


WRITER = """
import asyncio, sys
from pathlib import Path
from nimbus.backends.embedded.table import EmbeddedTables
from nimbus.spec.resources import TableSpec

async def main() -> None:
    tables = EmbeddedTables(Path(sys.argv[1]))
    await tables.create(TableSpec(name="log", key="n"))
    n = 0
    while True:
        await tables.put("log", {"n": n})
        print(n, flush=True)
        n += 1

asyncio.run(main())
"""


async def test_an_acknowledged_write_survives_kill_9(backend: str, tmp_path: Path) -> None:
    if backend != "embedded":
        pytest.skip("the writer process builds the embedded backend")
    data = tmp_path / "killed"
    acknowledged = [int(line) for line in run_killed(WRITER, str(data), after=200)]
    tables = BACKENDS[backend](data)
    try:
        for n in acknowledged:
            assert await tables.get("log", {"n": n}) is not None
        inserted = {c.key["n"] for c in await tables.changes("log", limit=1000)}
        assert set(acknowledged) <= inserted
    finally:
        await tables.close()


# Through perform and the SDK, as a function calls the table.


async def test_perform_runs_every_operation(tables: Tables) -> None:
    ops: list[TableOp] = [
        Put(item={"customer": "c1", "at": 1, "n": 1}),
        Update(key={"customer": "c1", "at": 1}, add={"n": 1}, if_version=1),
        Get(key={"customer": "c1", "at": 1}),
        Query(key_value="c1", sort={">": 0}),
        Scan(filter={"n": 2}),
        Delete(key={"customer": "c1", "at": 1}, condition={"n": 2}),
    ]
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    results = [await perform(tables, "orders", op, traceparent=trace) for op in ops]
    after = Item(data={"customer": "c1", "at": 1, "n": 2}, version=2)
    assert results == [None, after, after, Page(items=[after]), Page(items=[after]), after]
    assert {c.traceparent for c in await feed(tables, "orders")} == {trace}
    with pytest.raises(ConditionFailed):
        await perform(tables, "orders", Put(item={"customer": "c1", "at": 1}, if_version=9))


async def test_the_sdk_handle_calls_each_operation(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handle's ops and answers cross msgpack as they do between worker and controller;
    the call runs on the backend in the test's loop, as the controller would run it."""
    loop = asyncio.get_running_loop()

    def call(resource: str, op: msgspec.Struct, result: type[T]) -> T:
        sent = msgspec.msgpack.decode(msgspec.msgpack.encode(op), type=TableOp)
        running = asyncio.run_coroutine_threadsafe(perform(tables, resource, sent), loop)
        return msgspec.msgpack.decode(msgspec.msgpack.encode(running.result()), type=result)

    monkeypatch.setattr("nimbus.sdk.table.call", call)

    def function() -> list[Any]:
        orders = Table("orders")
        results: list[Any] = [orders.put({"customer": "c1", "at": 1, "tags": ["a"]})]
        results.append(orders.update({"customer": "c1", "at": 1}, set={"n": 1}, remove=["tags"]))
        results.append(orders.get(customer="c1", at=1))
        results.append(orders.get({"customer": "c1"}, at=1))
        results.append(orders.query("c1", sort={"between": [0, 5]}, limit=1))
        results.append(list(orders.query_all("c1", filter={"n": 1})))
        results.append(list(orders.scan_all()))
        results.append(orders.scan(limit=5))
        try:
            orders.delete({"customer": "c1", "at": 1}, if_version=7)
        except ConditionFailed as error:
            results.append(type(error))
        results.append(orders.delete({"customer": "c1", "at": 1}, condition={"n": 1}))
        results.append(orders.get(customer="c1", at=1))
        return results

    results = await asyncio.to_thread(function)
    item = Item(data={"customer": "c1", "at": 1, "n": 1}, version=2)
    assert results == [
        None,
        item,
        item,
        item,
        Page(items=[item]),
        [item],
        [item],
        Page(items=[item]),
        ConditionFailed,
        item,
        None,
    ]
