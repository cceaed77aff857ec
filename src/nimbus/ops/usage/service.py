"""Metering as the controller holds it: the meter, the ledger, the price sheet and the budgets
of one platform, started and stopped together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nimbus.errors import InvalidRequest
from nimbus.ops.config import OpsConfig
from nimbus.ops.database import Database
from nimbus.ops.logs import LogSink
from nimbus.ops.platform_events import PlatformEvents
from nimbus.ops.usage.budgets import Budgets
from nimbus.ops.usage.ledger import Key, Ledger
from nimbus.ops.usage.meter import StoredSizes, UsageMeter
from nimbus.ops.usage.prices import sheet_for
from nimbus.ops.usage.report import By, UsageReport, build_report
from nimbus.spec.model import AppSpec


class Usage:
    def __init__(
        self,
        data_dir: Path,
        db: Database,
        sizes: StoredSizes,
        config: OpsConfig,
        spec: Callable[[], AppSpec | None],
        logs: LogSink,
        events: PlatformEvents | None,
    ) -> None:
        self.sheet = sheet_for(data_dir, config.prices)
        self.ledger = Ledger(db)
        self.budgets = Budgets(self.ledger, db, self.sheet, spec, logs, events)
        self.meter = (
            UsageMeter(self.ledger, sizes, logs, sample_interval=config.sample_interval)
            if config.metering
            else None
        )

    async def start(self) -> None:
        await self.budgets.start()
        if self.meter is not None:
            self.meter.start(self.budgets.evaluate)

    async def stop(self) -> None:
        if self.meter is not None:
            await self.meter.stop()

    async def deployed(self, spec: AppSpec) -> None:
        """A new spec: resources may be new, budgets changed (a raised one opens at once)."""
        if self.meter is not None:
            self.meter.deployed(spec)
            await self.budgets.evaluate()

    async def report(self, since: float, until: float, by: By) -> UsageReport:
        if since >= until:
            raise InvalidRequest("since must be before until")
        stored: dict[Key, int] = {}
        if self.meter is not None:
            await self.meter.flush()
            stored = self.meter.stored
        totals = await self.ledger.totals(since, until)
        return build_report(
            totals, stored, self.sheet, since=since, until=until, by=by,
            budgets=self.budgets.statuses,
        )  # fmt: skip
