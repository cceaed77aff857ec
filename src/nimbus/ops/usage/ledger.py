"""Where usage is kept: one row per hour (or day), kind, name and metric, in platform.db.

Bounded by rollups: hourly rows older than HOURLY_DAYS are summed into one row per UTC day,
and daily rows older than DAILY_DAYS are dropped. A query counts every row that overlaps its
window whole, so usage is resolved to the hour (to the day, past HOURLY_DAYS).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from nimbus.ops.database import Database

HOUR = 3600
DAY = 86400
HOURLY_DAYS = 7
DAILY_DAYS = 400

Key = tuple[str, str]
"""(kind, name): `("function", "resize")`, `("queue", "orders")`."""
Totals = dict[Key, dict[str, float]]
"""Per kind and name, each metric's quantity."""
Row = tuple[int, int, str, str, str, float]
"""(span, start, kind, name, metric, quantity): the usage of one hour or day."""

ADD = (
    "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (span, start, kind, name, metric) "
    "DO UPDATE SET quantity = quantity + excluded.quantity"
)
ROLL_UP = (
    f"INSERT INTO usage SELECT {DAY}, start - start % {DAY}, kind, name, metric, SUM(quantity) "
    f"FROM usage WHERE span = {HOUR} AND start < ? GROUP BY 2, 3, 4, 5 "
    "ON CONFLICT (span, start, kind, name, metric) "
    "DO UPDATE SET quantity = quantity + excluded.quantity"
)
TOTALS = (
    "SELECT kind, name, metric, SUM(quantity) AS quantity FROM usage "
    "WHERE start + span > ? AND start < ? GROUP BY kind, name, metric"
)


def hour_of(time: float) -> int:
    return int(time // HOUR) * HOUR


class Ledger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, rows: Iterable[Row]) -> None:
        """Add each row's quantity to what its hour already holds (committed when it returns)."""
        statements = [(ADD, row) for row in rows]
        if statements:
            await self._db.transaction(statements)

    async def totals(self, since: float, until: float) -> Totals:
        """Every metric's sum over the hours (days) that overlap [since, until)."""
        totals: Totals = defaultdict(dict)
        for row in await self._db.read(TOTALS, (since, until)):
            totals[(row["kind"], row["name"])][row["metric"]] = row["quantity"]
        return dict(totals)

    async def roll_up(self, now: float) -> None:
        """Sum hourly rows of whole days older than HOURLY_DAYS into daily rows, and drop
        daily rows older than DAILY_DAYS; totals over whole days do not change."""
        cutoff = int(now // DAY) * DAY - HOURLY_DAYS * DAY
        await self._db.transaction(
            [
                (ROLL_UP, (cutoff,)),
                ("DELETE FROM usage WHERE span = ? AND start < ?", (HOUR, cutoff)),
                (
                    "DELETE FROM usage WHERE span = ? AND start < ?",
                    (DAY, cutoff - DAILY_DAYS * DAY),
                ),
            ]
        )
