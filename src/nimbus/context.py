"""What a handler learns about its invocation: ids, limits, deadline, logger, cold start."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Context:
    request_id: str
    function_name: str
    memory_mb: int
    deadline: float
    """Wall-clock time (seconds since the epoch) at which the invocation times out."""
    cold_start: bool
    trigger: str
    logger: logging.Logger

    def remaining_time(self) -> float:
        """Seconds left before the platform stops this invocation."""
        return max(0.0, self.deadline - time.time())

    def get_remaining_time_in_millis(self) -> int:
        """AWS Lambda's name for `remaining_time`, in milliseconds."""
        return int(self.remaining_time() * 1000)

    @property
    def aws_request_id(self) -> str:
        return self.request_id
