"""Logs are kept within a size: past `limit` bytes, the oldest lines are dropped first.

Cheap by construction: the size of what was kept is read once at start, then every
CHECK_INTERVAL only the lines logged since the last check are summed (a range of the primary
key). When the total passes the limit, the oldest lines are deleted down to LOW_WATER of it,
so that trimming is rare. A line's size is the bytes of its text fields plus LINE_OVERHEAD
(about what SQLite adds per row); the file itself does not shrink, its free pages are reused.
"""

from __future__ import annotations

import asyncio

from nimbus.ops.logs import LogSink
from nimbus.ops.store import Store

CHECK_INTERVAL = 2.0
LOW_WATER = 0.9
LINE_OVERHEAD = 32
SIZE = (
    "length(CAST(message AS BLOB)) + length(CAST(function AS BLOB)) + length(request_id) "
    "+ length(level) + length(trace_id) + COALESCE(length(CAST(extra AS BLOB)), 0) "
    f"+ {LINE_OVERHEAD}"
)
SINCE = f"SELECT COALESCE(SUM({SIZE}), 0) AS size, MAX(seq) AS last FROM logs WHERE seq > ?"
CUTOFF = (
    f"SELECT seq, running FROM (SELECT seq, SUM({SIZE}) OVER (ORDER BY seq) AS running "
    "FROM logs) "
    "WHERE running >= ? LIMIT 1"
)


class LogRetention:
    def __init__(self, store: Store, limit: int, logs: LogSink) -> None:
        self._store = store
        self._limit = limit
        self._logs = logs
        self.kept = 0
        """Bytes of log lines kept, as of the last check."""
        self._last = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def check(self) -> None:
        """Count what was logged since the last check; trim if the logs are over the limit."""
        await self._store.caught_up()
        row = (await self._store.db.read(SINCE, (self._last,)))[0]
        self.kept += row["size"]
        self._last = row["last"] if row["last"] is not None else self._last
        if self.kept > self._limit:
            await self._trim(self.kept - int(self._limit * LOW_WATER))

    async def _trim(self, excess: int) -> None:
        """Delete the oldest lines that hold at least `excess` bytes."""
        rows = await self._store.db.read(CUTOFF, (excess,))
        if not rows:  # the lines counted are gone already: count afresh
            self.kept, self._last = 0, 0
            return
        await self._store.db.write("DELETE FROM logs WHERE seq <= ?", (rows[0]["seq"],))
        self.kept -= rows[0]["running"]

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as error:
                self._logs.platform(f"the log size check failed: {error!r}")
            await asyncio.sleep(CHECK_INTERVAL)
