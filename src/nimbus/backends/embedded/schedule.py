"""Schedule state in SQLite: one row per schedule, and a claim is one conditional UPDATE.

The UPDATE sets `last_fired` only if the tick is later than it (or, never fired, than the
origin), so two claimers of a tick — two tasks, or two platforms on one data dir — cannot both
win, and a tick fired before a restart is not fired again after it.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from nimbus.errors import InvalidRequest, NotFound
from nimbus.ops.database import Database
from nimbus.services.schedule import ScheduleState, parse

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    expression TEXT NOT NULL,
    timezone TEXT NOT NULL,
    origin REAL NOT NULL,
    last_fired REAL
) WITHOUT ROWID;
"""
COLUMNS = "id, expression, timezone, origin, last_fired"
MAX_ID_LENGTH = 512


class EmbeddedSchedules:
    """The `Schedules` interface on `data_dir / "schedule.db"`."""

    def __init__(
        self, data_dir: Path, *, fsync: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = Database(data_dir / "schedule.db", SCHEMA, fsync=fsync)
        self._clock = clock

    async def register(
        self, schedule_id: str, expression: str, timezone: str = "UTC"
    ) -> ScheduleState:
        _check_id(schedule_id)
        parse(expression, timezone)
        origin = float(math.floor(self._clock()))  # whole seconds: rate ticks stay round
        await self._db.write(
            f"INSERT INTO schedules ({COLUMNS}) VALUES (?, ?, ?, ?, NULL) "
            "ON CONFLICT (id) DO UPDATE SET expression = excluded.expression, "
            "timezone = excluded.timezone, origin = excluded.origin, last_fired = NULL "
            "WHERE expression != excluded.expression OR timezone != excluded.timezone",
            (schedule_id, expression, timezone, origin),
        )
        return await self.state(schedule_id)

    async def claim(self, schedule_id: str, tick: float) -> bool:
        if not math.isfinite(tick):
            raise InvalidRequest(f"tick must be a finite time, not {tick!r}")
        changed = await self._db.write(
            "UPDATE schedules SET last_fired = ? WHERE id = ? AND ? > COALESCE(last_fired, origin)",
            (tick, schedule_id, tick),
        )
        if changed:
            return True
        await self.state(schedule_id)  # NotFound for an unknown schedule
        return False

    async def state(self, schedule_id: str) -> ScheduleState:
        rows = await self._db.read(f"SELECT {COLUMNS} FROM schedules WHERE id = ?", (schedule_id,))
        if not rows:
            raise NotFound(f"no schedule {schedule_id!r}")
        return _state(rows[0])

    async def remove(self, schedule_id: str) -> bool:
        return await self._db.write("DELETE FROM schedules WHERE id = ?", (schedule_id,)) > 0

    async def list(self) -> builtins.list[ScheduleState]:
        rows = await self._db.read(f"SELECT {COLUMNS} FROM schedules ORDER BY id")
        return [_state(row) for row in rows]

    async def close(self) -> None:
        await asyncio.to_thread(self._db.close)


def _check_id(schedule_id: str) -> None:
    if not schedule_id or len(schedule_id) > MAX_ID_LENGTH:
        raise InvalidRequest(
            f"schedule id {schedule_id[:40]!r} must have 1 to {MAX_ID_LENGTH} characters"
        )


def _state(row: sqlite3.Row) -> ScheduleState:
    return ScheduleState(
        id=row["id"],
        expression=row["expression"],
        timezone=row["timezone"],
        origin=row["origin"],
        last_fired=row["last_fired"],
    )
