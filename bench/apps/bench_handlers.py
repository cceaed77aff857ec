"""The benchmarks' handlers. They import nothing from nimbus, so that the baselines can import
and call exactly the same code without the platform."""

from __future__ import annotations

import os
from typing import Any


def noop(event: Any) -> None:
    """Does nothing: what remains of an invocation is the platform's overhead."""
    return None


def cold(event: Any) -> None:
    """Does nothing, on an instance that is stopped as soon as it is idle (keep_alive=0)."""
    return None


def pid(event: Any) -> int:
    """The instance's process id, so that its memory can be read from /proc."""
    return os.getpid()


def hello(request: Any) -> dict[str, str]:
    """The hello function of the HTTP benchmark (`request` is a nimbus.Request)."""
    return {"hello": request.params["name"]}
