"""The records of accepted webhook deliveries (`webhooks.db`): which job runs each, its status
token, the progress its functions reported, its outcome and its callback's state.

A delivery is committed before its job, and both before the sender gets its 202; the callback's
state is durable, so a restart resumes what was not delivered yet. Finished deliveries are
forgotten after their webhook's retention (`Webhooks.sweep`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

import msgspec

from nimbus.ops.database import Database

Outcome = Literal["succeeded", "failed"]
CallbackState = Literal["none", "waiting", "pending", "delivered", "failed"]
"""none: no callback; waiting: the work goes on; pending: to send (again at callback_next_at);
delivered / failed: for good."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    token TEXT PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, function TEXT NOT NULL,
    path TEXT NOT NULL, provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
    accepted_at REAL NOT NULL, completion TEXT NOT NULL, percent REAL, outcome TEXT,
    result BLOB, error TEXT, finished_at REAL, callback_url TEXT,
    callback_state TEXT NOT NULL, callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_next_at REAL, callback_error TEXT);
CREATE INDEX IF NOT EXISTS deliveries_unsettled ON deliveries (callback_state)
    WHERE callback_state IN ('waiting', 'pending');
CREATE INDEX IF NOT EXISTS deliveries_age ON deliveries (path, accepted_at, token);
CREATE TABLE IF NOT EXISTS delivery_steps (
    token TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, function TEXT NOT NULL,
    time REAL NOT NULL, percent REAL, detail BLOB, PRIMARY KEY (token, name));
"""


class Delivery(msgspec.Struct, kw_only=True):
    """One accepted delivery: `token` names its status URL and is its progress permission."""

    token: str
    job_id: str
    function: str
    path: str
    provider: str
    delivery_id: str
    accepted_at: float
    completion: str
    percent: float | None = None
    outcome: Outcome | None = None
    result: bytes | None = None
    """JSON of Progress.finish's result."""
    error: str | None = None
    finished_at: float | None = None
    callback_url: str | None = None
    callback_state: CallbackState = "none"
    callback_attempts: int = 0
    callback_next_at: float | None = None
    callback_error: str | None = None


class Step(msgspec.Struct, kw_only=True):
    """A step of the work a delivery started, as a function reported it (`Progress.step`)."""

    step: str
    function: str
    time: float
    percent: float | None = None
    detail: msgspec.Raw | None = None


class Deliveries:
    """The deliveries and their steps, in `webhooks.db`."""

    def __init__(self, data_dir: Path, *, fsync: bool = False) -> None:
        self.db = Database(data_dir / "webhooks.db", SCHEMA, fsync=fsync)

    def close(self) -> None:
        self.db.close()

    async def add(self, delivery: Delivery) -> Delivery:
        """Store the delivery (committed before it returns), unless one with its job is stored
        already: that one is returned instead."""
        fields = msgspec.structs.astuple(delivery)
        marks = ",".join("?" * len(fields))
        while not await self.db.write(f"INSERT OR IGNORE INTO deliveries VALUES ({marks})", fields):
            stored = await self.by_job(delivery.job_id)
            if stored is not None:
                return stored  # else the sweep forgot it in between: insert it again
        return delivery

    async def by_job(self, job_id: str) -> Delivery | None:
        return _one(await self.db.read("SELECT * FROM deliveries WHERE job_id = ?", (job_id,)))

    async def by_token(self, token: str) -> Delivery | None:
        return _one(await self.db.read("SELECT * FROM deliveries WHERE token = ?", (token,)))

    async def unsettled(self) -> list[Delivery]:
        """Deliveries whose callback is still to be sent, or waits for the work to end."""
        rows = await self.db.read(
            "SELECT * FROM deliveries WHERE callback_state IN ('waiting', 'pending')"
        )
        return [_delivery(row) for row in rows]

    async def paths(self) -> list[str]:
        """The webhook paths that have deliveries."""
        return [row[0] for row in await self.db.read("SELECT DISTINCT path FROM deliveries")]

    async def settled_before(
        self, path: str, before: float, after: tuple[float, str], limit: int
    ) -> list[Delivery]:
        """Up to `limit` deliveries of `path` accepted before `before` whose callback is not
        waiting or pending, in order of acceptance from just `after` (accepted_at, token)."""
        rows = await self.db.read(
            "SELECT * FROM deliveries WHERE path = ? AND accepted_at < ? "
            "AND callback_state NOT IN ('waiting', 'pending') AND (accepted_at, token) > (?, ?) "
            "ORDER BY accepted_at, token LIMIT ?",
            (path, before, *after, limit),
        )
        return [_delivery(row) for row in rows]

    async def forget(self, tokens: list[str]) -> None:
        """Delete these deliveries and their steps."""
        if not tokens:
            return
        marks = ",".join("?" * len(tokens))
        await self.db.transaction(
            [
                (f"DELETE FROM delivery_steps WHERE token IN ({marks})", tuple(tokens)),
                (f"DELETE FROM deliveries WHERE token IN ({marks})", tuple(tokens)),
            ]
        )

    async def steps(self, token: str) -> list[Step]:
        rows = await self.db.read(
            "SELECT name AS step, function, time, percent, detail FROM delivery_steps "
            "WHERE token = ? ORDER BY seq",
            (token,),
        )
        return [_step(row) for row in rows]

    async def step_count(self, token: str, name: str) -> tuple[int, bool]:
        """How many steps the delivery has, and whether `name` is one of them."""
        rows = await self.db.read(
            "SELECT COUNT(*), COALESCE(SUM(name = ?), 0) FROM delivery_steps WHERE token = ?",
            (name, token),
        )
        return rows[0][0], bool(rows[0][1])

    async def report_step(self, token: str, step: Step) -> None:
        """Add the step (or update the one of that name, keeping its place); `percent` of the
        whole, when given, becomes the delivery's."""
        detail = None if step.detail is None else bytes(step.detail)
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO delivery_steps VALUES (?, (SELECT COUNT(*) FROM delivery_steps "
                "WHERE token = ?), ?, ?, ?, ?, ?) ON CONFLICT (token, name) DO UPDATE SET "
                "function = excluded.function, time = excluded.time, "
                "percent = excluded.percent, detail = excluded.detail",
                (token, token, step.step, step.function, step.time, step.percent, detail),
            )
        ]
        if step.percent is not None:
            statements.append(
                ("UPDATE deliveries SET percent = ? WHERE token = ?", (step.percent, token))
            )
        await self.db.transaction(statements)

    async def finish(
        self, token: str, outcome: Outcome, result: bytes | None, error: str | None, now: float
    ) -> bool:
        """Record the work's outcome; False (nothing changed) if it had one already."""
        changed = await self.db.write(
            "UPDATE deliveries SET outcome = ?, result = ?, error = ?, finished_at = ? "
            "WHERE token = ? AND outcome IS NULL",
            (outcome, result, error, now, token),
        )
        return changed == 1

    async def claim_callback(self, token: str, now: float) -> bool:
        """The work has ended: its callback becomes due, once (True for the caller that made it
        so)."""
        changed = await self.db.write(
            "UPDATE deliveries SET callback_state = 'pending', callback_next_at = ? "
            "WHERE token = ? AND callback_state = 'waiting'",
            (now, token),
        )
        return changed == 1

    async def callback_attempted(
        self,
        token: str,
        state: CallbackState,
        attempts: int,
        next_at: float | None,
        error: str | None,
    ) -> None:
        await self.db.write(
            "UPDATE deliveries SET callback_state = ?, callback_attempts = ?, "
            "callback_next_at = ?, callback_error = ? WHERE token = ?",
            (state, attempts, next_at, error, token),
        )


def _one(rows: list[sqlite3.Row]) -> Delivery | None:
    return _delivery(rows[0]) if rows else None


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(**dict(row))


def _step(row: sqlite3.Row) -> Step:
    fields = dict(row)
    detail = fields.pop("detail")
    return Step(**fields, detail=None if detail is None else msgspec.Raw(detail))
