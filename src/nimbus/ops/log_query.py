"""Which log lines a reader wants: a function, a request, a level and above, a text, a time
window. One query, answered by one SQL statement over the logs table.

Levels are Python's logging levels; `--level WARNING` keeps WARNING, ERROR and CRITICAL.
Printed output counts as INFO (stdout) and ERROR (stderr). The text is matched as it is
(case-sensitive, as grep and CloudWatch Logs filter terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nimbus.errors import InvalidRequest
from nimbus.ops.time_window import moment

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
MAX_TEXT = 1024


@dataclass(frozen=True, slots=True)
class LogQuery:
    function: str | None = None
    request_id: str | None = None
    level: str | None = None
    """The lowest level wanted (one of LEVELS)."""
    grep: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (ANDed) and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("function", self.function), ("request_id", self.request_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if self.level is not None:
            wanted = LEVELS[LEVELS.index(self.level) :]
            conditions.append(f"level IN ({','.join('?' * len(wanted))})")
            params += wanted
        if self.grep is not None:
            conditions.append("instr(message, ?) > 0")
            params.append(self.grep)
        if self.since is not None:
            conditions.append("time >= ?")
            params.append(self.since)
        if self.until is not None:
            conditions.append("time < ?")
            params.append(self.until)
        return conditions, params


def level_named(text: str) -> str:
    """The level `text` names (any case, WARN and FATAL too); a clear error for others."""
    name = ALIASES.get(text.upper(), text.upper())
    if name not in LEVELS:
        raise InvalidRequest(f"level {text!r} is not one of {', '.join(LEVELS)}")
    return name


def query_from(params: Mapping[str, str], now: float) -> LogQuery:
    """The query of the logs API's parameters: function, request_id, level, grep, since,
    until (times as `moment` reads them)."""
    grep = params.get("grep") or None
    if grep is not None and len(grep) > MAX_TEXT:
        raise InvalidRequest(f"grep takes at most {MAX_TEXT} characters")
    level, since, until = params.get("level"), params.get("since"), params.get("until")
    return LogQuery(
        function=params.get("function") or None,
        request_id=params.get("request_id") or None,
        level=level_named(level) if level else None,
        grep=grep,
        since=moment(since, now, "since") if since else None,
        until=moment(until, now, "until") if until else None,
    )
