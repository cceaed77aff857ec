"""Schedule trigger: fire the function asynchronously on each tick of its expression.

Each tick fires once, also across a restart: the tick's asynchronous invocation gets an id
derived from the schedule and the tick, so accepting it twice is accepting it once, and only
then is the tick claimed as fired. Ticks missed while the platform was down follow the
trigger's `missed` setting (skip, once, all); what was given up is logged.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from nimbus.events import aws
from nimbus.events.types import ScheduleTick
from nimbus.services.schedule import due_ticks
from nimbus.spec.resources import ScheduleTrigger
from nimbus.triggers.base import TriggerRunner

RECHECK = 30.0  # seconds at most between looks at the clock (it may be set back or forward)
FIRE_LIMIT = 100  # ticks fired in one pass at most (missed="all" after a long outage)


class ScheduleTicker(TriggerRunner):
    trigger: ScheduleTrigger

    async def run(self) -> None:
        schedules, trigger = self.platform.services.schedules, self.trigger
        state = await schedules.register(self.consumer, trigger.expression, trigger.timezone)
        expression = state.parsed()
        warned_after: float | None = None
        while True:
            state = await schedules.state(self.consumer)
            now = time.time()
            due = due_ticks(expression, state.last_fired, now, trigger.missed, FIRE_LIMIT)
            if due.left_out and trigger.missed != "all" and state.last_fired != warned_after:
                warned_after = state.last_fired  # once per outage, not on every pass
                self.platform.logs.platform(
                    f"{self.name!r}: {due.left_out} tick(s) of {trigger.label} were missed "
                    f"while the platform was down and are given up (missed={trigger.missed})",
                    "WARNING",
                )
                if self.platform.events is not None:
                    self.platform.events.schedule_missed(
                        self.function, trigger, due.left_out, state.last_fired
                    )
            for tick in due.fire:
                await self._fire(tick)
            if due.left_out and trigger.missed == "all":
                continue  # more owed ticks: fire them now, not after a pause
            upcoming = expression.next_after(time.time())
            pause = RECHECK if upcoming is None else min(RECHECK, upcoming - time.time())
            await asyncio.sleep(max(0.0, pause))

    async def _fire(self, tick: float) -> None:
        await self.platform.jobs.submit(
            self.name, self._event(tick), f"schedule:{self.trigger.expression}",
            job_id=self.job_id(tick),
        )  # fmt: skip
        await self.platform.services.schedules.claim(self.consumer, tick)

    def _event(self, tick: float) -> bytes:
        event = ScheduleTick(
            source=f"nimbus:schedule:{self.name}", time=tick,
            expression=self.trigger.expression, payload=self.trigger.payload,
        )  # fmt: skip
        if self.style == "aws":
            return msgspec.json.encode(aws.scheduled_event(event, self.name))
        return msgspec.json.encode(event)
