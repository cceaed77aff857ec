"""SQLite in WAL mode, with one writer thread that commits in groups off the event loop.

`write` resolves once the statement is committed (an acknowledged write survives `kill -9` of
the platform); `submit` queues a write without waiting (records, logs). Reads use their own
connection in a worker thread.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Params = Sequence[Any]
GROUP_LIMIT = 1000


@dataclass(slots=True)
class _Write:
    sql: str | None  # None: nothing to execute, only a point to wait for
    params: Params = ()
    many: bool = False  # params is a list of rows for executemany
    future: asyncio.Future[None] | None = None
    event: threading.Event | None = None
    error: sqlite3.Error | None = None

    def execute(self, connection: sqlite3.Connection) -> None:
        if self.sql is None:
            return
        if self.many:
            connection.executemany(self.sql, self.params)
        else:
            connection.execute(self.sql, self.params)


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

    async def write(self, sql: str, params: Params = ()) -> None:
        """Execute and wait until committed."""
        self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Write(sql, params, future=future))
        await future

    def submit(self, sql: str, params: Params = ()) -> None:
        """Execute soon; nobody waits for it."""
        self._queue.put(_Write(sql, params))

    def submit_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Execute for each row soon, in one statement run; nobody waits for it."""
        self._queue.put(_Write(sql, rows, many=True))

    async def barrier(self) -> None:
        """Wait until every write queued before this call is committed (read your writes)."""
        self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Write(None, future=future))
        await future

    async def read(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await asyncio.to_thread(self.read_now, sql, params)

    def read_now(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            return list(self._reader.execute(sql, params).fetchall())

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        event = threading.Event()
        self._queue.put(_Write(None, event=event))
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
        """One transaction for the group; if it fails, each statement alone, so that one bad
        write cannot fail the others."""
        statements = [item for item in batch if item.sql is not None]
        if not statements:
            return
        try:
            connection.execute("BEGIN")
            for item in statements:
                item.execute(connection)
            connection.execute("COMMIT")
            return
        except sqlite3.Error:
            connection.execute("ROLLBACK")
        for item in statements:
            try:
                item.execute(connection)
            except sqlite3.Error as error:
                item.error = error

    def _resolve(self, batch: list[_Write]) -> None:
        waiting = [item for item in batch if item.future is not None]
        for item in batch:
            if item.event is not None:
                item.event.set()
        if waiting and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_settle, waiting)


def _settle(batch: list[_Write]) -> None:
    for item in batch:
        future = item.future
        if future is None or future.done():
            continue
        if item.error is None:
            future.set_result(None)
        else:
            future.set_exception(item.error)
