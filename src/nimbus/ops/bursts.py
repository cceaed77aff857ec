"""Coalescing floods of like occurrences (throttles, failures) into few reports.

The first occurrence of a burst is reported at once; the ones after it are counted until the
window (opened by the first) ends, and then reported as one, with their count, opening the next
window. A burst of any length thus costs at most one report per window after the first, and
every occurrence is counted exactly once. CloudWatch alarms summarise a period the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

Key = TypeVar("Key")
Detail = TypeVar("Detail")


@dataclass(frozen=True, slots=True)
class Summary(Generic[Detail]):
    """`count` occurrences, the first of them at `since`; `latest` is the last one's detail."""

    count: int
    since: float
    latest: Detail


@dataclass(slots=True)
class _Window(Generic[Detail]):
    since: float
    latest: Detail
    count: int = 0


class Bursts(Generic[Key, Detail]):
    """The open windows, by key."""

    def __init__(self) -> None:
        self._open: dict[Key, _Window[Detail]] = {}

    def occur(self, key: Key, now: float, detail: Detail) -> bool:
        """Count one occurrence. True: it starts a burst; report it now, and `close` the key
        once the window has passed."""
        window = self._open.get(key)
        if window is None:
            self._open[key] = _Window(now, detail)
            return True
        if window.count == 0:
            window.since = now
        window.count += 1
        window.latest = detail
        return False

    def close(self, key: Key, now: float) -> Summary[Detail] | None:
        """End the key's window: what came after its first occurrence, if anything (then a
        new window opens at `now`: close it again after the window); None ends the burst."""
        window = self._open.pop(key, None)
        if window is None or window.count == 0:
            return None
        self._open[key] = _Window(now, window.latest)
        return Summary(window.count, window.since, window.latest)
