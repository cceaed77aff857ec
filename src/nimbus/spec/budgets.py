"""A budget: how much a function (or the whole app) may cost per day or month, and what the
platform does once it has cost that much.

As AWS Budgets: an amount in the price sheet's currency over a calendar period in UTC; crossing
it notifies (a `nimbus.budget.exceeded` platform event), and with `action="throttle"` the
platform also stops invoking the function until the period rolls over or the budget is raised.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nimbus.spec.base import Model

Period = Literal["day", "month"]
BudgetAction = Literal["notify", "throttle"]


class Budget(Model):
    amount: float = Field(gt=0, le=1e12, description="in the price sheet's currency")
    period: Period = Field("month", description="a calendar day or month, in UTC")
    action: BudgetAction = Field("notify", description="throttle: also refuse invocations")
