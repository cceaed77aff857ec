"""The platform's own records, in SQLite: invocations, logs, async jobs, dead letters of every
source, and the checkpoints of ordered consumers (streams, change feeds, object events); the
tables of `runtime_settings.py` and `platform_events.py` (the last deployment) live here too."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import msgspec

from nimbus.compute.protocol import ErrorInfo
from nimbus.ops.database import Database
from nimbus.ops.log_query import LogQuery

Outcome = Literal["success", "error", "timeout", "oom", "crash", "init_error", "throttled"]
JobStatus = Literal["queued", "running", "retrying", "succeeded", "failed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS invocations (
    id TEXT PRIMARY KEY, function TEXT NOT NULL, trigger TEXT NOT NULL, started_at REAL NOT NULL,
    duration_ms REAL NOT NULL, billed_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,
    peak_memory_mb REAL NOT NULL, cold_start INTEGER NOT NULL, init_ms REAL NOT NULL,
    outcome TEXT NOT NULL, error TEXT, job_id TEXT, trace_id TEXT);
CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations (function, started_at);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, function TEXT NOT NULL,
    request_id TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
    trace_id TEXT NOT NULL DEFAULT '', extra TEXT);
CREATE INDEX IF NOT EXISTS logs_by_function ON logs (function, seq);
CREATE INDEX IF NOT EXISTS logs_by_request ON logs (request_id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, function TEXT NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, created_at REAL NOT NULL, next_at REAL NOT NULL,
    updated_at REAL NOT NULL, result BLOB, error TEXT, request_ids TEXT NOT NULL,
    trigger TEXT NOT NULL DEFAULT 'async', traceparent TEXT);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (status)
    WHERE status IN ('queued', 'running', 'retrying');
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, function TEXT NOT NULL, payload BLOB NOT NULL, error TEXT,
    attempts INTEGER NOT NULL, job_id TEXT NOT NULL, created_at REAL NOT NULL,
    failed_at REAL NOT NULL, source TEXT NOT NULL DEFAULT 'async');
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT NOT NULL, partition TEXT NOT NULL, position INTEGER NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (consumer, partition));
CREATE TABLE IF NOT EXISTS runtime_settings (
    target TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, replaced TEXT NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (target, field));
CREATE TABLE IF NOT EXISTS last_deployment (
    id INTEGER PRIMARY KEY CHECK (id = 1), spec TEXT NOT NULL, applied_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    span INTEGER NOT NULL, start INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    metric TEXT NOT NULL, quantity REAL NOT NULL,
    PRIMARY KEY (span, start, kind, name, metric)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_by_start ON usage (start);
CREATE TABLE IF NOT EXISTS budget_alerts (
    budget TEXT NOT NULL, period_start REAL NOT NULL, amount REAL NOT NULL, spent REAL NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (budget, period_start, amount));
"""
MIGRATIONS = [
    # 1: dead letters and jobs of every trigger, not only of asynchronous invocations
    "ALTER TABLE jobs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'async';"
    "ALTER TABLE dead_letters ADD COLUMN source TEXT NOT NULL DEFAULT 'async';",
    # 2: the trace context of what caused an asynchronous invocation
    "ALTER TABLE jobs ADD COLUMN traceparent TEXT;",
    # 3: structured logs: the trace of the invocation, and the fields given with `extra=`
    "ALTER TABLE logs ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE logs ADD COLUMN extra TEXT;",
    # 4: the trace an invocation's spans were recorded in
    "ALTER TABLE invocations ADD COLUMN trace_id TEXT;",
]


class InvocationRecord(msgspec.Struct, kw_only=True):
    id: str
    function: str
    trigger: str
    started_at: float
    duration_ms: float
    billed_ms: int
    memory_mb: int
    peak_memory_mb: float
    cold_start: bool
    init_ms: float
    outcome: Outcome
    error: ErrorInfo | None = None
    job_id: str | None = None
    trace_id: str | None = None
    """The trace its spans are recorded in; None when they are not (not sampled, or off)."""


class LogEntry(msgspec.Struct, kw_only=True):
    seq: int
    time: float
    function: str
    request_id: str
    level: str
    message: str
    trace_id: str = ""
    """The trace of the invocation that logged it (empty outside of one)."""
    extra: dict[str, Any] = {}
    """The fields a `logging` call gave with `extra=`."""


class Job(msgspec.Struct, kw_only=True):
    """An asynchronous invocation: accepted durably, run, retried, then done or dead-lettered."""

    id: str
    function: str
    payload: bytes
    status: JobStatus
    attempts: int
    created_at: float
    next_at: float
    updated_at: float
    result: bytes | None = None
    error: ErrorInfo | None = None
    request_ids: list[str] = []
    trigger: str = "async"
    """What caused it: `async` (an asynchronous invoke), or `topic:NAME`, `bucket:NAME`, ..."""
    traceparent: str | None = None


class DeadLetter(msgspec.Struct, kw_only=True):
    id: str
    function: str
    payload: bytes
    error: ErrorInfo | None
    attempts: int
    job_id: str
    created_at: float
    failed_at: float
    source: str = "async"
    """The trigger the event came from (`async`, `queue:NAME`, `stream:NAME`, ...)."""


def _error_json(error: ErrorInfo | None) -> str | None:
    return None if error is None else msgspec.json.encode(error).decode()


def _error_from(text: str | None) -> ErrorInfo | None:
    return None if text is None else msgspec.json.decode(text, type=ErrorInfo)


INSERT_INVOCATIONS = "INSERT OR REPLACE INTO invocations VALUES"
INSERT_LOGS = (
    "INSERT INTO logs (time, function, request_id, level, message, trace_id, extra) VALUES"
)
FLUSH_DELAY = 0.05  # seconds records and logs gather on the loop before one batched write


class Store:
    def __init__(self, data_dir: Path, *, fsync: bool = False) -> None:
        _migrate(data_dir / "platform.db")
        schema = f"{SCHEMA}\nPRAGMA user_version = {len(MIGRATIONS)};"
        self.db = Database(data_dir / "platform.db", schema, fsync=fsync)
        self._records: list[tuple[Any, ...]] = []
        self._logs: list[tuple[Any, ...]] = []
        self._flush_scheduled = False

    def close(self) -> None:
        self.flush()
        self.db.close()

    # invocations and logs: gathered on the event loop, then written in one statement run
    def flush(self) -> None:
        self._flush_scheduled = False
        if self._records:
            self.db.submit_rows(INSERT_INVOCATIONS, self._records)
            self._records = []
        if self._logs:
            self.db.submit_rows(INSERT_LOGS, self._logs)
            self._logs = []

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    async def caught_up(self) -> None:
        """Make every record and log taken so far visible to the next read."""
        self.flush()
        await self.db.barrier()

    def record_invocation(self, record: InvocationRecord) -> None:
        error = _error_json(record.error)
        self._records.append(
            (record.id, record.function, record.trigger, record.started_at, record.duration_ms,
             record.billed_ms, record.memory_mb, record.peak_memory_mb, int(record.cold_start),
             record.init_ms, record.outcome, error, record.job_id, record.trace_id)
        )  # fmt: skip
        self._schedule_flush()

    def add_log(
        self, time: float, function: str, request_id: str, level: str, message: str,
        trace_id: str = "", extra: str | None = None,
    ) -> None:  # fmt: skip
        """`extra`: a JSON object of the fields given with the log call, or None."""
        self._logs.append((time, function, request_id, level, message, trace_id, extra))
        self._schedule_flush()

    async def invocations(
        self, function: str | None, limit: int, request_id: str | None = None
    ) -> list[InvocationRecord]:
        await self.caught_up()
        where, params = _filters(function=function, id=request_id)
        rows = await self.db.read(
            f"SELECT * FROM invocations {where} ORDER BY started_at DESC LIMIT ?", (*params, limit)
        )
        return [_invocation(row) for row in rows]

    async def logs(self, query: LogQuery, after: int, limit: int) -> list[LogEntry]:
        """The latest `limit` lines after `after` that `query` wants, oldest first."""
        await self.caught_up()
        conditions, params = query.where()
        where = " AND ".join([*conditions, "seq > ?"])
        rows = await self.db.read(
            f"SELECT * FROM logs WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, after, limit)
        )
        return [_log_entry(row) for row in reversed(rows)]

    # async jobs: acceptance waits for the commit
    async def put_job(self, job: Job, *, durable: bool) -> None:
        sql = "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
        params = (
            job.id,
            job.function,
            job.payload,
            job.status,
            job.attempts,
            job.created_at,
            job.next_at,
            job.updated_at,
            job.result,
            _error_json(job.error),
            msgspec.json.encode(job.request_ids).decode(),
            job.trigger,
            job.traceparent,
        )
        if durable:
            await self.db.write(sql, params)
        else:
            self.db.submit(sql, params)

    async def job(self, job_id: str) -> Job | None:
        rows = await self.db.read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    async def pending_jobs(self) -> list[Job]:
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running', 'retrying') "
            "ORDER BY created_at"
        )
        return [_job(row) for row in rows]

    # dead letters
    async def add_dead_letter(self, letter: DeadLetter, job: Job | None = None) -> None:
        """Record the dead letter; its job's final state is committed no later than it."""
        if job is not None:
            await self.put_job(job, durable=False)
        await self.db.write(
            "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?,?,?)",
            (
                letter.id,
                letter.function,
                letter.payload,
                _error_json(letter.error),
                letter.attempts,
                letter.job_id,
                letter.created_at,
                letter.failed_at,
                letter.source,
            ),
        )

    async def dead_letters(self, function: str | None, limit: int) -> list[DeadLetter]:
        where, params = _filters(function=function)
        rows = await self.db.read(
            f"SELECT * FROM dead_letters {where} ORDER BY failed_at DESC LIMIT ?", (*params, limit)
        )
        return [_dead_letter(row) for row in reversed(rows)]  # the latest, oldest first

    async def dead_letter(self, letter_id: str) -> DeadLetter | None:
        rows = await self.db.read("SELECT * FROM dead_letters WHERE id = ?", (letter_id,))
        return _dead_letter(rows[0]) if rows else None

    async def dead_letter_counts(self) -> dict[str, int]:
        """How many dead letters each function has (for the DLQ-depth metric)."""
        rows = await self.db.read("SELECT function, count(*) FROM dead_letters GROUP BY function")
        return {function: count for function, count in rows}

    async def redrive_dead_letter(self, letter_id: str, job_id: str, now: float) -> bool:
        """Turn the dead letter into a new queued job, atomically: False if it is gone (another
        re-drive took it), and a crash can neither lose it nor keep both."""
        inserted, _ = await self.db.transaction(
            [
                (
                    "INSERT INTO jobs SELECT ?, function, payload, 'queued', 0, ?, ?, ?, "
                    "NULL, NULL, '[]', source, NULL FROM dead_letters WHERE id = ?",
                    (job_id, now, now, now, letter_id),
                ),
                ("DELETE FROM dead_letters WHERE id = ?", (letter_id,)),
            ]
        )
        return inserted == 1

    # checkpoints of ordered consumers
    async def save_checkpoint(self, consumer: str, partition: str, position: int) -> None:
        """Committed before it returns: after a crash, reading resumes after `position`."""
        await self.db.write(
            "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)",
            (consumer, partition, position, time.time()),
        )

    async def checkpoints(self, consumer: str) -> dict[str, int]:
        rows = await self.db.read(
            "SELECT partition, position FROM checkpoints WHERE consumer = ?", (consumer,)
        )
        return {row["partition"]: row["position"] for row in rows}


def _filters(**conditions: Any) -> tuple[str, tuple[Any, ...]]:
    used = {name: value for name, value in conditions.items() if value is not None}
    if not used:
        return "", ()
    return "WHERE " + " AND ".join(f"{name} = ?" for name in used), tuple(used.values())


def _invocation(row: sqlite3.Row) -> InvocationRecord:
    fields = dict(row)
    fields["cold_start"] = bool(fields["cold_start"])
    fields["error"] = _error_from(fields["error"])
    return InvocationRecord(**fields)


def _log_entry(row: sqlite3.Row) -> LogEntry:
    fields = dict(row)
    fields["extra"] = msgspec.json.decode(fields["extra"]) if fields["extra"] else {}
    return LogEntry(**fields)


def _job(row: sqlite3.Row) -> Job:
    fields = dict(row)
    fields["error"] = _error_from(fields["error"])
    fields["request_ids"] = msgspec.json.decode(fields["request_ids"])
    return Job(**fields)


def _dead_letter(row: sqlite3.Row) -> DeadLetter:
    fields = dict(row)
    fields["error"] = _error_from(fields["error"])
    return DeadLetter(**fields)


def _migrate(path: Path) -> None:
    """Bring a data dir written by an earlier version up to this schema (PRAGMA user_version)."""
    if not path.exists():
        return
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        fresh = not connection.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone()
        if not fresh:
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                connection.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
    finally:
        connection.close()
