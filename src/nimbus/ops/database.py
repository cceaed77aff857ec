"""SQLite in WAL mode, with one writer thread that commits in groups off the event loop.

`write` and `transaction` resolve once committed (an acknowledged write survives `kill -9` of
the platform); `submit` and `submit_rows` queue a write without waiting (records, logs). Reads
use their own connection in a worker thread. A failing write fails alone; the thread lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Params = Sequence[Any]
Step = tuple[str, Params, bool]  # sql, parameters; or with True: "INSERT ... VALUES" and rows
GROUP_LIMIT = 1000
MAX_VARIABLES = 32766  # SQLite's limit of parameters in one statement (since 3.32)


@dataclass(frozen=True, slots=True)
class Rows:
    """A step of a transaction that inserts many rows (`insert` ends with VALUES), in as few
    statements as SQLite allows."""

    insert: str
    rows: Sequence[Params]


@dataclass(slots=True)
class _Write:
    steps: list[Step]  # run in order, atomically; none: only a point to wait for
    future: asyncio.Future[list[int]] | None = None
    event: threading.Event | None = None
    error: Exception | None = None
    rowcounts: list[int] = field(default_factory=list)

    def execute(self, connection: sqlite3.Connection) -> None:
        self.rowcounts = []
        for sql, params, rows in self.steps:
            if rows:
                self.rowcounts.append(_insert_rows(connection, sql, params))
            else:
                self.rowcounts.append(connection.execute(sql, params).rowcount)


def _insert_rows(connection: sqlite3.Connection, insert: str, rows: Params) -> int:
    """Insert many rows with as few statements as SQLite allows: each statement crosses the
    GIL once, where executemany would cross it for every row."""
    if not rows:
        return 0
    width = len(rows[0])
    group = "(" + ",".join("?" * width) + ")"
    per_statement = MAX_VARIABLES // width
    changed = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = f"{insert} {','.join([group] * len(chunk))}"
        changed += connection.execute(sql, list(itertools.chain.from_iterable(chunk))).rowcount
    return changed


class Database:
    def __init__(self, path: Path, schema: str, *, fsync: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._synchronous = "FULL" if fsync else "NORMAL"
        setup = self._connect()
        setup.executescript(schema)
        setup.close()
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._reader = self._connect()
        self._reader.row_factory = sqlite3.Row
        self._read_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._write_loop, name="nimbus-db", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    async def write(self, sql: str, params: Params = ()) -> int:
        """Execute and wait until committed; returns the number of rows changed."""
        return (await self.transaction([(sql, params)]))[0]

    async def transaction(self, statements: Sequence[tuple[str, Params] | Rows]) -> list[int]:
        """Execute all or none, in order, and wait until committed; returns each one's rows
        changed."""
        steps: list[Step] = [
            (s.insert, s.rows, True) if isinstance(s, Rows) else (s[0], s[1], False)
            for s in statements
        ]
        return await self._wait(_Write(steps))

    async def barrier(self) -> None:
        """Wait until every write queued before this call is committed (read your writes)."""
        await self._wait(_Write([]))

    def submit(self, sql: str, params: Params = ()) -> None:
        """Execute soon; nobody waits for it."""
        self._queue.put(_Write([(sql, params, False)]))

    def submit_rows(self, insert: str, rows: Sequence[Params]) -> None:
        """Insert rows soon (`insert` ends with VALUES); nobody waits for it."""
        self._queue.put(_Write([(insert, rows, True)]))

    async def _wait(self, write: _Write) -> list[int]:
        self._loop = asyncio.get_running_loop()
        write.future = self._loop.create_future()
        self._queue.put(write)
        return await write.future

    async def read(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await asyncio.to_thread(self.read_now, sql, params)

    def read_now(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            return list(self._reader.execute(sql, params).fetchall())

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        event = threading.Event()
        self._queue.put(_Write([], event=event))
        event.wait(30)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(30)
        self._reader.close()

    def _write_loop(self) -> None:
        connection = self._connect()
        while True:
            first = self._queue.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop and len(batch) < GROUP_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = item is None
                if item is not None:
                    batch.append(item)
            self._commit(connection, batch)
            self._resolve(batch)
            if stop:
                connection.close()
                return

    @staticmethod
    def _commit(connection: sqlite3.Connection, batch: list[_Write]) -> None:
        """One transaction for the group; if it fails, each write alone in a transaction of its
        own, so that one bad write cannot fail the others."""
        writes = [item for item in batch if item.steps]
        if not writes:
            return
        try:
            connection.execute("BEGIN")
            for item in writes:
                item.execute(connection)
            connection.execute("COMMIT")
            return
        except Exception:
            _rollback(connection)
        for item in writes:
            try:
                connection.execute("BEGIN")
                item.execute(connection)
                connection.execute("COMMIT")
            except Exception as error:
                _rollback(connection)
                item.error = error

    def _resolve(self, batch: list[_Write]) -> None:
        waiting = [item for item in batch if item.future is not None]
        for item in batch:
            if item.event is not None:
                item.event.set()
        if waiting and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_settle, waiting)


def _rollback(connection: sqlite3.Connection) -> None:
    """SQLite may have rolled back already (a full disk, RAISE(ROLLBACK)): only if still open."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _settle(batch: list[_Write]) -> None:
    for item in batch:
        future = item.future
        if future is None or future.done():
            continue
        if item.error is None:
            future.set_result(item.rowcounts)
        else:
            future.set_exception(item.error)
