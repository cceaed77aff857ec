"""How `nimbus up` meters usage and keeps logs: its options, checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nimbus.errors import InvalidRequest
from nimbus.ops.time_window import byte_size
from nimbus.ops.usage.prices import load_sheet

DEFAULT_LOG_LIMIT = "100MB"
DEFAULT_SAMPLE_INTERVAL = 300.0
MIN_LOG_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class OpsConfig:
    metering: bool = True
    """Off: nothing is counted (no usage, no budgets), for the last percent of throughput."""
    prices: Path | None = None
    """The price sheet; None: the data folder's prices.yaml, else AWS's list prices."""
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL
    """Seconds between samples of what each resource stores."""
    log_limit: int = byte_size(DEFAULT_LOG_LIMIT, "log limit")
    """Bytes of log lines kept; past it the oldest are dropped."""


def ops_config(
    *,
    metering: bool = True,
    prices: Path | None = None,
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL,
    log_limit: str = DEFAULT_LOG_LIMIT,
) -> OpsConfig:
    """The configuration `nimbus up` was given; a clear error for a bad one."""
    limit = byte_size(log_limit, "--log-limit")
    if limit < MIN_LOG_LIMIT:
        raise InvalidRequest(f"--log-limit must be at least {MIN_LOG_LIMIT} bytes, not {limit}")
    if not 1 <= sample_interval <= 86400:
        raise InvalidRequest("--usage-sample-interval must be from 1 to 86400 seconds")
    if prices is not None:
        load_sheet(prices)  # a bad sheet is an error now, before anything starts
    return OpsConfig(metering, prices, sample_interval, limit)


DEFAULT_OPS = OpsConfig()
