"""Which new traces are recorded: the first `per_second` each second, then `ratio` of the rest.

This is the shape of AWS X-Ray's default sampling rule (a reservoir of 1 trace per second, then
5 % of the rest, what Lambda's active tracing uses), with a reservoir sized so that everything
a person does by hand is traced and only load is sampled. Recording a trace costs the platform
far more than deciding not to, so under load most invocations only pay for the decision.

Only a trace's root is decided here: an invocation that continues a caller's trace follows the
caller's `sampled` flag (parent-based sampling, as OpenTelemetry's default sampler does), so a
trace is recorded whole or not at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Sampler:
    __slots__ = ("_clock", "_per_second", "_random", "_ratio", "_second", "_taken")

    def __init__(
        self,
        per_second: int,
        ratio: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self._per_second = per_second
        self._ratio = ratio
        self._clock = clock
        self._random = random.Random(seed)  # decisions need not be secret
        self._second = -1
        self._taken = 0

    def sample(self) -> bool:
        """Record the trace starting now?"""
        second = int(self._clock())
        if second != self._second:
            self._second, self._taken = second, 0
        if self._taken < self._per_second:
            self._taken += 1
            return True
        return self._random.random() < self._ratio
