"""The table service: JSON documents under a key, with DynamoDB's semantics and a change feed.

An item is a JSON object. Its partition key attribute, and its sort key attribute when the table
has one, hold a non-empty string or a number (DynamoDB's S and N key types); within a partition
items sort by sort key, numbers numerically before strings by code point. Global secondary
indexes have their own key and sort key; an item lacking an index's key attributes is not in it.

Versions: every stored item carries a version kept by the platform (1 when created, +1 per
write that changes it), returned beside the document as `Item(data=..., version=...)` rather
than in a reserved attribute, so no attribute name is taken. `if_version=n` makes a write
conditional on it (optimistic concurrency).

Conditions (on put, delete, update) and filters (on query, scan) share one small language: a
dict whose entries must all hold.

    {"status": "open"}            the attribute equals this JSON value (1 == 1.0, True != 1)
    {"n": {">": 3, "<=": 10}}     every test listed for that attribute holds
    {"id": {"not_exists": True}}  create only: no item, or no such attribute
    {"tags": {"=": {"a": 1}}}     equality with a map is spelt out (a dict lists tests)

Tests: "=", "<>" (any JSON value), "<", "<=", ">", ">=" (a string or a number), "between"
([low, high] of one type, low <= high), "begins_with" (a string), "exists" and "not_exists"
(operand True). As in DynamoDB, a missing attribute fails every test except "<>" and
"not_exists", and values of different types are neither equal nor ordered.

Writes that change nothing (a delete of a missing item, a put of the same document, a false
condition) are not written and leave no change. Every other write appends one `Change` to the
table's feed in the same transaction as the write (two when it replaces an expired item: the
expiry's REMOVE first).

TTL: with `TableSpec.ttl` set, an item whose TTL attribute holds a number of epoch seconds
earlier than now is expired: invisible to reads and conditions, and removed by `sweep` with a
REMOVE change marked `expired` (DynamoDB's TTL deletions by "dynamodb.amazonaws.com").
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeAlias

import msgspec

from nimbus.errors import ConditionFailed, InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from nimbus.spec.resources import TableSpec

KeyValue: TypeAlias = str | int | float
Number: TypeAlias = int | float
Document: TypeAlias = dict[str, Any]
ChangeKind = Literal["INSERT", "MODIFY", "REMOVE"]

NO_SORT_KEY = ""
"""The sort value of every item of a table (or index) without a sort key."""
MAX_PAGE = 1000
MAX_DEPTH = 32  # DynamoDB's limit of nested levels in an item
PARTITION_KEY_BYTES = 2048  # DynamoDB's limits of key values
SORT_KEY_BYTES = 1024
INT64 = 2**63


class Item(msgspec.Struct, kw_only=True, frozen=True):
    """A stored document and its version (1 when created, +1 per write that changed it)."""

    data: dict[str, Any]
    version: int


class Page(msgspec.Struct, kw_only=True, frozen=True):
    """Items of a query or scan; `cursor` is None on the last page, else pass it for the next."""

    items: list[Item]
    cursor: str | None = None


class Change(msgspec.Struct, kw_only=True, frozen=True):
    """One committed write, as DynamoDB Streams records it with NEW_AND_OLD_IMAGES."""

    sequence: int
    """Increasing over the platform's tables; a table's changes are in commit order."""
    table: str
    kind: ChangeKind
    key: dict[str, KeyValue]
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    time: float
    traceparent: str | None = None
    expired: bool = False
    """Removed by TTL, not by a caller."""


# The operations a function may call, through `nimbus.sdk.table.Table`.


class Put(msgspec.Struct, tag="table.put", kw_only=True, frozen=True):
    item: dict[str, Any]
    condition: dict[str, Any] | None = None
    if_version: int | None = None


class Get(msgspec.Struct, tag="table.get", kw_only=True, frozen=True):
    key: dict[str, KeyValue]


class Delete(msgspec.Struct, tag="table.delete", kw_only=True, frozen=True):
    key: dict[str, KeyValue]
    condition: dict[str, Any] | None = None
    if_version: int | None = None


class Update(msgspec.Struct, tag="table.update", kw_only=True, frozen=True):
    key: dict[str, KeyValue]
    set: dict[str, Any] = msgspec.field(default_factory=dict)
    remove: list[str] = msgspec.field(default_factory=list)
    add: dict[str, Number] = msgspec.field(default_factory=dict)
    condition: dict[str, Any] | None = None
    if_version: int | None = None


class Query(msgspec.Struct, tag="table.query", kw_only=True, frozen=True):
    key_value: KeyValue
    sort: dict[str, Any] | None = None
    index: str | None = None
    filter: dict[str, Any] | None = None
    limit: int = 100
    forward: bool = True
    cursor: str | None = None


class Scan(msgspec.Struct, tag="table.scan", kw_only=True, frozen=True):
    filter: dict[str, Any] | None = None
    limit: int = 100
    cursor: str | None = None


TableOp: TypeAlias = Put | Get | Delete | Update | Query | Scan


class Tables(Protocol):
    """Every table of the platform; each method takes the table's name first.

    Unknown tables raise NotFound; invalid arguments InvalidRequest (an item over the table's
    `max_item_bytes`: PayloadTooLarge); a false condition ConditionFailed. None changes anything.
    An awaited write is committed (it survives a crash of the platform).
    """

    async def create(self, spec: TableSpec) -> None:
        """Create the table, or apply a changed spec keeping the items (indexes are rebuilt;
        the key may change only while the table is empty, else Conflict)."""
        ...

    async def delete(self, name: str) -> None:
        """Drop the table, its items and its change feed; nothing happens if it is unknown."""
        ...

    async def close(self) -> None: ...

    async def put(
        self,
        name: str,
        item: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
        traceparent: str | None = None,
    ) -> Item | None:
        """Store the item, replacing the one with its key; returns the replaced item."""
        ...

    async def get(self, name: str, key: Mapping[str, Any]) -> Item | None: ...

    async def delete_item(
        self,
        name: str,
        key: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
        traceparent: str | None = None,
    ) -> Item | None:
        """Delete the item with this key; returns it (None if there was none)."""
        ...

    async def update(
        self,
        name: str,
        key: Mapping[str, Any],
        *,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        add: Mapping[str, Number] | None = None,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
        traceparent: str | None = None,
    ) -> Item:
        """Set, remove and add to (numbers; a missing one counts as 0) attributes of the item,
        created from its key if absent; returns the item as written."""
        ...

    async def query(
        self,
        name: str,
        key_value: KeyValue,
        *,
        sort: Mapping[str, Any] | None = None,
        index: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        forward: bool = True,
        cursor: str | None = None,
    ) -> Page:
        """Items of one partition (of the table or of an index) in sort key order; `sort` is one
        test on the sort key: {"=" | "<" | "<=" | ">" | ">=": v}, {"between": [a, b]} or
        {"begins_with": "p"}. As in DynamoDB, `limit` counts the items read before `filter`
        drops some, so a filtered page may be short, even empty, with a cursor to go on."""
        ...

    async def scan(
        self,
        name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Every item, a page at a time, in key order (`limit` as for query)."""
        ...

    async def changes(self, name: str, after: int = 0, limit: int = 100) -> list[Change]:
        """The table's retained changes with a sequence above `after`, oldest first."""
        ...

    async def latest_sequence(self, name: str) -> int:
        """The sequence of the table's latest change (0 if none yet)."""
        ...

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        """Wait until the table has a change above `after` (True) or `timeout` s pass."""
        ...

    async def sweep(self, now: float | None = None) -> int:
        """Remove expired items (REMOVE changes marked expired) and trim changes older than each
        table's `change_retention`; returns the number of items removed."""
        ...


async def perform(
    service: Tables, resource: str, op: TableOp, *, traceparent: str | None = None
) -> Item | Page | None:
    """Run a function's call on table `resource` (the controller passes the invocation's
    trace context, recorded on the changes the call makes)."""
    match op:
        case Put():
            return await service.put(
                resource,
                op.item,
                condition=op.condition,
                if_version=op.if_version,
                traceparent=traceparent,
            )
        case Get():
            return await service.get(resource, op.key)
        case Delete():
            return await service.delete_item(
                resource,
                op.key,
                condition=op.condition,
                if_version=op.if_version,
                traceparent=traceparent,
            )
        case Update():
            return await service.update(
                resource,
                op.key,
                set=op.set,
                remove=op.remove,
                add=op.add,
                condition=op.condition,
                if_version=op.if_version,
                traceparent=traceparent,
            )
        case Query():
            return await service.query(
                resource,
                op.key_value,
                sort=op.sort,
                index=op.index,
                filter=op.filter,
                limit=op.limit,
                forward=op.forward,
                cursor=op.cursor,
            )
        case Scan():
            return await service.scan(resource, filter=op.filter, limit=op.limit, cursor=op.cursor)


# Values: what a document may hold, how values compare.

_MISSING: Any = object()


def kind_of(value: Any) -> str:
    """The DynamoDB type a JSON value maps to (bool is not a number, a tuple is a list)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


def same(a: Any, b: Any) -> bool:
    """Equality as DynamoDB sees it: of one type, numbers by value, lists and maps deeply."""
    kind = kind_of(a)
    if kind != kind_of(b):
        return False
    if kind == "list":
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if kind == "map":
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _order(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 for two numbers or two strings (code point order); None for other pairs."""
    kind = kind_of(a)
    if kind != kind_of(b) or kind not in ("number", "string"):
        return None
    return int(a > b) - int(a < b)


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Raise InvalidRequest unless `value` is JSON (no NaN, no bytes, str keys, 32 levels)
    whose integers fit in 64 bits, as every backend and the function's socket carry them."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int | float):
        _check_number(value, where)
        return
    if depth >= MAX_DEPTH:
        raise InvalidRequest(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        for element in value:
            check_value(element, where, depth + 1)
        return
    if isinstance(value, dict):
        for name, element in value.items():
            if not isinstance(name, str):
                raise InvalidRequest(f"{where}: attribute name {name!r} is not a string")
            check_value(element, f"{where}.{name}", depth + 1)
        return
    raise InvalidRequest(f"{where}: a {type(value).__name__} is not a JSON value")


def check_document(item: Any, what: str = "item") -> Document:
    if not isinstance(item, Mapping):
        raise InvalidRequest(f"{what} is a dict of attributes, not a {type(item).__name__}")
    document = dict(item)
    check_value(document, what)
    return document


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is an int from 1 to {MAX_PAGE}, not {limit!r}")
    return limit


def encode_document(spec: TableSpec, document: Document) -> bytes:
    """The stored form, JSON, whose length is the item's size (over the limit: nothing stored)."""
    try:
        data = msgspec.json.encode(document)
    except UnicodeEncodeError as error:
        raise InvalidRequest(f"item holds a string that is not valid Unicode: {error}") from None
    if len(data) > spec.max_item_bytes:
        raise PayloadTooLarge(
            f"item of {len(data)} bytes is over table {spec.name!r}'s limit of "
            f"{spec.max_item_bytes} bytes"
        )
    return data


# Keys.


def check_key_value(value: Any, attribute: str, limit: int = PARTITION_KEY_BYTES) -> KeyValue:
    """A key attribute's value: a non-empty string of at most `limit` bytes, or a number."""
    where = f"key attribute {attribute!r}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequest(f"{where} must be a string or a number, not {kind_of(value)}")
    if isinstance(value, str):
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise InvalidRequest(f"{where} is not valid Unicode") from None
        if not 0 < size <= limit:
            raise InvalidRequest(f"{where} must be a string of 1 to {limit} bytes, not {size}")
    else:
        _check_number(value, where)
    return value


def _check_number(value: int | float, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{where}: {value} is not a JSON number")
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise InvalidRequest(f"{where}: {value} does not fit in 64 bits")


def key_attributes(spec: TableSpec) -> tuple[str, ...]:
    return (spec.key,) if spec.sort_key is None else (spec.key, spec.sort_key)


def item_key(spec: TableSpec, document: Mapping[str, Any]) -> tuple[KeyValue, KeyValue]:
    """(partition value, sort value or NO_SORT_KEY) of an item or key dict of this table."""
    for attribute in key_attributes(spec):
        if attribute not in document:
            raise InvalidRequest(f"table {spec.name!r}: key attribute {attribute!r} is missing")
    partition = check_key_value(document[spec.key], spec.key)
    if spec.sort_key is None:
        return partition, NO_SORT_KEY
    return partition, check_key_value(document[spec.sort_key], spec.sort_key, SORT_KEY_BYTES)


def parse_key(spec: TableSpec, key: Any) -> tuple[KeyValue, KeyValue]:
    """A key given by a caller: exactly the table's key attributes."""
    expected = key_attributes(spec)
    if not isinstance(key, Mapping) or sorted(key) != sorted(expected):
        given = sorted(key) if isinstance(key, Mapping) else type(key).__name__
        raise InvalidRequest(
            f"a key of table {spec.name!r} has exactly the attributes {list(expected)}, not {given}"
        )
    return item_key(spec, key)


def key_document(spec: TableSpec, partition: KeyValue, sort: KeyValue) -> dict[str, KeyValue]:
    if spec.sort_key is None:
        return {spec.key: partition}
    return {spec.key: partition, spec.sort_key: sort}


Entry: TypeAlias = tuple[str, KeyValue, KeyValue]
"""An item's place in an index: (index name, index key value, index sort value)."""


def index_entries(spec: TableSpec, document: Mapping[str, Any], *, strict: bool) -> list[Entry]:
    """The indexes an item is in. A present index key of the wrong type is InvalidRequest when
    `strict` (a write), else leaves the item out (an index added over existing items)."""
    entries = []
    for name, index in spec.indexes.items():
        if index.key not in document or (index.sort_key and index.sort_key not in document):
            continue
        try:
            partition = check_key_value(document[index.key], index.key)
            sort = (
                NO_SORT_KEY
                if index.sort_key is None
                else check_key_value(document[index.sort_key], index.sort_key, SORT_KEY_BYTES)
            )
        except InvalidRequest as error:
            if strict:
                raise InvalidRequest(f"index {name!r}: {error.message}") from None
            continue
        entries.append((name, partition, sort))
    return entries


def expiry(spec: TableSpec, document: Mapping[str, Any]) -> float | None:
    """When the item expires: its TTL attribute if that is a number (else never, as in
    DynamoDB, which ignores TTL attributes of other types)."""
    value = document.get(spec.ttl) if spec.ttl is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond any float: never
        return None


# Conditions and filters.


class Test(NamedTuple):
    attribute: str
    op: str
    operand: Any


_COMPARISONS = ("<", "<=", ">", ">=")
OPS = ("=", "<>", *_COMPARISONS, "between", "begins_with", "exists", "not_exists")
SORT_OPS = ("=", *_COMPARISONS, "between", "begins_with")


def parse_condition(condition: Any, what: str = "condition") -> tuple[Test, ...]:
    """The tests of a condition or filter; InvalidRequest if it is malformed or contradictory."""
    if not isinstance(condition, Mapping) or not condition:
        raise InvalidRequest(f"a {what} is a non-empty dict of attribute: test")
    tests: list[Test] = []
    for attribute, test in condition.items():
        where = f"{what} on {attribute!r}"
        if not isinstance(attribute, str):
            raise InvalidRequest(f"{where}: attribute names are strings")
        if not isinstance(test, Mapping):
            check_value(test, where)
            tests.append(Test(attribute, "=", test))
            continue
        if not test:
            raise InvalidRequest(f"{where} has no test; tests are {', '.join(OPS)}")
        if "not_exists" in test and len(test) > 1:
            others = ", ".join(op for op in test if op != "not_exists")
            raise InvalidRequest(f"{where} is contradictory: not_exists with {others}")
        tests.extend(Test(attribute, op, _operand(op, value, where)) for op, value in test.items())
    return tuple(tests)


def _operand(op: Any, operand: Any, where: str) -> Any:
    if op in ("=", "<>"):
        check_value(operand, where)
    elif op in _COMPARISONS:
        _comparable(operand, f"{where}: {op}")
    elif op == "between":
        return _bounds(operand, where)
    elif op == "begins_with":
        if not isinstance(operand, str):
            raise InvalidRequest(f"{where}: begins_with takes a string, not {kind_of(operand)}")
    elif op in ("exists", "not_exists"):
        if operand is not True:
            other = "not_exists" if op == "exists" else "exists"
            raise InvalidRequest(f"{where}: {op} takes True (use {other} for the opposite)")
    else:
        raise InvalidRequest(f"{where}: unknown test {op!r}; tests are {', '.join(OPS)}")
    return operand


def _comparable(operand: Any, where: str) -> None:
    if kind_of(operand) not in ("number", "string"):
        raise InvalidRequest(f"{where} compares strings or numbers, not {kind_of(operand)}")
    check_value(operand, where)


def _bounds(operand: Any, where: str) -> tuple[KeyValue, KeyValue]:
    if not isinstance(operand, list | tuple) or len(operand) != 2:
        raise InvalidRequest(f"{where}: between takes [low, high]")
    low, high = operand
    _comparable(low, f"{where}: between")
    _comparable(high, f"{where}: between")
    order = _order(low, high)
    if order is None or order > 0:
        raise InvalidRequest(
            f"{where}: between needs low <= high of one type, not {low!r}, {high!r}"
        )
    return low, high


def holds(tests: Sequence[Test], document: Mapping[str, Any] | None) -> bool:
    """Whether every test holds for the document (None: no item, every attribute missing)."""
    return all(_holds(test, document) for test in tests)


def _holds(test: Test, document: Mapping[str, Any] | None) -> bool:
    value = _MISSING if document is None else document.get(test.attribute, _MISSING)
    if value is _MISSING:
        return test.op in ("<>", "not_exists")
    match test.op:
        case "=":
            return same(value, test.operand)
        case "<>":
            return not same(value, test.operand)
        case "exists":
            return True
        case "not_exists":
            return False
        case "begins_with":
            return isinstance(value, str) and value.startswith(test.operand)
        case "between":
            low, high = test.operand
            return _compares("<=", _order(low, value)) and _compares("<=", _order(value, high))
        case _:
            return _compares(test.op, _order(value, test.operand))


_ORDERED = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compares(op: str, order: int | None) -> bool:
    return order is not None and _ORDERED[op](order, 0)


class Expectation(NamedTuple):
    """What a conditional write requires of the item it replaces."""

    tests: tuple[Test, ...]
    version: int | None

    def check(self, spec: TableSpec, key: Mapping[str, Any], current: Item | None) -> None:
        """Raise ConditionFailed unless the current item (None: absent) meets it."""
        if self.version is not None and (current is None or current.version != self.version):
            found = "no item" if current is None else f"version {current.version}"
            raise ConditionFailed(
                f"table {spec.name!r}, item {dict(key)}: expected version {self.version}, "
                f"found {found}; nothing was written"
            )
        if not holds(self.tests, None if current is None else current.data):
            raise ConditionFailed(
                f"table {spec.name!r}, item {dict(key)}: the condition is false; "
                "nothing was written"
            )


def expectation(spec: TableSpec, condition: Any, if_version: Any) -> Expectation | None:
    """Parse a write's condition and expected version (InvalidRequest if malformed or if they
    contradict: a version needs the item to exist)."""
    if condition is None and if_version is None:
        return None
    tests = () if condition is None else parse_condition(condition)
    if if_version is not None:
        if isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 1:
            raise InvalidRequest(f"if_version is a version (an int from 1), not {if_version!r}")
        absent = [t.attribute for t in tests if t.op == "not_exists"]
        if set(absent) & set(key_attributes(spec)):
            raise InvalidRequest(
                f"conflicting conditions: if_version={if_version} needs the item, "
                f"not_exists on key {absent} needs none"
            )
    return Expectation(tests, if_version)


class SortRange(NamedTuple):
    """A query's test on the sort key: one of SORT_OPS and its operand (a pair for between)."""

    op: str
    operand: Any


def parse_sort(sort: Any, attribute: str) -> SortRange:
    where = f"sort condition on {attribute!r}"
    if not isinstance(sort, Mapping) or len(sort) != 1:
        raise InvalidRequest(f"a {where} is one test: {{op: value}}, op in {', '.join(SORT_OPS)}")
    [(op, operand)] = sort.items()
    if op not in SORT_OPS:
        raise InvalidRequest(f"{where}: {op!r} is not one of {', '.join(SORT_OPS)}")
    if op == "between":
        checked = SortRange(op, _bounds(operand, where))
    elif op == "begins_with":
        checked = SortRange(op, _operand(op, operand, where))
    else:
        _comparable(operand, f"{where}: {op}")
        checked = SortRange(op, operand)
    for value in checked.operand if op == "between" else [checked.operand]:
        if isinstance(value, str):  # compared by the backend, which stores keys as UTF-8
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidRequest(f"{where}: {value!r} is not valid Unicode") from None
    return checked


# Updates.


class Updates(NamedTuple):
    set: dict[str, Any]
    remove: tuple[str, ...]
    add: dict[str, Number]


def parse_updates(
    spec: TableSpec,
    set_: Mapping[str, Any] | None,
    remove: Sequence[str],
    add: Mapping[str, Number] | None,
) -> Updates:
    """InvalidRequest for a key attribute, an attribute named twice (conflicting), a value
    that is not JSON or an addend that is not a number."""
    assignments = check_document(set_ or {}, "set")
    addends = dict(add or {})
    if isinstance(remove, str) or not all(isinstance(name, str) for name in remove):
        raise InvalidRequest("remove is a list of attribute names")
    named = Counter([*assignments, *remove, *addends])
    conflicting = sorted(name for name, count in named.items() if count > 1)
    if conflicting:
        raise InvalidRequest(f"conflicting updates: {conflicting} named twice in set/remove/add")
    keys = sorted(set(key_attributes(spec)) & set(named))
    if keys:
        raise InvalidRequest(f"table {spec.name!r}: key attributes {keys} cannot be updated")
    for name, number in addends.items():
        if kind_of(number) != "number":
            raise InvalidRequest(f"add {name!r}: adds a number, not {kind_of(number)}")
        check_value(number, f"add {name!r}")
    return Updates(assignments, tuple(remove), addends)


def apply_updates(updates: Updates, base: Mapping[str, Any]) -> Document:
    """The document after the updates (DynamoDB's SET, REMOVE and ADD of numbers, where a
    missing attribute counts as 0); InvalidRequest if an ADD meets a value not a number."""
    document = {**base, **updates.set}
    for name in updates.remove:
        document.pop(name, None)
    for name, number in updates.add.items():
        current = document.get(name, 0)
        if kind_of(current) != "number":
            raise InvalidRequest(f"add {name!r}: the item holds a {kind_of(current)} there")
        total = current + number
        check_value(total, f"add {name!r}")
        document[name] = total
    return document
