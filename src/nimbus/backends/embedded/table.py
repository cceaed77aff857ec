"""Tables in one SQLite file, `table.db`: items as JSON under their key, index entries beside
them, and every change in the same transaction as the write it records.

A write reads the item, checks its condition and commits, one at a time per item; writes of
different items commit together in the writer thread's groups. Change sequences are taken just
before the write is queued, and the writer commits in queue order, so a reader of the feed never
sees a sequence after one that is still to come.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import msgspec

from nimbus.backends.embedded.keys import prefix_end
from nimbus.errors import Conflict, InvalidRequest, NotFound
from nimbus.ops.database import Database, Params
from nimbus.services.table import (
    Change,
    ChangeKind,
    Document,
    Entry,
    Expectation,
    Item,
    KeyValue,
    Number,
    Page,
    SortRange,
    apply_updates,
    check_document,
    check_key_value,
    check_limit,
    check_value,
    encode_document,
    expectation,
    expiry,
    holds,
    index_entries,
    item_key,
    key_attributes,
    key_document,
    parse_condition,
    parse_key,
    parse_sort,
    parse_updates,
    same,
)
from nimbus.spec.resources import TableSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, last_sequence INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL, pk NOT NULL, sk NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
    expires REAL, UNIQUE (tbl, pk, sk));
CREATE INDEX IF NOT EXISTS items_expiring ON items (tbl, expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS entries (
    tbl TEXT NOT NULL, idx TEXT NOT NULL, ik NOT NULL, isk NOT NULL, pk NOT NULL, sk NOT NULL,
    PRIMARY KEY (tbl, idx, ik, isk, pk, sk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, time REAL NOT NULL,
    body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_table ON changes (tbl, sequence);
CREATE INDEX IF NOT EXISTS changes_by_time ON changes (tbl, time);
"""
# Key columns have no declared type: SQLite keeps 1 and "1" apart, compares 1 with 1.0 equal,
# sorts numbers before strings and strings by their UTF-8 bytes (= by code point).

SWEEP_BATCH = 500
_ALIVE = "(i.expires IS NULL OR i.expires >= ?)"
_INDEXED = "entries e JOIN items i ON i.tbl = e.tbl AND i.pk = e.pk AND i.sk = e.sk"
_INSERT_CHANGE = "INSERT INTO changes (sequence, tbl, time, body) VALUES (?, ?, ?, ?)"
_INSERT_ENTRY = "INSERT INTO entries (tbl, idx, ik, isk, pk, sk) VALUES (?, ?, ?, ?, ?, ?)"
_DELETE_ENTRY = (
    "DELETE FROM entries WHERE tbl = ? AND idx = ? AND ik = ? AND isk = ? AND pk = ? AND sk = ?"
)
_UPSERT_ITEM = (
    "INSERT INTO items (tbl, pk, sk, version, data, expires) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tbl, pk, sk) DO UPDATE SET "
    "version = excluded.version, data = excluded.data, expires = excluded.expires"
)
_SELECT_STORED = "SELECT pk, sk, version, data, expires FROM items WHERE tbl = ?"

T = TypeVar("T")
P = ParamSpec("P")
Statement: TypeAlias = tuple[str, Params]
ItemKey: TypeAlias = tuple[KeyValue, KeyValue]
Draft: TypeAlias = tuple[ChangeKind, Document | None, Document | None, bool]
"""A change before it has a sequence: kind, old image, new image, expired."""

_documents = msgspec.json.Decoder(dict[str, Any])
_msgpack = msgspec.msgpack.Encoder()
_changes = msgspec.msgpack.Decoder(Change)


@dataclass(frozen=True, slots=True)
class _Stored:
    """An item as stored, expired or not."""

    key: ItemKey
    version: int
    data: Document
    expires: float | None

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires >= now

    def item(self) -> Item:
        return Item(data=self.data, version=self.version)


def _stored(row: sqlite3.Row) -> _Stored:
    data = _documents.decode(row["data"])
    return _Stored((row["pk"], row["sk"]), row["version"], data, row["expires"])


@dataclass(frozen=True, slots=True)
class _New:
    """An item about to be stored, checked and encoded."""

    version: int
    encoded: bytes
    expires: float | None
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class _Write:
    key: ItemKey
    old: _Stored | None
    new: _New | None
    drafts: list[Draft]


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    """Where a page ended, and which listing it belongs to (a cursor fits only that one)."""

    table: str
    index: str | None
    partition: KeyValue | None
    position: tuple[KeyValue, ...] = ()

    def encode(self, position: tuple[KeyValue, ...]) -> str:
        data = _msgpack.encode(msgspec.structs.replace(self, position=position))
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def resume(self, text: Any, width: int) -> tuple[KeyValue, ...]:
        """The position a cursor from `encode` of this same listing holds."""
        try:
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            cursor = msgspec.msgpack.decode(data, type=_Cursor)
            check_value(list(cursor.position), "cursor")  # numbers SQLite can take
        except (TypeError, ValueError, binascii.Error, msgspec.DecodeError, InvalidRequest):
            raise InvalidRequest(f"malformed cursor {text!r}") from None
        fits = (cursor.table, cursor.index) == (self.table, self.index)
        if not fits or not same(cursor.partition, self.partition) or len(cursor.position) != width:
            raise InvalidRequest("the cursor belongs to another query or scan")
        return cursor.position


@dataclass(slots=True)
class _Plan:
    """A listing's SQL: the rows it reads and the columns that order them (its position)."""

    source: str
    where: list[str]
    params: list[Any]
    order: tuple[str, ...]

    def narrow(self, sort: SortRange) -> None:
        """Keep the rows whose sort column passes the test, values of the operand's type only
        (SQLite would order a string after any number; DynamoDB compares within a type)."""
        column = self.order[0]
        operand = sort.operand[0] if sort.op == "between" else sort.operand
        types = "('text')" if isinstance(operand, str) else "('integer', 'real')"
        self.where.append(f"typeof({column}) IN {types}")
        if sort.op == "between":
            self.where.append(f"{column} BETWEEN ? AND ?")
            self.params.extend(sort.operand)
        elif sort.op == "begins_with":
            self.where.append(f"{column} >= ?")
            self.params.append(sort.operand)
            end = prefix_end(sort.operand)
            if end is not None:
                self.where.append(f"{column} < ?")
                self.params.append(end)
        else:
            self.where.append(f"{column} {sort.op} ?")  # op is one of SORT_OPS
            self.params.append(sort.operand)


@dataclass(slots=True)
class _ItemLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class _Gate:
    """The writes of one table: one at a time per item, and none while the table as a whole
    changes (configuration, sweep, drop), so each write commits under the spec it checked.
    No `finally` here awaits: a cancelled write cannot leave the gate shut."""

    def __init__(self) -> None:
        self._writers = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()
        self._whole = asyncio.Lock()
        self._items: dict[ItemKey, _ItemLock] = {}

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._writers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._writers -= 1
            if not self._writers:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def whole(self) -> AsyncIterator[None]:
        async with self._whole:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()

    @contextlib.asynccontextmanager
    async def item(self, key: ItemKey) -> AsyncIterator[None]:
        entry = self._items.get(key)
        if entry is None:
            entry = self._items[key] = _ItemLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._items[key]


def _completes(
    method: Callable[Concatenate[EmbeddedTables, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[EmbeddedTables, P], Coroutine[Any, Any, T]]:
    """A write, once started, runs to its end even if its caller is cancelled: the database
    commits what was queued, and the item locks, sequences and specs must follow it."""

    @functools.wraps(method)
    async def run(self: EmbeddedTables, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.get_running_loop().create_task(method(self, *args, **kwargs))
        self._running.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    return run


class EmbeddedTables:
    """The `Tables` service on SQLite; `clock` gives the time TTL and changes are measured by."""

    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = Database(data_dir / "table.db", SCHEMA, fsync=fsync)
        self._clock = clock
        self._specs: dict[str, TableSpec] = {}
        self._latest: dict[str, int] = {}
        for row in self._db.read_now("SELECT name, spec, last_sequence FROM tables"):
            self._specs[row["name"]] = TableSpec.model_validate_json(row["spec"])
            self._latest[row["name"]] = row["last_sequence"]
        # AUTOINCREMENT remembers the highest sequence even once its change is trimmed.
        [row] = self._db.read_now(
            "SELECT coalesce(max(seq), 0) AS seq FROM sqlite_sequence WHERE name = 'changes'"
        )
        self._sequence: int = row["seq"]
        self._gates: dict[str, _Gate] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._running: set[asyncio.Task[Any]] = set()

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: the caller may have gone

    # Lifecycle.

    @_completes
    async def create(self, spec: TableSpec) -> None:
        async with self._gate(spec.name).whole():
            current = self._specs.get(spec.name)
            if current == spec:
                return
            if current is None:
                await self._db.write(
                    "INSERT INTO tables (name, spec, last_sequence) VALUES (?, ?, 0)",
                    (spec.name, spec.model_dump_json()),
                )
                self._latest[spec.name] = 0
            else:
                await self._db.transaction(await self._reconfigure(current, spec))
            self._specs[spec.name] = spec

    async def _reconfigure(self, current: TableSpec, spec: TableSpec) -> list[Statement]:
        """Statements that apply a changed spec: its indexes and expiry times rebuilt."""
        statements: list[Statement] = [
            ("UPDATE tables SET spec = ? WHERE name = ?", (spec.model_dump_json(), spec.name))
        ]
        if key_attributes(current) != key_attributes(spec):
            if await self._db.read("SELECT 1 FROM items WHERE tbl = ? LIMIT 1", (spec.name,)):
                raise Conflict(
                    f"table {spec.name!r} holds items under the key {list(key_attributes(current))}"
                    f"; the key {list(key_attributes(spec))} needs a new table"
                )
            return statements
        if current.indexes == spec.indexes and current.ttl == spec.ttl:
            return statements
        statements.append(("DELETE FROM entries WHERE tbl = ?", (spec.name,)))
        for stored in await self._read(_SELECT_STORED, (spec.name,), _stored):
            table_key = (spec.name, *stored.key)
            statements += [
                (_INSERT_ENTRY, (spec.name, *entry, *stored.key))
                for entry in index_entries(spec, stored.data, strict=False)
            ]
            statements.append(
                (
                    "UPDATE items SET expires = ? WHERE tbl = ? AND pk = ? AND sk = ?",
                    (expiry(spec, stored.data), *table_key),
                )
            )
        return statements

    @_completes
    async def delete(self, name: str) -> None:
        async with self._gate(name).whole():
            if name not in self._specs:
                return
            await self._db.transaction(
                [
                    *[(f"DELETE FROM {rows} WHERE tbl = ?", (name,)) for rows in _PER_TABLE],
                    ("DELETE FROM tables WHERE name = ?", (name,)),
                ]
            )
            del self._specs[name]
            del self._latest[name]
        self._notify(name)

    async def close(self) -> None:
        await asyncio.gather(*self._running, return_exceptions=True)
        await asyncio.to_thread(self._db.close)
        for name in list(self._changed):
            self._notify(name)

    # Items.

    @_completes
    async def put(
        self,
        name: str,
        item: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
        traceparent: str | None = None,
    ) -> Item | None:
        document = check_document(item)
        async with self._writing(name) as spec:
            key = item_key(spec, document)
            expected = expectation(spec, condition, if_version)
            old, _ = await self._write(spec, key, expected, lambda _: document, traceparent)
        return old

    async def get(self, name: str, key: Mapping[str, Any]) -> Item | None:
        spec = self._spec(name)
        stored = await self._load(name, parse_key(spec, key))
        return stored.item() if stored is not None and stored.live(self._clock()) else None

    @_completes
    async def delete_item(
        self,
        name: str,
        key: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        if_version: int | None = None,
        traceparent: str | None = None,
    ) -> Item | None:
        async with self._writing(name) as spec:
            at = parse_key(spec, key)
            expected = expectation(spec, condition, if_version)
            old, _ = await self._write(spec, at, expected, lambda _: None, traceparent)
        return old

    @_completes
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
        async with self._writing(name) as spec:
            at = parse_key(spec, key)
            updates = parse_updates(spec, set, remove, add)
            expected = expectation(spec, condition, if_version)
            created = key_document(spec, *at)

            def updated(old: Item | None) -> Document:
                return apply_updates(updates, created if old is None else old.data)

            _, new = await self._write(spec, at, expected, updated, traceparent)
        assert new is not None  # an update always leaves an item
        return new

    async def _write(
        self,
        spec: TableSpec,
        key: ItemKey,
        expected: Expectation | None,
        compute: Callable[[Item | None], Document | None],
        traceparent: str | None,
    ) -> tuple[Item | None, Item | None]:
        """Replace the item at `key` by `compute(current item)` (None: delete it) if `expected`
        holds; returns the items before and after."""
        async with self._gate(spec.name).item(key):
            stored = await self._load(spec.name, key)
            live = stored if stored is not None and stored.live(self._clock()) else None
            old = None if live is None else live.item()
            if expected is not None:
                expected.check(spec, key_document(spec, *key), old)
            document = compute(old)
            if document is None and live is None:
                return None, None
            if document is None:
                await self._commit(
                    spec, [_Write(key, stored, None, [_draft(live, None)])], traceparent
                )
                return old, None
            if old is not None and same(old.data, document):
                return old, old  # no change: nothing written, no change recorded
            version = 1 if old is None else old.version + 1
            new = _New(
                version,
                encode_document(spec, document),
                expiry(spec, document),
                index_entries(spec, document, strict=True),
            )
            drafts = [_draft(live, document)]
            if stored is not None and live is None:  # its expiry is recorded first
                drafts.insert(0, ("REMOVE", stored.data, None, True))
            await self._commit(spec, [_Write(key, stored, new, drafts)], traceparent)
            return old, Item(data=document, version=version)

    async def _commit(
        self, spec: TableSpec, writes: Sequence[_Write], traceparent: str | None
    ) -> None:
        """Write the items and their changes in one transaction. Sequences are taken with no
        await before the transaction is queued, so they commit in order."""
        now = self._clock()
        statements: list[Statement] = []
        for write in writes:
            key = key_document(spec, *write.key)
            for kind, old, new, expired in write.drafts:
                self._sequence += 1
                change = Change(
                    sequence=self._sequence,
                    table=spec.name,
                    kind=kind,
                    key=key,
                    old=old,
                    new=new,
                    time=now,
                    traceparent=None if expired else traceparent,
                    expired=expired,
                )
                body = _msgpack.encode(change)
                statements.append((_INSERT_CHANGE, (self._sequence, spec.name, now, body)))
            statements += _item_statements(spec, write)
        last = self._sequence
        statements.append(
            (
                "UPDATE tables SET last_sequence = max(last_sequence, ?) WHERE name = ?",
                (last, spec.name),
            )
        )
        await self._db.transaction(statements)
        self._latest[spec.name] = max(self._latest[spec.name], last)
        self._notify(spec.name)

    # Listings.

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
        spec = self._spec(name)
        if index is None:
            partition_attribute, sort_attribute = spec.key, spec.sort_key
            plan = _Plan("items i", ["i.tbl = ?", "i.pk = ?"], [name], ("i.sk",))
        elif index in spec.indexes:
            partition_attribute, sort_attribute = (
                spec.indexes[index].key,
                spec.indexes[index].sort_key,
            )
            where = ["e.tbl = ?", "e.idx = ?", "e.ik = ?"]
            plan = _Plan(_INDEXED, where, [name, index], ("e.isk", "e.pk", "e.sk"))
        else:
            known = ", ".join(spec.indexes) or "none"
            raise InvalidRequest(f"table {name!r} has no index {index!r} (its indexes: {known})")
        partition = check_key_value(key_value, partition_attribute)
        plan.params.append(partition)
        if sort is not None:
            if sort_attribute is None:
                raise InvalidRequest(
                    f"a sort condition needs a sort key; {index or name!r} has none"
                )
            plan.narrow(parse_sort(sort, sort_attribute))
        origin = _Cursor(name, index, partition)
        return await self._page(plan, origin, filter, limit, forward, cursor)

    async def scan(
        self,
        name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        self._spec(name)
        plan = _Plan("items i", ["i.tbl = ?"], [name], ("i.pk", "i.sk"))
        return await self._page(plan, _Cursor(name, None, None), filter, limit, True, cursor)

    async def _page(
        self,
        plan: _Plan,
        origin: _Cursor,
        filter: Mapping[str, Any] | None,
        limit: int,
        forward: bool,
        cursor: str | None,
    ) -> Page:
        """A page of a listing: `limit` live items read after the cursor (one more tells
        whether another page follows), then filtered."""
        tests = () if filter is None else parse_condition(filter, "filter")
        check_limit(limit)
        columns = ", ".join(plan.order)
        if cursor is not None:
            position = origin.resume(cursor, len(plan.order))
            marks = ", ".join("?" * len(position))
            plan.where.append(f"({columns}) {'>' if forward else '<'} ({marks})")
            plan.params.extend(position)
        plan.where.append(_ALIVE)
        plan.params += [self._clock(), limit + 1]
        direction = "ASC" if forward else "DESC"
        sql = (
            f"SELECT i.version, i.data, {columns} FROM {plan.source} "
            f"WHERE {' AND '.join(plan.where)} "
            f"ORDER BY {', '.join(f'{column} {direction}' for column in plan.order)} LIMIT ?"
        )
        rows = await self._read(sql, plan.params, _positioned)
        more = len(rows) > limit
        read = rows[:limit]
        items = [item for _, item in read if holds(tests, item.data)]
        return Page(items=items, cursor=origin.encode(read[-1][0]) if more else None)

    # The change feed.

    async def changes(self, name: str, after: int = 0, limit: int = 100) -> list[Change]:
        self._spec(name)
        check_limit(limit)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidRequest(f"after is a sequence (an int from 0), not {after!r}")
        return await self._read(
            "SELECT body FROM changes WHERE tbl = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (name, after, limit),
            lambda row: _changes.decode(row["body"]),
        )

    async def latest_sequence(self, name: str) -> int:
        self._spec(name)
        return self._latest[name]

    async def wait(self, name: str, after: int, timeout: float) -> bool:
        self._spec(name)
        if timeout < 0:
            raise InvalidRequest(f"timeout is seconds from 0, not {timeout!r}")
        if self._latest[name] > after:
            return True
        event = self._changed.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self._latest.get(name, 0) > after

    def _notify(self, name: str) -> None:
        event = self._changed.pop(name, None)
        if event is not None:
            event.set()

    @_completes
    async def sweep(self, now: float | None = None) -> int:
        moment = self._clock() if now is None else now
        removed = 0
        for name in list(self._specs):
            removed += await self._expire(name, moment)
            spec = self._specs.get(name)
            if spec is not None:
                await self._db.write(
                    "DELETE FROM changes WHERE tbl = ? AND time < ?",
                    (name, moment - spec.change_retention),
                )
        return removed

    async def _expire(self, name: str, now: float) -> int:
        """Remove the table's expired items, a batch per transaction, writes held back."""
        removed = 0
        while True:
            async with self._gate(name).whole():
                spec = self._specs.get(name)
                if spec is None or spec.ttl is None:
                    return removed
                expired = await self._read(
                    f"{_SELECT_STORED} AND expires < ? ORDER BY expires LIMIT ?",
                    (name, now, SWEEP_BATCH),
                    _stored,
                )
                writes = [
                    _Write(stored.key, stored, None, [("REMOVE", stored.data, None, True)])
                    for stored in expired
                ]
                if writes:
                    await self._commit(spec, writes, None)
            removed += len(expired)
            if len(expired) < SWEEP_BATCH:
                return removed

    # Helpers.

    def _spec(self, name: str) -> TableSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise NotFound(f"table {name!r} does not exist")
        return spec

    def _gate(self, name: str) -> _Gate:
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = _Gate()
        return gate

    @contextlib.asynccontextmanager
    async def _writing(self, name: str) -> AsyncIterator[TableSpec]:
        async with self._gate(name).shared():
            yield self._spec(name)

    async def _load(self, table: str, key: ItemKey) -> _Stored | None:
        rows = await self._read(f"{_SELECT_STORED} AND pk = ? AND sk = ?", (table, *key), _stored)
        return rows[0] if rows else None

    async def _read(self, sql: str, params: Params, decode: Callable[[sqlite3.Row], T]) -> list[T]:
        """Read and decode off the event loop."""
        return await asyncio.to_thread(self._decoded, sql, params, decode)

    def _decoded(self, sql: str, params: Params, decode: Callable[[sqlite3.Row], T]) -> list[T]:
        return [decode(row) for row in self._db.read_now(sql, params)]


_PER_TABLE = ("items", "entries", "changes")


def _draft(live: _Stored | None, document: Document | None) -> Draft:
    if live is None:
        return ("INSERT", None, document, False)
    return ("MODIFY" if document is not None else "REMOVE", live.data, document, False)


def _item_statements(spec: TableSpec, write: _Write) -> list[Statement]:
    """The item's row and its index entries (only those that differ) as the write leaves them."""
    at = (spec.name, *write.key)
    old = set() if write.old is None else set(index_entries(spec, write.old.data, strict=False))
    new = set() if write.new is None else set(write.new.entries)
    statements: list[Statement] = [(_DELETE_ENTRY, (spec.name, *e, *write.key)) for e in old - new]
    statements += [(_INSERT_ENTRY, (spec.name, *e, *write.key)) for e in new - old]
    if write.new is None:
        statements.append(("DELETE FROM items WHERE tbl = ? AND pk = ? AND sk = ?", at))
    else:
        row = (write.new.version, write.new.encoded, write.new.expires)
        statements.append((_UPSERT_ITEM, (*at, *row)))
    return statements


def _positioned(row: sqlite3.Row) -> tuple[tuple[KeyValue, ...], Item]:
    item = Item(data=_documents.decode(row[1]), version=row[0])
    return tuple(row)[2:], item
