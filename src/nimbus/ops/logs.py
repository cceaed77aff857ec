"""Where function output goes: the store (queryable per function and request) and the console."""

from __future__ import annotations

import time
from typing import TextIO

from nimbus.compute.protocol import ErrorInfo, Log
from nimbus.ids import short_id
from nimbus.ops.store import Store

PLATFORM = "nimbus"


class LogSink:
    def __init__(self, store: Store, echo: TextIO | None = None) -> None:
        self._store = store
        self._echo = echo

    def __call__(self, function: str, log: Log) -> None:
        self.write(function, log.id, log.level, log.message, log.time, log.trace_id, log.extra)

    def write(
        self, function: str, request_id: str, level: str, message: str, at: float,
        trace_id: str = "", extra: str | None = None,
    ) -> None:  # fmt: skip
        self._store.add_log(at, function, request_id, level, message, trace_id, extra)
        if self._echo is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(at))
            self._echo.write(f"{stamp} {function} {short_id(request_id)} {level:<5} {message}\n")

    def platform(self, message: str, level: str = "ERROR") -> None:
        """What the platform itself has to say, logged under the function name `nimbus`."""
        self.write(PLATFORM, "", level, message, time.time())

    def error(self, function: str, request_id: str, error: ErrorInfo) -> None:
        """A failed invocation's error, with its traceback, goes to the function's logs too."""
        lines = [f"{error.kind} {error.type}: {error.message}", *error.traceback]
        self.write(function, request_id, "ERROR", "\n".join(lines), time.time())
