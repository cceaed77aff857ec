"""Budgets: after every flush of the meter, what each budgeted function (and the app) has cost
in its period is priced under the platform's sheet and compared with its amount.

Crossing a budget publishes `nimbus.budget.exceeded` once per period and amount (remembered in
platform.db, so a restart does not repeat it; raising the amount and crossing again does).
With `action="throttle"` the function is closed until the period rolls over or the budget is
raised: synchronous callers get 429 with a Retry-After of the time left in the period, and
asynchronous work (async invocations, topic, bucket and schedule events, queue and stream
batches) waits, as it waits for capacity, until the function opens again or the event's
`max_event_age` runs out, when it is dead-lettered (EventAgeExceeded): what Lambda does with
the events of a function whose reserved concurrency is set to zero.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import msgspec

from nimbus.compute.invoker import EventExpired
from nimbus.errors import Throttled
from nimbus.events.cloudevents import format_time
from nimbus.events.platform import PlatformEvent, function_subject
from nimbus.ops.database import Database
from nimbus.ops.logs import LogSink
from nimbus.ops.platform_events import PlatformEvents
from nimbus.ops.usage.catalog import priced_kind
from nimbus.ops.usage.ledger import Ledger, Totals
from nimbus.ops.usage.periods import period_bounds
from nimbus.ops.usage.prices import PriceSheet
from nimbus.spec.budgets import Budget, BudgetAction, Period
from nimbus.spec.model import AppSpec

BUDGET_EXCEEDED = "nimbus.budget.exceeded"
APP = "app"
REMEMBERED = 32 * 86400  # seconds of past alerts read back at start: a month's and more


class BudgetStatus(msgspec.Struct, kw_only=True):
    """A budget as it stands (the usage API's `budgets`)."""

    target: str
    """`app`, or the function's name."""
    amount: float
    currency: str
    period: Period
    action: BudgetAction
    spent: float
    period_start: float
    period_end: float
    exceeded: bool
    refused: int = 0
    """Invocations refused because of it in this period, since the platform started."""


class BudgetExceeded(msgspec.Struct, kw_only=True, frozen=True):
    """The `data` of a `nimbus.budget.exceeded` event."""

    app: str
    function: str | None
    """None: the app's own budget."""
    owner: str | None = None
    tags: dict[str, str] = {}
    amount: float
    spent: float
    currency: str
    period: Period
    period_start: str
    period_end: str
    action: BudgetAction


class Budgets:
    def __init__(
        self,
        ledger: Ledger,
        db: Database,
        sheet: PriceSheet,
        spec: Callable[[], AppSpec | None],
        logs: LogSink,
        events: PlatformEvents | None,
    ) -> None:
        self._ledger = ledger
        self._db = db
        self.sheet = sheet
        self._spec = spec
        self._logs = logs
        self._events = events
        self.closed: dict[str, BudgetStatus] = {}
        """Functions refused now, with the budget that closed each."""
        self.statuses: list[BudgetStatus] = []
        self._reopened: dict[str, asyncio.Event] = {}
        self._alerted: set[tuple[str, float, float]] = set()
        self._refused: dict[tuple[str, float], int] = {}

    async def start(self) -> None:
        """Recall the alerts already sent in recent periods."""
        rows = await self._db.read(
            "SELECT budget, period_start, amount FROM budget_alerts WHERE period_start >= ?",
            (time.time() - REMEMBERED,),
        )
        self._alerted = {(r["budget"], r["period_start"], r["amount"]) for r in rows}

    async def evaluate(self) -> None:
        """Price each budget's period, alert on crossings, close and open functions."""
        spec = self._spec()
        budgets = _budgets(spec) if spec is not None else []
        now = time.time()
        totals: dict[float, Totals] = {}
        statuses = []
        for target, budget in budgets:
            start, end = period_bounds(budget.period, now)
            if start not in totals:
                totals[start] = await self._ledger.totals(start, end)
            spent = self._spent(totals[start], None if target == APP else target)
            status = BudgetStatus(
                target=target, amount=budget.amount, currency=self.sheet.currency,
                period=budget.period, action=budget.action, spent=spent, period_start=start,
                period_end=end, exceeded=spent >= budget.amount,
                refused=self._refused.get((target, start), 0),
            )  # fmt: skip
            statuses.append(status)
            if status.exceeded:
                await self._alert(spec, status)
        self.statuses = statuses
        self._close(spec, statuses)

    async def admit(self, function: str, *, wait: bool, expires_at: float | None) -> None:
        """Let an invocation of a closed function through once it opens; without `wait`,
        Throttled at once. An event still waiting at `expires_at`: EventExpired."""
        status = self.closed.get(function)
        if status is None:
            return
        if not wait:
            key = (status.target, status.period_start)
            self._refused[key] = status.refused = self._refused.get(key, 0) + 1
            retry_after = max(1, math.ceil(status.period_end - time.time()))
            raise Throttled(_why_closed(function, status, self._app_name()), retry_after)
        timeout = None if expires_at is None else max(0.0, expires_at - time.time())
        try:
            async with asyncio.timeout(timeout):
                while function in self.closed:
                    await self._reopened.setdefault(function, asyncio.Event()).wait()
        except TimeoutError:
            raise EventExpired(f"the event expired while {function!r} was over budget") from None

    def _spent(self, totals: Totals, function: str | None) -> float:
        """What the function (None: everything) cost in these totals under the sheet."""
        spent = 0.0
        for (kind, name), usage in totals.items():
            priced = priced_kind(kind)
            mine = function is None or (kind == "function" and name == function)
            if priced is not None and mine:
                spent += sum(self.sheet.costs(priced, usage).values())
        return spent

    async def _alert(self, spec: AppSpec | None, status: BudgetStatus) -> None:
        key = (status.target, status.period_start, status.amount)
        if key in self._alerted or spec is None:
            return
        self._alerted.add(key)
        await self._db.write(
            "INSERT OR IGNORE INTO budget_alerts VALUES (?, ?, ?, ?, ?)",
            (*key, status.spent, time.time()),
        )
        app = spec.name
        function = None if status.target == APP else spec.functions.get(status.target)
        self._logs.platform(
            f"{_what(status.target, app)} crossed its budget: {status.spent:.6f} of "
            f"{status.amount:g} {status.currency} this {status.period}"
            + ("; its invocations are refused" if status.action == "throttle" else ""),
            "WARNING",
        )
        if self._events is None:
            return
        data = BudgetExceeded(
            app=app, function=None if status.target == APP else status.target,
            owner=function.owner if function else None,
            tags=function.tags if function else {}, amount=status.amount, spent=status.spent,
            currency=status.currency, period=status.period,
            period_start=format_time(status.period_start, 0),
            period_end=format_time(status.period_end, 0), action=status.action,
        )  # fmt: skip
        subject = f"nimbus:app:{app}" if status.target == APP else function_subject(status.target)
        self._events.emit(PlatformEvent(BUDGET_EXCEEDED, subject, data))

    def _close(self, spec: AppSpec | None, statuses: list[BudgetStatus]) -> None:
        closed: dict[str, BudgetStatus] = {}
        functions = list(spec.functions) if spec is not None else []
        for status in statuses:
            if status.exceeded and status.action == "throttle":
                targets = functions if status.target == APP else [status.target]
                closed |= {function: status for function in targets}
        for function in set(self.closed) - set(closed):
            self._logs.platform(f"function {function!r} is within its budget again", "INFO")
        self.closed = closed
        for function in [f for f in self._reopened if f not in closed]:
            self._reopened.pop(function).set()

    def _app_name(self) -> str:
        spec = self._spec()
        return spec.name if spec is not None else ""


def _budgets(spec: AppSpec) -> list[tuple[str, Budget]]:
    declared = [(name, f.budget) for name, f in spec.functions.items() if f.budget is not None]
    return declared + ([(APP, spec.budget)] if spec.budget is not None else [])


def _what(target: str, app: str) -> str:
    return f"app {app!r}" if target == APP else f"function {target!r}"


def _why_closed(function: str, status: BudgetStatus, app: str) -> str:
    over = _what(status.target, app)
    return (
        f"{function!r} is not invoked: {over} is over its budget of {status.amount:g} "
        f"{status.currency} per {status.period} ({status.spent:.6f} spent); invocations are "
        f"refused until {format_time(status.period_end, 0)} or the budget is raised"
    )
