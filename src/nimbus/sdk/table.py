"""`Table("customers")`: a function's handle on a table it declared in `uses`.

    customers = Table("customers")
    customers.put({"id": "c1", "name": "Ada"}, condition={"id": {"not_exists": True}})
    found = customers.get(id="c1")            # Item(data={...}, version=1) or None
    customers.update({"id": "c1"}, set={"name": "Ada L."}, if_version=found.version)
    for item in customers.query_all("c1"): ...

Conditions and filters are dicts of attribute: value or attribute: {test: operand}; see
`nimbus.services.table` for the tests and the semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from nimbus.sdk.client import call
from nimbus.services.table import (
    Delete,
    Get,
    Item,
    KeyValue,
    Number,
    Page,
    Put,
    Query,
    Scan,
    Update,
)

_ITEM_OR_NONE: Any = Item | None  # `call` decodes to this union


class Table:
    def __init__(self, name: str) -> None:
        self.name = name

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
    ) -> Item | None:
        """Store the item (replacing the one with its key); returns the replaced item."""
        op = Put(item=dict(item), condition=_dict(condition), if_version=if_version)
        return self._item_or_none(op)

    def get(
        self, key: Mapping[str, KeyValue] | None = None, /, **attributes: KeyValue
    ) -> Item | None:
        """The item with this key, given as a dict or as keyword arguments; None if absent."""
        return self._item_or_none(Get(key={**(key or {}), **attributes}))

    def delete(
        self,
        key: Mapping[str, KeyValue],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
    ) -> Item | None:
        """Delete the item with this key; returns it (None if there was none)."""
        op = Delete(key=dict(key), condition=_dict(condition), if_version=if_version)
        return self._item_or_none(op)

    def update(
        self,
        key: Mapping[str, KeyValue],
        *,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        add: Mapping[str, Number] | None = None,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
    ) -> Item:
        """Set, remove and add to attributes (creating the item if absent); returns it."""
        op = Update(
            key=dict(key),
            set=dict(set or {}),
            remove=list(remove),
            add=dict(add or {}),
            condition=_dict(condition),
            if_version=if_version,
        )
        return call(self.name, op, Item)

    def query(
        self,
        key_value: KeyValue,
        *,
        sort: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        forward: bool = True,
        cursor: str | None = None,
    ) -> Page:
        """One page of the items under `key_value` (of the table or of `index`)."""
        op = Query(
            key_value=key_value,
            sort=_dict(sort),
            index=index,
            filter=_dict(filter),
            limit=limit,
            forward=forward,
            cursor=cursor,
        )
        return call(self.name, op, Page)

    def scan(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """One page of every item."""
        return call(self.name, Scan(filter=_dict(filter), limit=limit, cursor=cursor), Page)

    def query_all(
        self,
        key_value: KeyValue,
        *,
        sort: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter: Mapping[str, Any] | None = None,
        forward: bool = True,
    ) -> Iterator[Item]:
        """Every item `query` finds, fetching the pages as they are consumed."""
        return _follow(
            lambda cursor: self.query(
                key_value, sort=sort, index=index, filter=filter, forward=forward, cursor=cursor
            )
        )

    def scan_all(self, *, filter: Mapping[str, Any] | None = None) -> Iterator[Item]:
        """Every item of the table, fetching the pages as they are consumed."""
        return _follow(lambda cursor: self.scan(filter=filter, cursor=cursor))

    def _item_or_none(self, op: Put | Get | Delete) -> Item | None:
        found: Item | None = call(self.name, op, _ITEM_OR_NONE)
        return found


def _follow(fetch: Callable[[str | None], Page]) -> Iterator[Item]:
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.cursor is None:
            return
        cursor = page.cursor


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)
