"""Progress of a webhook delivery's work, reported by the functions that do it.

The work a webhook starts often goes on in other functions (through a queue or a topic): each
reports what it did with the delivery's progress token, which the webhook's event carries and
the work passes on (like a Step Functions task token). The token is the capability: whoever
holds it may report on that delivery, and on nothing else. Steps are keyed by name, so a step
reported again by a retried invocation updates the first report instead of adding another.
"""

from __future__ import annotations

from typing import Any

import msgspec

RESOURCE = "@progress"
"""The resource name of progress calls on the service socket (never a declared resource's)."""
MAX_STEP = 200
MAX_DETAIL_BYTES = 64 * 1024
MAX_STEPS = 100
MAX_ERROR = 4096


class ReportStep(msgspec.Struct, tag="progress.step", kw_only=True, frozen=True):
    token: str
    step: str
    percent: float | None = None
    detail: Any = None


class Finish(msgspec.Struct, tag="progress.finish", kw_only=True, frozen=True):
    """The whole work succeeded with `result` (a webhook declared `completion="progress"`)."""

    token: str
    result: Any = None


class Fail(msgspec.Struct, tag="progress.fail", kw_only=True, frozen=True):
    """The whole work failed, for the reason given."""

    token: str
    error: str


ProgressOp = ReportStep | Finish | Fail
