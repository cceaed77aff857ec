"""The contract of `Schedules`, run against every backend: registration, claims that let each
tick fire once (across restarts and racing claimers), and the missed-tick policies end to end
with a fake clock."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Clock
from nimbus.backends.embedded.schedule import EmbeddedSchedules
from nimbus.errors import InvalidRequest, NotFound
from nimbus.services.schedule import Schedules, ScheduleState, due_ticks
from nimbus.spec.resources import MissedTicks

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
ID = "report#0"


def open_schedules(backend: str, path: Path, clock: Callable[[], float]) -> Schedules:
    if backend == "embedded":
        return EmbeddedSchedules(path, clock=clock)
    raise AssertionError(f"unknown backend {backend}")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def schedules(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Schedules]:
    service = open_schedules(backend, tmp_path, clock)
    yield service
    await service.close()


async def reopen(service: Schedules, backend: str, path: Path, clock: Clock) -> Schedules:
    await service.close()
    return open_schedules(backend, path, clock)


# --- register -------------------------------------------------------------------------------


async def test_register_creates_a_schedule_that_has_never_fired(
    schedules: Schedules, clock: Clock
) -> None:
    clock.now = T0 + 0.75
    state = await schedules.register(ID, "rate(5 minutes)", "UTC")
    assert state == ScheduleState(
        id=ID, expression="rate(5 minutes)", timezone="UTC", origin=T0, last_fired=None
    )
    assert await schedules.state(ID) == state
    assert state.parsed().next_after(T0 + 1) == T0 + 300  # rate ticks count from the origin


async def test_register_again_with_the_same_expression_changes_nothing(
    schedules: Schedules, clock: Clock
) -> None:
    first = await schedules.register(ID, "rate(5 minutes)", "UTC")
    assert await schedules.claim(ID, T0 + 300)
    clock.now = T0 + 1000
    again = await schedules.register(ID, "rate(5 minutes)", "UTC")
    assert again.origin == first.origin
    assert again.last_fired == T0 + 300


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [("rate(10 minutes)", "UTC"), ("rate(5 minutes)", "Europe/Berlin")],
)
async def test_a_changed_expression_or_time_zone_starts_over(
    schedules: Schedules, clock: Clock, expression: str, timezone: str
) -> None:
    await schedules.register(ID, "rate(5 minutes)", "UTC")
    assert await schedules.claim(ID, T0 + 300)
    clock.now = T0 + 1000
    changed = await schedules.register(ID, expression, timezone)
    assert (changed.expression, changed.timezone) == (expression, timezone)
    assert changed.origin == T0 + 1000
    assert changed.last_fired is None
    assert not await schedules.claim(ID, T0 + 900)  # nothing before the change fires
    assert await schedules.claim(ID, T0 + 1600)


@pytest.mark.parametrize(
    ("schedule_id", "expression", "timezone", "complaint"),
    [
        (ID, "rate(5 minute)", "UTC", "write 'minutes'"),
        (ID, "cron(0 9 * * * *)", "UTC", "exactly one of"),
        (ID, "every day", "UTC", "is not rate"),
        (ID, "rate(1 day)", "Nowhere/Town", "unknown time zone"),
        ("", "rate(1 day)", "UTC", "schedule id"),
        ("x" * 513, "rate(1 day)", "UTC", "schedule id"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    schedules: Schedules, schedule_id: str, expression: str, timezone: str, complaint: str
) -> None:
    before = await schedules.register(ID, "rate(5 minutes)", "UTC")
    with pytest.raises(InvalidRequest) as raised:
        await schedules.register(schedule_id, expression, timezone)
    assert complaint in raised.value.message
    assert await schedules.list() == [before]


# --- claim ----------------------------------------------------------------------------------


async def test_a_tick_is_claimed_once_and_only_if_later_than_the_last(
    schedules: Schedules,
) -> None:
    await schedules.register(ID, "*/5 * * * *", "UTC")
    assert not await schedules.claim(ID, T0)  # the origin: nothing before registration fires
    assert not await schedules.claim(ID, T0 - 300)
    assert await schedules.claim(ID, T0 + 100)
    assert not await schedules.claim(ID, T0 + 100)
    assert not await schedules.claim(ID, T0 + 50)
    assert await schedules.claim(ID, T0 + 400)
    assert (await schedules.state(ID)).last_fired == T0 + 400


async def test_claims_of_unknown_schedules_or_impossible_ticks_are_refused(
    schedules: Schedules,
) -> None:
    with pytest.raises(NotFound, match="no schedule 'missing#0'"):
        await schedules.claim("missing#0", T0 + 60)
    await schedules.register(ID, "rate(1 minute)", "UTC")
    for tick in (float("nan"), float("inf")):
        with pytest.raises(InvalidRequest, match="finite"):
            await schedules.claim(ID, tick)
    assert (await schedules.state(ID)).last_fired is None


async def test_racing_claimers_of_one_tick_exactly_one_wins(schedules: Schedules) -> None:
    await schedules.register(ID, "rate(1 minute)", "UTC")
    results = await asyncio.gather(*(schedules.claim(ID, T0 + 60) for _ in range(50)))
    assert results.count(True) == 1


async def test_claims_of_different_ticks_racing_end_on_the_latest(schedules: Schedules) -> None:
    await schedules.register(ID, "rate(1 minute)", "UTC")
    ticks = [T0 + 60 * k for k in range(1, 21)]
    results = await asyncio.gather(*(schedules.claim(ID, tick) for tick in reversed(ticks)))
    assert results[0]  # the latest tick always wins, whatever came first
    assert (await schedules.state(ID)).last_fired == ticks[-1]


async def test_two_platforms_on_one_data_dir_fire_a_tick_once(
    backend: str, tmp_path: Path, clock: Clock
) -> None:
    one = open_schedules(backend, tmp_path, clock)
    two = open_schedules(backend, tmp_path, clock)
    try:
        await one.register(ID, "rate(1 minute)", "UTC")
        assert await two.register(ID, "rate(1 minute)", "UTC") == await one.state(ID)
        for k in range(1, 11):
            claims = [service.claim(ID, T0 + 60 * k) for service in (one, two, one, two)]
            assert (await asyncio.gather(*claims)).count(True) == 1
    finally:
        await one.close()
        await two.close()


# --- state, remove, list --------------------------------------------------------------------


async def test_state_list_and_remove(schedules: Schedules) -> None:
    with pytest.raises(NotFound):
        await schedules.state(ID)
    b = await schedules.register("b#0", "rate(1 hour)", "UTC")
    a = await schedules.register("a#1", "cron(0 9 ? * MON *)", "Europe/Berlin")
    assert await schedules.list() == [a, b]
    assert await schedules.remove("a#1")
    assert not await schedules.remove("a#1")  # removing twice is not an error
    assert await schedules.list() == [b]
    with pytest.raises(NotFound):
        await schedules.state("a#1")
    with pytest.raises(NotFound):
        await schedules.claim("a#1", T0 + 3600)


async def test_a_removed_schedule_registered_again_starts_over(
    schedules: Schedules, clock: Clock
) -> None:
    await schedules.register(ID, "rate(1 hour)", "UTC")
    assert await schedules.claim(ID, T0 + 3600)
    await schedules.remove(ID)
    clock.now = T0 + 4000
    state = await schedules.register(ID, "rate(1 hour)", "UTC")
    assert (state.origin, state.last_fired) == (T0 + 4000, None)


# --- durability -------------------------------------------------------------------------------


async def test_state_survives_a_restart_and_a_fired_tick_does_not_fire_again(
    backend: str, tmp_path: Path, clock: Clock
) -> None:
    service = open_schedules(backend, tmp_path, clock)
    await service.register(ID, "rate(5 minutes)", "UTC")
    await service.register("other#0", "0 9 * * *", "America/New_York")
    assert await service.claim(ID, T0 + 300)
    before = await service.list()
    clock.now = T0 + 7200
    service = await reopen(service, backend, tmp_path, clock)
    try:
        assert await service.list() == before
        assert not await service.claim(ID, T0 + 300)
        again = await service.register(ID, "rate(5 minutes)", "UTC")
        assert again.origin == T0  # the restart does not shift the rate's ticks
        assert again.parsed().next_after(T0 + 7200) == T0 + 7500
    finally:
        await service.close()


async def test_fsync_mode_works_the_same(tmp_path: Path, backend: str) -> None:
    if backend != "embedded":
        pytest.skip("fsync is an option of the embedded backend")
    service = EmbeddedSchedules(tmp_path, fsync=True, clock=Clock(T0))
    try:
        await service.register(ID, "rate(1 minute)", "UTC")
        assert await service.claim(ID, T0 + 60)
    finally:
        await service.close()


# --- the trigger's loop, with a fake clock ------------------------------------------------


async def fire_due(
    schedules: Schedules, now: float, missed: MissedTicks, limit: int = 100
) -> list[float]:
    """What a schedule trigger does when it wakes: fire every due tick it wins a claim on."""
    state = await schedules.state(ID)
    fired = []
    while due := due_ticks(state.parsed(), state.last_fired, now, missed, limit).fire:
        fired += [tick for tick in due if await schedules.claim(ID, tick)]
        state = await schedules.state(ID)
    return fired


@pytest.mark.parametrize(
    ("missed", "after_downtime"),
    [
        ("skip", [T0 + 3600]),  # only the tick due as the platform comes back
        ("once", [T0 + 3600]),
        ("all", [T0 + 60 * k for k in range(3, 61)]),  # each, 7 per call
    ],
)
async def test_ticks_missed_while_down_follow_the_policy(
    backend: str,
    tmp_path: Path,
    clock: Clock,
    missed: MissedTicks,
    after_downtime: list[float],
) -> None:
    service = open_schedules(backend, tmp_path, clock)
    await service.register(ID, "rate(1 minute)", "UTC")
    assert await fire_due(service, T0 + 30, missed) == []
    assert await fire_due(service, T0 + 60.5, missed) == [T0 + 60]
    assert await fire_due(service, T0 + 60.5, missed) == []  # woken twice: fired once
    assert await fire_due(service, T0 + 120.2, missed) == [T0 + 120]
    service = await reopen(service, backend, tmp_path, clock)  # down from T0+120 to T0+3600
    try:
        assert await fire_due(service, T0 + 3600.5, missed, limit=7) == after_downtime
        assert await fire_due(service, T0 + 3600.5, missed) == []
    finally:
        await service.close()


async def test_a_tick_just_before_registration_never_fires(
    schedules: Schedules, clock: Clock
) -> None:
    five = 300 * (T0 // 300)  # a */5 tick
    clock.now = five + 30
    await schedules.register(ID, "*/5 * * * *", "UTC")
    for missed in ("skip", "once", "all"):
        assert await fire_due(schedules, five + 40, missed) == []
    assert await fire_due(schedules, five + 301, "once") == [five + 300]


async def test_a_skip_schedule_back_too_late_for_its_tick_waits_for_the_next(
    schedules: Schedules,
) -> None:
    await schedules.register(ID, "rate(1 hour)", "UTC")
    assert await fire_due(schedules, T0 + 3600, "skip") == [T0 + 3600]
    assert await fire_due(schedules, T0 + 3 * 3600 + 600, "skip") == []
    assert await fire_due(schedules, T0 + 4 * 3600 + 1, "skip") == [T0 + 4 * 3600]


# --- property: whatever the order of claims, a tick fires at most once --------------------

CLAIMS = st.lists(
    st.one_of(st.integers(-5, 30).map(lambda k: T0 + 60 * k), st.just("restart")), max_size=40
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=CLAIMS)
def test_claims_accept_exactly_the_ticks_later_than_every_earlier_win(
    backend: str, steps: list[float | str]
) -> None:
    async def scenario(path: Path) -> None:
        clock = Clock(T0)
        service = open_schedules(backend, path, clock)
        await service.register(ID, "rate(1 minute)", "UTC")
        watermark = T0  # the model: nothing at or before the origin or the last win fires
        won: list[float] = []
        for step in steps:
            if isinstance(step, str):
                service = await reopen(service, backend, path, clock)
                continue
            claims = await asyncio.gather(service.claim(ID, step), service.claim(ID, step))
            assert claims.count(True) == (1 if step > watermark else 0)
            if step > watermark:
                watermark = step
                won.append(step)
        assert len(won) == len(set(won)) and won == sorted(won)
        assert (await service.state(ID)).last_fired == (won[-1] if won else None)
        await service.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory)))
