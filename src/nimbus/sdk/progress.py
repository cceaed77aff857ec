"""`Progress(token)`: report on the work a webhook delivery started, from any function.

Progress(order["progress"]).step("charged", percent=50, detail={"amount": 42})
Progress(order["progress"]).finish({"shipped": True})   # completion="progress" only
"""

from __future__ import annotations

from typing import Any

from nimbus.sdk.client import call
from nimbus.services.progress import RESOURCE, Fail, Finish, ReportStep


class Progress:
    """The progress of one delivery, named by its token (`WebhookEvent.progress_token`)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def step(self, name: str, *, percent: float | None = None, detail: Any = None) -> None:
        """Record that step `name` is done (again: updated, not repeated); `percent` of the
        whole work, if known; `detail` any JSON value, shown on the status URL."""
        op = ReportStep(token=self.token, step=name, percent=percent, detail=detail)
        call(RESOURCE, op, type(None))

    def finish(self, result: Any = None) -> bool:
        """The whole work succeeded: the status URL and the callback get `result`. False if
        the delivery had already finished (a retried invocation): the first outcome stays."""
        return call(RESOURCE, Finish(token=self.token, result=result), bool)

    def fail(self, error: str) -> bool:
        """The whole work failed, because of `error`; False if it had already finished."""
        return call(RESOURCE, Fail(token=self.token, error=error), bool)
