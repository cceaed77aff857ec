"""The SQLite writer: a failing write fails alone, the writer thread lives on, and a
transaction is all or nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from nimbus.ops.database import Database, Rows

SCHEMA = """
CREATE TABLE t (v TEXT);
CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.v = 'bad' BEGIN SELECT RAISE(ROLLBACK, 'no'); END;
"""


def test_a_failing_write_fails_alone_and_the_writer_survives(tmp_path: Path) -> None:
    """RAISE(ROLLBACK) ends the transaction inside SQLite, as a full disk does."""
    database = Database(tmp_path / "t.db", SCHEMA)

    async def scenario() -> list[object]:
        writes = [database.write("INSERT INTO t VALUES (?)", (v,)) for v in ("a", "bad", "b")]
        results = await asyncio.gather(*writes, return_exceptions=True)
        results.append(await database.write("INSERT INTO t VALUES ('c')"))
        return results

    results = asyncio.run(scenario())
    assert results[0] == 1 and results[2] == 1 and results[3] == 1
    assert isinstance(results[1], sqlite3.Error)
    assert sorted(row["v"] for row in database.read_now("SELECT v FROM t")) == ["a", "b", "c"]
    database.close()


def test_a_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    database = Database(tmp_path / "t.db", SCHEMA)

    async def scenario() -> None:
        with pytest.raises(sqlite3.Error):
            await database.transaction(
                [("INSERT INTO t VALUES ('x')", ()), ("INSERT INTO t VALUES ('bad')", ())]
            )
        assert await database.transaction([("INSERT INTO t VALUES ('y')", ())]) == [1]

    asyncio.run(scenario())
    assert [row["v"] for row in database.read_now("SELECT v FROM t")] == ["y"]
    database.close()


def test_many_rows_are_inserted_across_statements(tmp_path: Path) -> None:
    """More rows than one statement may carry parameters for are split, none lost."""
    columns = ", ".join(f"c{i}" for i in range(13))
    database = Database(tmp_path / "t.db", f"CREATE TABLE wide ({columns});")
    rows = [tuple(range(n, n + 13)) for n in range(6000)]
    database.submit_rows("INSERT INTO wide VALUES", rows)
    database.flush()
    [count] = database.read_now("SELECT count(*) AS n, sum(c0) AS s FROM wide")
    assert (count["n"], count["s"]) == (6000, sum(range(6000)))
    database.close()


def test_a_transaction_inserts_many_rows_in_order_all_or_none(tmp_path: Path) -> None:
    database = Database(tmp_path / "t.db", SCHEMA)
    many = [(str(n),) for n in range(40000)]  # more parameters than one statement may hold

    async def scenario() -> tuple[list[int], BaseException | None]:
        counts = await database.transaction(
            [("INSERT INTO t VALUES ('first')", ()), Rows("INSERT INTO t VALUES", many)]
        )
        try:
            await database.transaction(
                [
                    Rows("INSERT INTO t VALUES", [("x",), ("y",)]),
                    ("INSERT INTO t VALUES ('bad')", ()),
                ]
            )
        except sqlite3.Error as error:
            return counts, error
        return counts, None

    counts, error = asyncio.run(scenario())
    assert counts == [1, 40000]
    assert error is not None  # the second transaction failed as a whole: x and y are not there
    rows = database.read_now("SELECT v FROM t ORDER BY rowid")
    database.close()
    assert [row[0] for row in rows[:2]] == ["first", "0"]
    assert len(rows) == 40001
