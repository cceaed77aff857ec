"""Schedules: functions that run on a clock, with EventBridge Scheduler semantics.

Expressions (`parse`):
- `rate(N unit)`: every N minutes, hours or days (`minute`/`hour`/`day` for 1, the plural
  otherwise, as AWS requires). Ticks are `origin + k * period` for k >= 1: the origin is the
  schedule's registration time, stored by the backend, so a restart never shifts them. The time
  zone does not matter (a day is 86 400 s, also across a DST change, as AWS does).
- `cron(minutes hours day-of-month month day-of-week year)`: the AWS six-field form. One of the
  two day fields must be `?`; day-of-week counts 1-7 from Sunday; `L`, `W` and `#` as AWS
  documents them. Years run to 2099 (croniter's limit; AWS allows 2199).
- a plain five-field cron line (`*/15 * * * *`): Unix semantics (day-of-week 0-7 from Sunday, a
  restricted day-of-month and day-of-week match either, like Vixie cron).
In both, ranges ascend and steps are no larger than their field (`1-0` and `*/61` are refused).
Cron is evaluated on the wall clock of the time zone (IANA name, `zoneinfo`). DST as AWS
documents it: a tick that falls in the hour skipped in spring does not fire; a tick in the hour
repeated in autumn fires once, at its first occurrence.

Missed ticks (`due_ticks`): `skip` fires only a tick that is due now (within `TOLERANCE`);
`once` collapses every tick missed since the last firing into one (the latest); `all` fires each
one, in order, `limit` per call. A schedule that never fired owes nothing from the past.

Each tick fires once: a backend's `claim` records a tick iff it is later than the last fired
one, atomically, so a restart or a second claimer cannot fire it again.
"""

from __future__ import annotations

import builtins
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from itertools import islice, takewhile
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from nimbus.errors import InvalidRequest

if TYPE_CHECKING:
    from croniter import croniter

    from nimbus.spec.resources import MissedTicks

TOLERANCE = 60.0
"""A tick this many seconds old still counts as due now (AWS fires within the minute)."""
COUNT_LIMIT = 10_000
"""Ticks left out of a `due_ticks` answer are counted up to this many (bounds the work)."""
MAX_RATE_VALUE = 1_000_000
MAX_YEARS_BETWEEN_TICKS = 200  # croniter's search horizon; covers a year field up to 2099
MISSED_POLICIES = ("skip", "once", "all")
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
"""`second` is nimbus's own (AWS starts at one minute): for local development and tests."""
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIELD_WORDS = {*MONTHS, *WEEKDAYS, "L", "W"}
FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
FIELD_SIZES = (60, 24, 31, 12, 7, 2199 - 1970 + 1)
"""How many values each field has (AWS's years run 1970-2199): a step is at most that (a step
of the size gives the first value only, as `*/60` fires on the hour; a larger one is a typo)."""
_CALL = re.compile(r"(rate|cron)\((.*)\)", re.DOTALL)
_FIELD_CHARS = re.compile(r"[0-9A-Za-z*,/#?-]+")
_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"[0-9]+")
_CRONITER_LINE = re.compile(r"^\[[^\]]*\] is not acceptable[.,]?\s*")
_POSITIVE = re.compile(r"[1-9][0-9]*")
LAST_YEAR = 2099


class Expression(ABC):
    """A parsed schedule expression: when its ticks fall, as epoch seconds. `origin` is the
    schedule's registration time: rate ticks count from it, and no tick at or before it is due."""

    def __init__(self, text: str, timezone: str, origin: float) -> None:
        self.text = text
        self.timezone = timezone
        self.origin = origin

    @abstractmethod
    def _ticks_after(self, t: float) -> Iterator[float]:
        """Every tick later than `t`, in order (ends only if the expression does)."""

    @abstractmethod
    def latest_at_or_before(self, t: float) -> float | None:
        """The last tick at or before `t`; None if there is none."""

    def next_after(self, t: float) -> float | None:
        """The first tick later than `t`; None once a year field has run out."""
        return next(self._ticks_after(t), None)

    def ticks_between(self, start: float, end: float, limit: int) -> list[float]:
        """The ticks in (start, end], in order, at most `limit` of them."""
        return list(islice(takewhile(lambda tick: tick <= end, self._ticks_after(start)), limit))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r}, {self.timezone!r})"


class RateExpression(Expression):
    """Every `period` seconds from `origin` (the first tick is one period after it)."""

    def __init__(self, text: str, timezone: str, origin: float, period: float) -> None:
        super().__init__(text, timezone, origin)
        self.period = period

    def _tick(self, k: int) -> float:
        """Always computed from the origin, so that a tick is the same float every time."""
        return self.origin + k * self.period

    def _index_at_or_before(self, t: float) -> int:
        """The largest k with tick(k) <= t, the float division corrected by one step if needed."""
        k = math.floor((t - self.origin) / self.period)
        while self._tick(k) > t:
            k -= 1
        while self._tick(k + 1) <= t:
            k += 1
        return k

    def _ticks_after(self, t: float) -> Iterator[float]:
        k = max(1, self._index_at_or_before(t) + 1)
        while True:
            yield self._tick(k)
            k += 1

    def latest_at_or_before(self, t: float) -> float | None:
        k = self._index_at_or_before(t)
        return self._tick(k) if k >= 1 else None


class CronExpression(Expression):
    """A croniter line evaluated on the wall clock of `zone`, with AWS's DST rule."""

    def __init__(self, text: str, timezone: str, origin: float, zone: tzinfo, line: str) -> None:
        super().__init__(text, timezone, origin)
        self.zone = zone
        self.line = line

    def _iterate(self, start: datetime) -> croniter[float]:
        import croniter as module  # imported when used: `import nimbus` stays light

        return module.croniter(self.line, start, max_years_between_matches=MAX_YEARS_BETWEEN_TICKS)

    def _instant(self, wall: datetime) -> float | None:
        """The epoch time of a wall-clock time: its first occurrence when the hour repeats,
        None when DST skips it."""
        instant = wall.replace(tzinfo=self.zone).timestamp()
        if datetime.fromtimestamp(instant, self.zone).replace(tzinfo=None) != wall:
            return None
        return instant

    def _ticks_after(self, t: float) -> Iterator[float]:
        from croniter import CroniterBadDateError

        cron = self._iterate(datetime.fromtimestamp(t, self.zone).replace(tzinfo=None))
        while True:
            try:
                wall = cron.get_next(datetime)
            except CroniterBadDateError:  # no tick within croniter's horizon: the years ran out
                return
            instant = self._instant(wall)
            if instant is not None and instant > t:  # in a repeated hour, walls before t's pass
                yield instant

    def latest_at_or_before(self, t: float) -> float | None:
        from croniter import CroniterBadDateError

        local = datetime.fromtimestamp(t, self.zone)
        # In the second pass of a repeated hour, the rest of that hour's wall times (first
        # occurrences) lie before t too: start the search after them.
        start = local.replace(tzinfo=None) + _repeat_left(local) + timedelta(seconds=1)
        cron = self._iterate(start)
        while True:
            try:
                wall = cron.get_prev(datetime)
            except CroniterBadDateError:
                return None
            instant = self._instant(wall)
            if instant is not None and instant <= t:
                return instant


def _repeat_left(local: datetime) -> timedelta:
    """How far the wall clock will run again in a repeated hour (0 outside its second pass)."""
    if not local.fold:
        return timedelta(0)
    first, second = local.replace(fold=0).utcoffset(), local.utcoffset()
    if first is None or second is None:
        return timedelta(0)
    return max(first - second, timedelta(0))


def parse(expression: str, timezone: str, *, origin: float = 0.0) -> Expression:
    """Parse a schedule expression; InvalidRequest names what is wrong. `origin`: the
    schedule's registration time, which the backend stores (see `Expression`)."""
    zone = _zone(timezone)
    text = expression.strip()
    call = _CALL.fullmatch(text)
    if call is not None and call[1] == "rate":
        return RateExpression(text, timezone, origin, _rate_period(call[2], text))
    if call is not None:
        line = _aws_line(call[2].split(), text)
    elif len(fields := text.split()) == 5:
        line = _unix_line(fields, text)
    else:
        raise InvalidRequest(
            f"schedule expression {expression!r} is not rate(N unit), cron(minutes hours "
            "day-of-month month day-of-week year) or a five-field cron line"
        )
    _check_cron(line, text)
    return CronExpression(text, timezone, origin, zone, line)


def _zone(timezone: str) -> tzinfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidRequest(
            f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from error


def _rate_period(inner: str, text: str) -> float:
    """Seconds of `rate(value unit)`, checked as AWS does (a singular unit for 1 only)."""
    parts = inner.split()
    if len(parts) != 2:
        raise InvalidRequest(f"rate expression {text!r}: write rate(value unit)")
    value, unit = parts
    if not _POSITIVE.fullmatch(value) or int(value) > MAX_RATE_VALUE:
        raise InvalidRequest(
            f"rate expression {text!r}: the value must be a whole number from 1 to {MAX_RATE_VALUE}"
        )
    singular = unit.removesuffix("s")
    if singular not in UNITS:
        raise InvalidRequest(
            f"rate expression {text!r}: the unit must be second(s), minute(s), hour(s) or day(s)"
        )
    number = int(value)
    if (number == 1) != (unit == singular):
        wanted = singular if number == 1 else singular + "s"
        raise InvalidRequest(f"rate expression {text!r}: with the value {value}, write {wanted!r}")
    return float(number * UNITS[singular])


def _aws_line(fields: list[str], text: str) -> str:
    """The croniter line of AWS's six fields: `?` becomes `*`, days of the week shift from
    1-7 to croniter's 0-6, and the year becomes croniter's seventh field."""
    if len(fields) != 6:
        raise InvalidRequest(
            f"cron expression {text!r} has {len(fields)} fields; cron(...) takes six: minutes "
            "hours day-of-month month day-of-week year (write a five-field Unix line without "
            "cron(...))"
        )
    checked = [
        _checked_field(name, size, field, text, sunday=1)
        for name, size, field in zip(FIELD_NAMES, FIELD_SIZES, fields, strict=True)
    ]
    minutes, hours, days, months, weekdays, years = checked
    if (days == "?") == (weekdays == "?"):
        raise InvalidRequest(
            f"cron expression {text!r}: exactly one of day-of-month and day-of-week must be '?'"
        )
    if "?" in (days if weekdays == "?" else weekdays) + minutes + hours + months + years:
        raise InvalidRequest(f"cron expression {text!r}: '?' stands alone in a day field")
    if "#" in weekdays and "," in weekdays:
        raise InvalidRequest(
            f"cron expression {text!r}: a day-of-week with '#' allows only one expression"
        )
    days = "*" if days == "?" else days
    weekdays = "*" if weekdays == "?" else _aws_weekdays(weekdays, text)
    line = f"{minutes} {hours} {days} {months} {weekdays}"
    if years == "*":
        return line
    if any(int(year) > LAST_YEAR for year in _NUMBER.findall(years)):
        raise InvalidRequest(f"cron expression {text!r}: years after {LAST_YEAR} are not supported")
    return f"{line} 0 {years}"


def _checked_field(name: str, size: int, field: str, text: str, *, sunday: int) -> str:
    """The field as croniter is to read it, after checking the characters and words it may
    hold: numbers, names of months and weekdays, L and W (croniter's H and R would make ticks
    depend on a hash or on chance), and each of its items (`sunday`: the number of Sunday)."""
    words = {word.upper() for word in _WORD.findall(field)}
    where = f"cron expression {text!r}: the {name} field {field!r}"
    if not _FIELD_CHARS.fullmatch(field) or not words <= FIELD_WORDS:
        raise InvalidRequest(f"{where} is invalid")
    return ",".join(_checked_item(item, where, size, sunday) for item in field.split(","))


def _checked_item(item: str, where: str, size: int, sunday: int) -> str:
    """A range ascends and a step is no larger than the field, where croniter would read `1-0`
    as a range that wraps around (every minute) and `*/61` as the first value only. A range
    whose ends are equal becomes that value: croniter reads `3-3` as every value."""
    span, slash, step = item.partition("/")
    if slash and step.isdigit() and not 1 <= int(step) <= size:
        raise InvalidRequest(f"{where} has a step of {step}; steps there run from 1 to {size}")
    first, dash, last = span.partition("-")
    low, high = _value(first, sunday), _value(last, sunday)
    if not dash or low is None or high is None:
        return item
    if low > high:
        raise InvalidRequest(
            f"{where} has the reversed range {span!r} (a range runs from its lower value to its "
            "higher one)"
        )
    return first if low == high else item


def _value(token: str, sunday: int) -> int | None:
    """A field's number or name as a number (`sunday`: the number of Sunday); None for
    anything else (`*`, `L`, `15W`, `3#2`), which croniter checks."""
    upper = token.upper()
    if token.isdigit():
        return int(token)
    if upper in MONTHS:
        return MONTHS.index(upper) + 1
    if upper in WEEKDAYS:
        return WEEKDAYS.index(upper) + sunday
    return None


def _aws_weekdays(field: str, text: str) -> str:
    return ",".join(_aws_weekday_item(item, text) for item in field.split(","))


def _aws_weekday_item(item: str, text: str) -> str:
    """One item of AWS's day-of-week field in croniter's terms: `L` (Saturday), `5L` (the last
    Thursday), `3#2` (the second Tuesday), or a value, range or step of days."""
    upper = item.upper()
    if upper == "L":
        return "6"
    if upper.endswith("L"):
        return "L" + _aws_weekday(upper[:-1], text)
    if "#" in upper:
        day, _, nth = upper.partition("#")
        return f"{_aws_weekday(day, text)}#{nth}"
    span, slash, step = upper.partition("/")
    if span != "*":
        first, dash, last = span.partition("-")
        span = _aws_weekday(first, text) + (dash and "-" + _aws_weekday(last, text))
    return span + slash + step


def _aws_weekday(value: str, text: str) -> str:
    """An AWS day of the week (1-7 or SUN-SAT) as croniter's number (0-6 from Sunday)."""
    if value in WEEKDAYS:
        return str(WEEKDAYS.index(value))
    if value.isdigit() and 1 <= int(value) <= 7:
        return str(int(value) - 1)
    raise InvalidRequest(
        f"cron expression {text!r}: {value!r} is not a day of the week (1-7 or SUN-SAT)"
    )


def _unix_line(fields: list[str], text: str) -> str:
    return " ".join(
        _checked_field(name, size, field, text, sunday=0)
        for name, size, field in zip(FIELD_NAMES[:5], FIELD_SIZES[:5], fields, strict=True)
    )


def _check_cron(line: str, text: str) -> None:
    """Validate with croniter. Strictly (no 30 February) unless day-of-week is restricted too,
    where a Unix line also matches on that weekday."""
    import croniter as module

    try:
        module.croniter.expand(line, strict=line.split()[4] == "*")
    except module.CroniterError as error:
        # croniter names its own (translated) line: keep only its reason
        reason = _CRONITER_LINE.sub("", str(error)) or "a field is out of range or malformed"
        raise InvalidRequest(f"cron expression {text!r} is invalid: {reason}") from error


class DueTicks(msgspec.Struct, kw_only=True, frozen=True):
    """What to fire now. `left_out`: owed ticks not in `fire` (counted up to COUNT_LIMIT):
    given up for good with skip and once; with all, still owed and returned by later calls."""

    fire: list[float]
    left_out: int = 0


def due_ticks(
    expression: Expression, last_fired: float | None, now: float, missed: MissedTicks, limit: int
) -> DueTicks:
    """The ticks to fire at `now`, given the last one fired (None: never fired, so nothing in
    the past is owed; only a tick due now fires). Never a tick at or before the origin."""
    if missed not in MISSED_POLICIES:
        raise InvalidRequest(f"missed must be 'skip', 'once' or 'all', not {missed!r}")
    if limit < 1:
        raise InvalidRequest(f"limit must be at least 1, not {limit}")
    if last_fired is None:
        return DueTicks(fire=_due_now(expression, now, max(expression.origin, now - TOLERANCE)))
    last_fired = max(last_fired, expression.origin)
    if missed == "all":
        fire = expression.ticks_between(last_fired, now, limit)
        if len(fire) < limit:
            return DueTicks(fire=fire)
        return DueTicks(fire=fire, left_out=_count(expression, fire[-1], now))
    since = last_fired if missed == "once" else max(last_fired, now - TOLERANCE)
    fire = _due_now(expression, now, since)
    return DueTicks(fire=fire, left_out=max(_count(expression, last_fired, now) - len(fire), 0))


def _count(expression: Expression, start: float, end: float) -> int:
    return len(expression.ticks_between(start, end, COUNT_LIMIT))


def _due_now(expression: Expression, now: float, since: float) -> list[float]:
    """The latest tick in (since, now], if any."""
    latest = expression.latest_at_or_before(now)
    return [latest] if latest is not None and latest > since else []


class ScheduleState(msgspec.Struct, kw_only=True, frozen=True):
    """A registered schedule: its expression, the origin its rate ticks count from (also the
    time before which nothing fires) and the last tick fired."""

    id: str
    expression: str
    timezone: str
    origin: float
    last_fired: float | None = None

    def parsed(self) -> Expression:
        return parse(self.expression, self.timezone, origin=self.origin)


class Schedules(Protocol):
    """Durable per-schedule state; the platform's schedule ids are f"{function}#{index}".
    Every method returns after its change is committed."""

    async def register(
        self, schedule_id: str, expression: str, timezone: str = "UTC"
    ) -> ScheduleState:
        """Create the schedule, or return it unchanged when registered with the same expression
        and time zone. A changed one starts over: origin = now, never fired (the old
        expression's ticks say nothing about the new one's, and none before the change fires).
        An invalid expression raises InvalidRequest and changes nothing."""
        ...

    async def claim(self, schedule_id: str, tick: float) -> bool:
        """Record `tick` as fired iff it is later than the last fired tick (and than the
        origin); atomically, so only one claimer of a tick wins, also across restarts."""
        ...

    async def state(self, schedule_id: str) -> ScheduleState:
        """The schedule's state; NotFound if it is not registered."""
        ...

    async def remove(self, schedule_id: str) -> bool:
        """Forget the schedule; False if there was none (removing twice is not an error)."""
        ...

    async def list(self) -> builtins.list[ScheduleState]:
        """Every registered schedule, by id."""
        ...

    async def close(self) -> None: ...
