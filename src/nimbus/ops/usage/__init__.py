"""Usage metering and the cost model: what functions and resources used, per hour and day, what
that costs under a price sheet, and the budgets that watch it (docs/usage.md)."""
