"""Schedule expressions and missed-tick policies: pure functions, checked against hand-computed
times and, by hypothesis, against a minute-by-minute model of the wall clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nimbus.errors import InvalidRequest
from nimbus.services.schedule import (
    COUNT_LIMIT,
    TOLERANCE,
    Expression,
    due_ticks,
    parse,
)
from nimbus.spec.resources import MissedTicks

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
SECONDS_A_DAY = 86400


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def at(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> float:
    wall = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)
    return wall.timestamp()


def ticks(expression: Expression, start: float, count: int) -> list[float]:
    return expression.ticks_between(start, float("inf"), count)


# --- rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("rate(1 second)", 1.0),
        ("rate(30 seconds)", 30.0),
        ("rate(1 minute)", MINUTE),
        ("rate(5 minutes)", 5 * MINUTE),
        ("rate(1 hour)", HOUR),
        ("rate(2 hours)", 2 * HOUR),
        ("rate(1 day)", DAY),
        ("rate(7 days)", 7 * DAY),
        ("  rate( 15   minutes )  ", 15 * MINUTE),
    ],
)
def test_rate_ticks_every_period_after_its_origin(text: str, period: float) -> None:
    expression = parse(text, "UTC", origin=1000.0)
    assert ticks(expression, 0.0, 3) == [1000 + period, 1000 + 2 * period, 1000 + 3 * period]


def test_rate_ticks_are_aligned_to_the_origin_not_to_the_question() -> None:
    rate = parse("rate(5 minutes)", "UTC", origin=1000.0)
    assert rate.next_after(999.0) == 1300.0  # the origin itself is not a tick
    assert rate.next_after(1000.0) == 1300.0
    assert rate.next_after(1299.5) == 1300.0
    assert rate.next_after(1300.0) == 1600.0  # strictly after
    assert rate.latest_at_or_before(1299.0) is None
    assert rate.latest_at_or_before(1300.0) == 1300.0
    assert rate.latest_at_or_before(1899.0) == 1600.0
    assert rate.ticks_between(1000.0, 2200.0, 10) == [1300.0, 1600.0, 1900.0, 2200.0]
    assert rate.ticks_between(1000.0, 2200.0, 2) == [1300.0, 1600.0]
    assert rate.ticks_between(1300.0, 1599.0, 10) == []


def test_a_rate_ignores_dst_a_day_is_24_hours() -> None:
    origin = at("Europe/Berlin", 2024, 3, 30, 12, 0)
    rate = parse("rate(1 day)", "Europe/Berlin", origin=origin)
    assert ticks(rate, origin, 2) == [origin + DAY, origin + 2 * DAY]
    assert datetime.fromtimestamp(origin + DAY, ZoneInfo("Europe/Berlin")).hour == 13


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("rate(1 minutes)", "write 'minute'"),
        ("rate(5 minute)", "write 'minutes'"),
        ("rate(1 days)", "write 'day'"),
        ("rate(0 minutes)", "whole number"),
        ("rate(-5 minutes)", "whole number"),
        ("rate(1.5 hours)", "whole number"),
        ("rate(05 minutes)", "whole number"),
        ("rate(1000001 days)", "whole number"),
        ("rate(1 seconds)", "write 'second'"),
        ("rate(2 weeks)", "second(s), minute(s), hour(s) or day(s)"),
        ("rate(5)", "rate(value unit)"),
        ("rate(5 minutes please)", "rate(value unit)"),
        ("rate()", "rate(value unit)"),
    ],
)
def test_invalid_rates_name_what_is_wrong(text: str, complaint: str) -> None:
    """`rate(N seconds)` is nimbus's own addition (AWS starts at one minute)."""
    with pytest.raises(InvalidRequest, match="rate expression") as raised:
        parse(text, "UTC")
    assert complaint in raised.value.message
    assert repr(text.strip()) in raised.value.message


# --- cron, AWS form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("cron(0 10 * * ? *)", utc(2024, 1, 1, 10), [utc(2024, 1, 2, 10), utc(2024, 1, 3, 10)]),
        (
            "cron(15 12 * * ? *)",
            utc(2024, 1, 1),
            [utc(2024, 1, 1, 12, 15), utc(2024, 1, 2, 12, 15)],
        ),
        (  # weekdays at 18:00; 2024-01-05 is a Friday
            "cron(0 18 ? * MON-FRI *)",
            utc(2024, 1, 5, 18),
            [utc(2024, 1, 8, 18), utc(2024, 1, 9, 18)],
        ),
        ("cron(0 8 1 * ? *)", utc(2024, 1, 1, 9), [utc(2024, 2, 1, 8), utc(2024, 3, 1, 8)]),
        (
            "cron(0/15 * * * ? *)",
            utc(2024, 1, 1, 0, 7),
            [utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 30)],
        ),
        (
            "cron(1/10 * * * ? *)",
            utc(2024, 1, 1),
            [utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 11)],
        ),
        (  # AWS counts the week from Sunday = 1; 2024-01-07 is a Sunday
            "cron(0 9 ? * 1 *)",
            utc(2024, 1, 1),
            [utc(2024, 1, 7, 9), utc(2024, 1, 14, 9)],
        ),
        ("cron(0 9 ? * SUN *)", utc(2024, 1, 1), [utc(2024, 1, 7, 9), utc(2024, 1, 14, 9)]),
        ("cron(0 9 ? * 2-6 *)", utc(2024, 1, 5, 10), [utc(2024, 1, 8, 9), utc(2024, 1, 9, 9)]),
        ("cron(0 9 ? * 1,7 *)", utc(2024, 1, 1), [utc(2024, 1, 6, 9), utc(2024, 1, 7, 9)]),
        ("cron(0 9 ? * L *)", utc(2024, 1, 1), [utc(2024, 1, 6, 9), utc(2024, 1, 13, 9)]),
        ("cron(0 9 ? * 6L *)", utc(2024, 1, 1), [utc(2024, 1, 26, 9), utc(2024, 2, 23, 9)]),
        ("cron(0 9 ? * 3#2 *)", utc(2024, 1, 1), [utc(2024, 1, 9, 9), utc(2024, 2, 13, 9)]),
        ("cron(0 9 ? * MON#1 *)", utc(2024, 1, 2), [utc(2024, 2, 5, 9), utc(2024, 3, 4, 9)]),
        ("cron(0 9 L * ? *)", utc(2024, 1, 1), [utc(2024, 1, 31, 9), utc(2024, 2, 29, 9)]),
        (  # 2024-06-15 is a Saturday: the nearest weekday is Friday the 14th
            "cron(0 9 15W * ? *)",
            utc(2024, 6, 1),
            [utc(2024, 6, 14, 9), utc(2024, 7, 15, 9)],
        ),
        ("cron(0 10 1 JAN,JUL ? *)", utc(2024, 1, 2), [utc(2024, 7, 1, 10), utc(2025, 1, 1, 10)]),
        (
            "cron(0 0 1 1 ? 2030-2032)",
            utc(2024, 1, 1),
            [utc(2030, 1, 1), utc(2031, 1, 1), utc(2032, 1, 1)],
        ),
        ("cron(0 0 1 1 ? 2030/2)", utc(2024, 1, 1), [utc(2030, 1, 1), utc(2032, 1, 1)]),
        ("cron(0 12 29 2 ? *)", utc(2024, 3, 1), [utc(2028, 2, 29, 12)]),
        ("cron(0 9 ? * MON-MON *)", utc(2024, 1, 1, 10), [utc(2024, 1, 8, 9), utc(2024, 1, 15, 9)]),
    ],
)
def test_aws_cron_ticks(text: str, start: float, expected: list[float]) -> None:
    assert ticks(parse(text, "UTC"), start, len(expected)) == expected


def test_a_cron_with_a_year_field_runs_out() -> None:
    cron = parse("cron(0 0 1 1 ? 2030-2032)", "UTC")
    assert cron.next_after(utc(2032, 1, 1)) is None
    assert cron.ticks_between(utc(2024, 1, 1), utc(2040, 1, 1), 10) == [
        utc(2030, 1, 1),
        utc(2031, 1, 1),
        utc(2032, 1, 1),
    ]
    assert cron.latest_at_or_before(utc(2029, 12, 31)) is None
    assert cron.latest_at_or_before(utc(2040, 1, 1)) == utc(2032, 1, 1)


def test_names_and_keywords_are_case_insensitive_in_fields() -> None:
    upper = parse("cron(0 9 ? JAN MON-FRI *)", "UTC")
    lower = parse("cron(0 9 ? jan mon-fri *)", "UTC")
    assert ticks(upper, utc(2024, 1, 1), 5) == ticks(lower, utc(2024, 1, 1), 5)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("cron(0 9 * * *)", "has 5 fields"),
        ("cron(0 9 * * ? * *)", "has 7 fields"),
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 1 * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(? 9 1 * ? *)", "'?' stands alone"),
        ("cron(0 9 1? * ? *)", "'?' stands alone"),
        ("cron(0 9 ? * 8 *)", "'8' is not a day of the week"),
        ("cron(0 9 ? * 0 *)", "'0' is not a day of the week"),
        ("cron(0 9 ? * JAN *)", "'JAN' is not a day of the week"),
        ("cron(0 9 ? * 1#2,3#1 *)", "only one expression"),
        ("cron(0 9 ? * 2#6 *)", "is invalid"),
        ("cron(60 9 * * ? *)", "is invalid"),
        ("cron(0 24 * * ? *)", "is invalid"),
        ("cron(0 9 32 * ? *)", "is invalid"),
        ("cron(0 9 * 13 ? *)", "is invalid"),
        ("cron(0 9 * MON ? *)", "is invalid"),
        ("cron(0 0 30 2 ? *)", "can never occur"),
        ("cron(0 0 29 2 ? 2025)", "is invalid"),
        ("cron(0 0 1 1 ? 2150)", "years after 2099"),
        ("cron(0 0 1 1 ? 1969)", "is invalid"),
        ("cron(0 9 LW * ? *)", "day-of-month field 'LW' is invalid"),
        ("cron(H 9 * * ? *)", "minutes field 'H' is invalid"),
        ("cron(0 9 * * ? *)x", "is not rate(N unit)"),
        ("cron(0 9 * * ? !)", "year field '!' is invalid"),
        ("cron(1-0 * * * ? *)", "minutes field '1-0' has the reversed range '1-0'"),
        ("cron(0 22-2 * * ? *)", "hours field '22-2' has the reversed range"),
        ("cron(0 9 ? * FRI-MON *)", "day-of-week field 'FRI-MON' has the reversed range"),
        ("cron(0 9 ? * 7-1 *)", "day-of-week field '7-1' has the reversed range"),
        ("cron(0 0 1 1 ? 2032-2030)", "year field '2032-2030' has the reversed range"),
        (
            "cron(0/61 * * * ? *)",
            "minutes field '0/61' has a step of 61; steps there run from 1 to 60",
        ),
        ("cron(0 9 */32 * ? *)", "day-of-month field '*/32' has a step of 32"),
        ("cron(0 9 1 */13 ? *)", "month field '*/13' has a step of 13"),
    ],
)
def test_invalid_aws_crons_name_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(text, "UTC")
    assert complaint in raised.value.message
    assert repr(text) in raised.value.message


# --- cron, Unix five-field lines ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        (
            "*/15 * * * *",
            utc(2024, 1, 1, 0, 7),
            [utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 0, 45)],
        ),
        ("0 9 * * 1", utc(2024, 1, 1, 10), [utc(2024, 1, 8, 9)]),  # Unix: 1 is Monday
        ("0 9 * * 0", utc(2024, 1, 1), [utc(2024, 1, 7, 9)]),
        ("0 9 * * 7", utc(2024, 1, 1), [utc(2024, 1, 7, 9)]),
        ("0 9 * * mon-fri", utc(2024, 1, 5, 10), [utc(2024, 1, 8, 9)]),
        (  # day-of-month and day-of-week both restricted: either matches (Vixie cron)
            "0 0 1 * 1",
            utc(2024, 1, 1),
            [
                utc(2024, 1, 8),
                utc(2024, 1, 15),
                utc(2024, 1, 22),
                utc(2024, 1, 29),
                utc(2024, 2, 1),
                utc(2024, 2, 5),
            ],
        ),
        ("0 0 31 2 1", utc(2024, 2, 1), [utc(2024, 2, 5)]),  # never the 31st, but Mondays
        ("30 4 1,15 * *", utc(2024, 1, 2), [utc(2024, 1, 15, 4, 30), utc(2024, 2, 1, 4, 30)]),
        # a range with equal ends is its one value (croniter alone reads 3-3 as every hour)
        ("0 3-3 * * *", utc(2024, 1, 1), [utc(2024, 1, 1, 3), utc(2024, 1, 2, 3)]),
        ("5-5/10 1 * * *", utc(2024, 1, 1), [utc(2024, 1, 1, 1, 5), utc(2024, 1, 2, 1, 5)]),
    ],
)
def test_unix_cron_ticks(text: str, start: float, expected: list[float]) -> None:
    assert ticks(parse(text, "UTC"), start, len(expected)) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("*/15 * * *", "is not rate(N unit)"),
        ("0 0 * * * *", "is not rate(N unit)"),
        ("", "is not rate(N unit)"),
        ("every day", "is not rate(N unit)"),
        ("61 * * * *", "is invalid"),
        ("*/0 * * * *", "minutes field '*/0' has a step of 0; steps there run from 1 to 60"),
        ("1-0 * * * *", "minutes field '1-0' has the reversed range '1-0'"),
        ("*/61 * * * *", "minutes field '*/61' has a step of 61; steps there run from 1 to 60"),
        ("5,10-20/61 * * * *", "minutes field '5,10-20/61' has a step of 61"),
        ("0 */25 * * *", "hours field '*/25' has a step of 25; steps there run from 1 to 24"),
        ("0 0 * NOV-FEB *", "month field 'NOV-FEB' has the reversed range 'NOV-FEB'"),
        ("0 0 * * SAT-MON", "day-of-week field 'SAT-MON' has the reversed range"),
        ("0 0 * * */8", "day-of-week field '*/8' has a step of 8; steps there run from 1 to 7"),
        ("0 0 31 2 *", "can never occur"),
        ("H * * * *", "minutes field 'H' is invalid"),
        ("R * * * *", "minutes field 'R' is invalid"),
        ("0 0 * * % ", "day-of-week field '%' is invalid"),
    ],
)
def test_invalid_unix_crons_name_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(text, "UTC")
    assert complaint in raised.value.message


MinuteItem = tuple[int | None, int | None, int | None]
"""An item of a minutes field: its start (None: `*`), the end of its range, its step."""

minute_items = st.tuples(
    st.one_of(st.none(), st.integers(0, 59)),
    st.one_of(st.none(), st.integers(0, 59)),
    st.one_of(st.none(), st.integers(0, 70)),
)


def minute_item_text(item: MinuteItem) -> str:
    start, end, step = item
    span = "*" if start is None else str(start) if end is None else f"{start}-{end}"
    return span if step is None else f"{span}/{step}"


def minute_item_values(item: MinuteItem) -> set[int] | None:
    """The minutes an item stands for; None when it must be refused: a reversed range, or a
    step that is not from 1 to 60."""
    start, end, step = item
    if step is not None and not 1 <= step <= 60:
        return None
    if start is None:
        return set(range(0, 60, step or 1))
    if end is None:
        return set(range(start, 60, step)) if step else {start}
    return set(range(start, end + 1, step or 1)) if start <= end else None


@settings(max_examples=200, deadline=None)
@given(items=st.lists(minute_items, min_size=1, max_size=3), aws=st.booleans())
def test_a_minutes_field_is_refused_exactly_when_invalid_and_else_ticks_on_its_values(
    items: list[MinuteItem], aws: bool
) -> None:
    field = ",".join(map(minute_item_text, items))
    text = f"cron({field} * * * ? *)" if aws else f"{field} * * * *"
    meanings = [minute_item_values(item) for item in items]
    if None in meanings:
        with pytest.raises(InvalidRequest, match=f"the minutes field '{re.escape(field)}' has"):
            parse(text, "UTC")
        return
    expected = sorted(set().union(*filter(None, meanings)))
    hour = utc(2024, 1, 1)
    fired = ticks(parse(text, "UTC"), hour - 1, len(expected))
    assert [datetime.fromtimestamp(tick, UTC).minute for tick in fired] == expected
    assert hour <= fired[0] and fired[-1] < hour + HOUR


# --- time zones and DST ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        ("America/New_York", utc(2024, 1, 15), utc(2024, 1, 15, 14)),  # EST, UTC-5
        ("America/New_York", utc(2024, 7, 15), utc(2024, 7, 15, 13)),  # EDT, UTC-4
        ("Asia/Kolkata", utc(2024, 1, 15), utc(2024, 1, 15, 3, 30)),  # UTC+5:30
        ("Australia/Sydney", utc(2024, 1, 15), utc(2024, 1, 15, 22)),  # AEDT, UTC+11
        ("UTC", utc(2024, 1, 15), utc(2024, 1, 15, 9)),
    ],
)
def test_cron_runs_on_the_wall_clock_of_its_time_zone(
    zone: str, start: float, expected: float
) -> None:
    assert parse("cron(0 9 * * ? *)", zone).next_after(start) == expected


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "/etc/localtime", "utc+2"]
)
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(InvalidRequest, match="unknown time zone"):
        parse("rate(1 day)", zone)


def test_a_tick_in_the_hour_skipped_in_spring_does_not_fire() -> None:
    # Berlin, 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    cron = parse("cron(30 2 * * ? *)", "Europe/Berlin")
    assert ticks(cron, at("Europe/Berlin", 2024, 3, 30), 2) == [
        at("Europe/Berlin", 2024, 3, 30, 2, 30),
        at("Europe/Berlin", 2024, 4, 1, 2, 30),
    ]
    every_half_hour = parse("*/30 * * * *", "Europe/Berlin")
    assert ticks(every_half_hour, utc(2024, 3, 31, 0, 0), 3) == [
        utc(2024, 3, 31, 0, 30),  # 01:30 CET
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST
        utc(2024, 3, 31, 1, 30),
    ]


def test_a_tick_in_the_hour_repeated_in_autumn_fires_once_at_its_first_occurrence() -> None:
    # New York, 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    cron = parse("cron(30 1 * * ? *)", "America/New_York")
    assert ticks(cron, utc(2024, 11, 2, 12), 2) == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, not 01:30 EST (06:30 UTC)
        utc(2024, 11, 4, 6, 30),  # 01:30 EST
    ]
    # Berlin, 2024-10-27: 03:00 CEST falls back to 02:00 CET.
    every_half_hour = parse("*/30 * * * *", "Europe/Berlin")
    assert every_half_hour.ticks_between(utc(2024, 10, 26, 23, 59), utc(2024, 10, 27, 2), 10) == [
        utc(2024, 10, 27, 0, 0),  # 02:00 CEST
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST; 02:00 and 02:30 CET do not fire again
        utc(2024, 10, 27, 2, 0),  # 03:00 CET
    ]
    second_pass = at("Europe/Berlin", 2024, 10, 27, 2, 10, fold=1)  # 01:10 UTC
    assert every_half_hour.next_after(second_pass) == utc(2024, 10, 27, 2, 0)
    assert every_half_hour.latest_at_or_before(second_pass) == utc(2024, 10, 27, 0, 30)


# --- due ticks ----------------------------------------------------------------------------

EVERY_MINUTE = parse("rate(1 minute)", "UTC", origin=0.0)
HOURLY = parse("rate(1 hour)", "UTC", origin=0.0)


def test_a_schedule_that_never_fired_owes_nothing_from_the_past() -> None:
    for policy in ("skip", "once", "all"):
        assert due_ticks(HOURLY, None, 3 * HOUR + 5, policy, 10).fire == [3 * HOUR]
        assert due_ticks(HOURLY, None, 3 * HOUR + TOLERANCE + 1, policy, 10).fire == []
        assert due_ticks(HOURLY, None, 3 * HOUR - 1, policy, 10).fire == []
        assert due_ticks(HOURLY, None, 3 * HOUR + 5, policy, 10).left_out == 0


def test_no_tick_at_or_before_the_origin_is_ever_due() -> None:
    registered = utc(2024, 1, 1, 10, 0) + 30  # the 10:00 tick came just before
    cron = parse("*/5 * * * *", "UTC", origin=registered)
    for policy in ("skip", "once", "all"):
        assert due_ticks(cron, None, registered + 10, policy, 10).fire == []
        assert due_ticks(cron, utc(2024, 1, 1, 9), registered + 10, policy, 10).fire == []
    assert due_ticks(cron, None, utc(2024, 1, 1, 10, 5) + 1, "once", 10).fire == [
        utc(2024, 1, 1, 10, 5)
    ]


def test_skip_fires_only_a_tick_that_is_due_now() -> None:
    due = due_ticks(EVERY_MINUTE, 60.0, 600.0, "skip", 10)
    assert due.fire == [600.0]
    assert due.left_out == 8  # 120 ... 540, never to fire
    due = due_ticks(EVERY_MINUTE, 60.0, 630.0, "skip", 10)
    assert due.fire == [600.0]
    late = due_ticks(HOURLY, HOUR, 3.5 * HOUR, "skip", 10)
    assert late.fire == []  # 3 h was half an hour ago: missed, not due
    assert late.left_out == 2


def test_once_collapses_the_missed_ticks_into_the_latest() -> None:
    due = due_ticks(EVERY_MINUTE, 60.0, 630.0, "once", 10)
    assert due.fire == [600.0]
    assert due.left_out == 8
    assert due_ticks(HOURLY, HOUR, 3.5 * HOUR, "once", 10).fire == [3 * HOUR]


def test_all_fires_each_missed_tick_in_order_limit_per_call() -> None:
    due = due_ticks(EVERY_MINUTE, 60.0, 600.0, "all", 100)
    assert due.fire == [120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0, 600.0]
    assert due.left_out == 0
    first = due_ticks(EVERY_MINUTE, 60.0, 600.0, "all", 4)
    assert first.fire == [120.0, 180.0, 240.0, 300.0]
    assert first.left_out == 5  # still owed: the next call, after these are claimed
    assert due_ticks(EVERY_MINUTE, 300.0, 600.0, "all", 4).fire == [360.0, 420.0, 480.0, 540.0]


def test_nothing_is_due_between_ticks_or_when_the_clock_went_back() -> None:
    for policy in ("skip", "once", "all"):
        assert due_ticks(EVERY_MINUTE, 600.0, 659.0, policy, 10).fire == []
        assert due_ticks(EVERY_MINUTE, 600.0, 300.0, policy, 10).fire == []


def test_the_count_of_left_out_ticks_is_bounded() -> None:
    year_down = due_ticks(EVERY_MINUTE, 60.0, 365 * DAY, "once", 10)
    assert year_down.fire == [365 * DAY]
    assert year_down.left_out == COUNT_LIMIT - 1


def test_due_ticks_refuses_a_bad_policy_or_limit() -> None:
    with pytest.raises(InvalidRequest, match="missed must be"):
        due_ticks(EVERY_MINUTE, 60.0, 600.0, "sometimes", 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="limit"):
        due_ticks(EVERY_MINUTE, 60.0, 600.0, "all", 0)


# --- properties -----------------------------------------------------------------------------

# A zone and, in most, a moment a day before one of its DST changes of 2024 (Lord Howe moves
# by half an hour).
WINDOWS = [
    ("Europe/Berlin", utc(2024, 3, 30, 1)),
    ("Europe/Berlin", utc(2024, 10, 26, 1)),
    ("America/New_York", utc(2024, 3, 9, 7)),
    ("America/New_York", utc(2024, 11, 2, 6)),
    ("Australia/Lord_Howe", utc(2024, 4, 5, 15)),
    ("Australia/Lord_Howe", utc(2024, 10, 4, 15, 30)),
    ("Asia/Kolkata", utc(2024, 6, 1)),
    ("UTC", utc(2024, 6, 1)),
]


def wall_clock_model(
    minutes: set[int], hours: set[int], zone: str, start: float, end: float
) -> list[float]:
    """Every whole minute in (start, end] whose wall time matches, first occurrences only."""
    first = int(start // MINUTE + 1) * 60
    found = []
    for instant in range(first, int(end) + 1, 60):
        wall = datetime.fromtimestamp(instant, ZoneInfo(zone))
        if wall.minute in minutes and wall.hour in hours and not wall.fold:
            found.append(float(instant))
    return found


@settings(max_examples=150, deadline=None)
@given(
    minutes=st.sets(st.integers(0, 59), min_size=1, max_size=4),
    hours=st.sets(st.one_of(st.integers(0, 3), st.integers(0, 23)), min_size=1, max_size=6),
    window=st.sampled_from(WINDOWS),
    offsets=st.tuples(st.integers(0, 2 * SECONDS_A_DAY), st.integers(0, 2 * SECONDS_A_DAY)),
    aws=st.booleans(),
)
def test_with_all_the_due_ticks_are_exactly_the_wall_clock_ticks_in_the_window(
    minutes: set[int],
    hours: set[int],
    window: tuple[str, float],
    offsets: tuple[int, int],
    aws: bool,
) -> None:
    zone, start = window
    fields = f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))}"
    text = f"cron({fields} * * ? *)" if aws else f"{fields} * * *"
    expression = parse(text, zone)
    last_fired = start + min(offsets)
    now = start + max(offsets) + 0.5
    expected = wall_clock_model(minutes, hours, zone, last_fired, now)
    due = due_ticks(expression, last_fired, now, "all", 10_000)
    assert due.fire == expected
    assert due.left_out == 0
    for policy in ("skip", "once"):
        assert set(due_ticks(expression, last_fired, now, policy, 1).fire) <= set(expected[-1:])


@settings(max_examples=100, deadline=None)
@given(
    value=st.integers(1, 180),
    origin=st.integers(0, 10**9),
    offsets=st.tuples(
        st.integers(-SECONDS_A_DAY, 3 * SECONDS_A_DAY), st.integers(0, 3 * SECONDS_A_DAY)
    ),
    limit=st.integers(1, 50),
    policy=st.sampled_from(["skip", "once", "all"]),
)
def test_claiming_due_ticks_until_none_is_left_fires_each_owed_tick_once(
    value: int, origin: int, offsets: tuple[int, int], limit: int, policy: MissedTicks
) -> None:
    """The trigger's loop, with claims modelled by a watermark: with all, every tick in
    (last_fired, now] fires once, in order, whatever the limit; with skip/once, at most the
    latest one."""
    period = value * MINUTE
    unit = "minute" if value == 1 else "minutes"
    expression = parse(f"rate({value} {unit})", "UTC", origin=float(origin))
    last_fired = origin + offsets[0] + 0.25
    now = last_fired + offsets[1]
    candidates = (origin + k * period for k in range(1, int((now - origin) // period) + 2))
    owed = [tick for tick in candidates if last_fired < tick <= now]
    fired: list[float] = []
    watermark = last_fired
    while due := due_ticks(expression, watermark, now, policy, limit).fire:
        for tick in due:
            assert tick > watermark  # what a claim checks
            watermark = tick
            fired.append(tick)
    if policy == "all":
        assert fired == owed
    elif policy == "once":
        assert fired == owed[-1:]
    else:
        assert fired == [tick for tick in owed[-1:] if tick > now - TOLERANCE]
