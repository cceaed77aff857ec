"""Handlers of the notes API; nimbus.yaml maps each route to one of them.

Every function runs in its own instances, and instances come and go, so nothing is kept in
memory between requests except a connection: the notes live in the SQLite file named by the
NOTES_DB environment variable (relative paths are taken from this file's folder).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import Any, TypedDict

import nimbus

MAX_TITLE = 200
BUSY_TIMEOUT = 2.0  # seconds to wait for another instance's write; below the function timeout
SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
)
"""
UPDATE = """
UPDATE notes
SET title = coalesce(?, title),
    done = coalesce(?, done),
    updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
WHERE id = ?
RETURNING *
"""


class Note(TypedDict):
    id: int
    title: str
    done: bool
    created_at: str
    updated_at: str


@functools.cache
def database() -> sqlite3.Connection:
    """This instance's connection, opened on first use and reused while the instance is warm."""
    path = Path(os.environ.get("NOTES_DB", "notes.db"))
    if not path.is_absolute():
        path = Path(__file__).resolve().parent / path
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: autocommit; every statement below is a transaction of its own.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(SCHEMA)
    return db


def as_note(row: sqlite3.Row) -> Note:
    return {
        "id": row["id"],
        "title": row["title"],
        "done": bool(row["done"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def note_id(request: nimbus.Request) -> int:
    """The {id} path parameter; an id that is not a number (of at most 18 digits) names no note."""
    raw = request.params["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise nimbus.HTTPError(404, f"no note {raw!r}")
    return int(raw)


def not_found(identifier: int) -> nimbus.HTTPError:
    return nimbus.HTTPError(404, f"no note {identifier}")


def read_fields(request: nimbus.Request, *, partial: bool) -> tuple[str | None, bool | None]:
    """Title and done from a JSON object body; 400 for anything else."""
    body = request.json()  # malformed or empty JSON is a 400 already
    if not isinstance(body, dict):
        raise nimbus.BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"title", "done"})
    if unknown:
        raise nimbus.BadRequest(f"unknown fields: {', '.join(unknown)}")
    title, done = body.get("title"), body.get("done")
    if title is not None or not partial:
        if not isinstance(title, str) or not title.strip():
            raise nimbus.BadRequest("'title' must be a non-empty string")
        title = title.strip()
        if len(title) > MAX_TITLE:
            raise nimbus.BadRequest(f"'title' is longer than {MAX_TITLE} characters")
    if done is not None and not isinstance(done, bool):
        raise nimbus.BadRequest("'done' must be true or false")
    if partial and title is None and done is None:
        raise nimbus.BadRequest("nothing to update: give 'title' and/or 'done'")
    return title, done


def list_notes(request: nimbus.Request) -> dict[str, list[Note]]:
    """GET /notes[?done=true|false]"""
    done = request.query.get("done")
    if done is None:
        rows = database().execute("SELECT * FROM notes ORDER BY id").fetchall()
    elif done in ("true", "false"):
        query = "SELECT * FROM notes WHERE done = ? ORDER BY id"
        rows = database().execute(query, (done == "true",)).fetchall()
    else:
        raise nimbus.BadRequest("'done' must be true or false")
    return {"notes": [as_note(row) for row in rows]}


def create_note(request: nimbus.Request, context: nimbus.Context) -> nimbus.Response:
    """POST /notes {"title": ..., "done": false}"""
    title, done = read_fields(request, partial=False)
    row = (
        database()
        .execute("INSERT INTO notes (title, done) VALUES (?, ?) RETURNING *", (title, bool(done)))
        .fetchone()
    )
    context.logger.info("created note %d", row["id"])
    return nimbus.Response(as_note(row), status=201, headers={"location": f"/notes/{row['id']}"})


def get_note(request: nimbus.Request) -> Note:
    """GET /notes/{id}"""
    identifier = note_id(request)
    row = database().execute("SELECT * FROM notes WHERE id = ?", (identifier,)).fetchone()
    if row is None:
        raise not_found(identifier)
    return as_note(row)


def update_note(request: nimbus.Request) -> Note:
    """PUT /notes/{id} {"title": ..., "done": ...}: the fields given are replaced."""
    identifier = note_id(request)
    title, done = read_fields(request, partial=True)
    row = database().execute(UPDATE, (title, done, identifier)).fetchone()
    if row is None:
        raise not_found(identifier)
    return as_note(row)


def delete_note(request: nimbus.Request) -> None:
    """DELETE /notes/{id}: None answers 204 No Content."""
    identifier = note_id(request)
    deleted = database().execute("DELETE FROM notes WHERE id = ?", (identifier,))
    if deleted.rowcount == 0:
        raise not_found(identifier)


def health(request: nimbus.Request) -> dict[str, Any]:
    """GET /health: the database answers."""
    (count,) = database().execute("SELECT count(*) FROM notes").fetchone()
    return {"status": "ok", "notes": count}
