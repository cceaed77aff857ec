"""Grubbs' test for one outlier (Grubbs 1969; NIST/SEMATECH e-Handbook of Statistical Methods,
section 1.3.5.17), applied to a new reading against a sliding window of earlier ones.

G = |x - mean| / s over the window plus the new reading x; the reading is an outlier when it is
the sample's most extreme value and G exceeds the two-sided critical value

    G_crit = (n - 1) / sqrt(n) * sqrt(t^2 / (n - 2 + t^2)),  t = t(alpha / (2n), n - 2)

where t(p, df) is the upper p quantile of Student's t distribution. The test assumes the
window is roughly normal, which is what steady machine telemetry looks like. Pure Python: the
quantile comes from integrating Student's t density (Simpson's rule) and bisecting.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

SIMPSON_STEPS = 1000  # even; the tail probabilities this needs are accurate to ~1e-9
BISECTIONS = 50


@dataclass(frozen=True)
class Verdict:
    """The test's outcome; `mean` and `stdev` describe the window (what is normal)."""

    outlier: bool
    g: float
    critical: float
    mean: float
    stdev: float


def student_t_upper_tail(x: float, df: int) -> float:
    """P(T > x) for Student's t with `df` degrees of freedom, x >= 0."""
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    step = x / SIMPSON_STEPS

    def density(t: float) -> float:
        return scale * (1 + t * t / df) ** (-(df + 1) / 2)

    inner = sum((4 if k % 2 else 2) * density(k * step) for k in range(1, SIMPSON_STEPS))
    return 0.5 - (density(0.0) + inner + density(x)) * step / 3


def student_t_quantile(upper: float, df: int) -> float:
    """The x with P(T > x) = upper (0 < upper < 0.5)."""
    low, high = 0.0, 1.0
    while student_t_upper_tail(high, df) > upper:
        low, high = high, high * 2
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        if student_t_upper_tail(middle, df) > upper:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@lru_cache(maxsize=256)
def critical_value(n: int, alpha: float) -> float:
    """Grubbs' two-sided critical value for a sample of n (n >= 3) at significance alpha."""
    t = student_t_quantile(alpha / (2 * n), n - 2)
    return (n - 1) / math.sqrt(n) * math.sqrt(t * t / (n - 2 + t * t))


def check_reading(window: list[float], reading: float, alpha: float) -> Verdict:
    """Whether `reading` is an outlier of the window (at least 2 readings) it would join."""
    sample = [*window, reading]
    mean, stdev = statistics.fmean(sample), statistics.stdev(sample)
    critical = critical_value(len(sample), alpha)
    usual = (statistics.fmean(window), statistics.stdev(window))
    if stdev == 0:
        return Verdict(False, 0.0, critical, *usual)
    g = abs(reading - mean) / stdev
    most_extreme = all(abs(value - mean) <= abs(reading - mean) for value in window)
    return Verdict(most_extreme and g > critical, g, critical, *usual)
