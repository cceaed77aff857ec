"""nimbus: a serverless platform for Python that you run yourself.

import nimbus
app = nimbus.App("hello")

@app.http("GET", "/hello/{name}")
def hello(request: nimbus.Request, context: nimbus.Context) -> dict[str, str]:
    return {"hello": request.params["name"]}
"""

from nimbus.context import Context
from nimbus.errors import (
    BadRequest,
    Conflict,
    HTTPError,
    NimbusError,
    NotFound,
    PlatformUnavailable,
    SpecError,
    Throttled,
)
from nimbus.http import Request, Response
from nimbus.spec.app import App
from nimbus.spec.model import AppSpec, FailurePolicy, FunctionSpec

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppSpec",
    "BadRequest",
    "Conflict",
    "Context",
    "FailurePolicy",
    "FunctionSpec",
    "HTTPError",
    "NimbusError",
    "NotFound",
    "PlatformUnavailable",
    "Request",
    "Response",
    "SpecError",
    "Throttled",
    "__version__",
]
