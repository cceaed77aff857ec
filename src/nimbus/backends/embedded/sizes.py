"""What each resource of the embedded backend stores, in bytes, for usage metering.

The size of a resource is the bytes of what its users put in it: message bodies and
attributes (a queue's dead letters too), event data, record keys and data, item data, object
bytes. SQLite's own overhead is not counted. Each kind's file is read on a read-only
connection of its own, in a worker thread: one grouped scan per kind, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

SIZES = {
    "queue.db": (
        "queue",
        "SELECT q.name, SUM(s) FROM queues q JOIN ("
        "SELECT queue_id, length(CAST(body AS BLOB)) + COALESCE(length(attributes), 0) AS s "
        "FROM messages UNION ALL "
        "SELECT queue_id, length(CAST(body AS BLOB)) + COALESCE(length(attributes), 0) "
        "FROM dead_letters) m ON m.queue_id = q.id GROUP BY q.name",
    ),
    "topic.db": (
        "topic",
        "SELECT topic, SUM(length(data) + length(attributes)) FROM events GROUP BY topic",
    ),
    "stream.db": (
        "stream",
        "SELECT stream, SUM(length(data) + length(CAST(key AS BLOB))) FROM records GROUP BY stream",
    ),
    "table.db": ("table", "SELECT tbl, SUM(length(data)) FROM items GROUP BY tbl"),
    "bucket.db": ("bucket", "SELECT bucket, SUM(size) FROM objects GROUP BY bucket"),
}


class EmbeddedSizes:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir.resolve()  # a file: URI needs an absolute path (.nimbus)

    async def measure(self) -> dict[tuple[str, str], int]:
        return await asyncio.to_thread(self._measure)

    def _measure(self) -> dict[tuple[str, str], int]:
        sizes: dict[tuple[str, str], int] = {}
        for file, (kind, sql) in SIZES.items():
            path = self._data_dir / file
            if not path.exists():
                continue
            connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                connection.execute("PRAGMA busy_timeout=5000")
                for name, size in connection.execute(sql):
                    sizes[(kind, name)] = int(size or 0)
            finally:
                connection.close()
        return sizes
