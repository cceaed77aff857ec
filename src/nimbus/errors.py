"""The one exception tree of nimbus; each error carries its HTTP status and CLI exit code.

NimbusError
├── SpecError            the app definition is invalid               (400, exit 2)
├── InvalidRequest       a service call's arguments are invalid      (400, exit 2)
│   └── PayloadTooLarge  a message, record, item or object over its limit (413)
├── Unauthorized         the platform API needs its token            (401, exit 8)
├── PermissionDenied     the function did not declare the resource   (403, exit 7)
├── NotFound             unknown function, resource, item, dead letter (404, exit 4)
│   └── Gone             the WebSocket connection is no longer there (410)
├── Conflict             the request contradicts the current state   (409, exit 5)
│   └── ConditionFailed  a conditional write's condition is false
├── Throttled            no capacity for a synchronous call          (429, exit 6)
├── PlatformUnavailable  no running platform answers                 (503, exit 3)
├── FunctionFailed       an invocation a client asked for failed     (502, exit 1)
└── HTTPError            raised by a handler to answer with a status
    └── BadRequest       the request body or parameters are malformed (400)
"""

from __future__ import annotations


class NimbusError(Exception):
    """Root of every error nimbus raises on purpose."""

    status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(NimbusError):
    """The app definition (decorators or nimbus.yaml) is invalid; nothing was applied."""

    status = 400
    exit_code = 2


class InvalidRequest(NimbusError):
    """A service call's arguments are invalid (bad pattern, unknown option, wrong type);
    nothing was changed."""

    status = 400
    exit_code = 2


class PayloadTooLarge(InvalidRequest):
    status = 413


class Unauthorized(NimbusError):
    """A platform API request without the platform's token, or with another one."""

    status = 401
    exit_code = 8


class PermissionDenied(NimbusError):
    """The function called a resource it did not declare in `uses`."""

    status = 403
    exit_code = 7


class NotFound(NimbusError):
    status = 404
    exit_code = 4


class Gone(NotFound):
    """The WebSocket connection closed, was dropped or never existed (API Gateway's
    GoneException): nothing was sent."""

    status = 410


class Conflict(NimbusError):
    status = 409
    exit_code = 5


class ConditionFailed(Conflict):
    """A conditional write found the item not as the condition required; nothing was written."""


class Throttled(NimbusError):
    """Every instance the function may have is busy; a synchronous caller should retry later."""

    status = 429
    exit_code = 6

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PlatformUnavailable(NimbusError):
    status = 503
    exit_code = 3


class FunctionFailed(NimbusError):
    """The function a client invoked failed (an error, a timeout, a crash): what the platform
    recorded about it, so that callers outside can handle it like a local exception."""

    status = 502

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        outcome: str,
        request_id: str | None = None,
        traceback: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.outcome = outcome
        self.request_id = request_id
        self.traceback = traceback or []


class HTTPError(NimbusError):
    """Raise from an HTTP handler to answer with this status and detail."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail or f"HTTP {status}")
        self.status = status
        self.detail = detail


class BadRequest(HTTPError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


SERVICE_ERRORS: dict[str, type[NimbusError]] = {
    error.__name__: error
    for error in (
        NimbusError, InvalidRequest, PayloadTooLarge, PermissionDenied, NotFound, Gone, Conflict,
        ConditionFailed, Throttled, PlatformUnavailable,
    )
}  # fmt: skip
"""The errors a service call can raise in a function, rebuilt there by name."""
