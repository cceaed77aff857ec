"""Calendar periods in UTC, as AWS Budgets counts them: a day from midnight, a month from the
first at midnight."""

from __future__ import annotations

from datetime import UTC, datetime

from nimbus.spec.budgets import Period


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    """The start and end (epoch seconds) of the `period` holding `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else (start.replace(month=start.month + 1))
    )
    return start.timestamp(), following.timestamp()
