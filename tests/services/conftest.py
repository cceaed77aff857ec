"""The contract suites run once per backend; only the embedded backend exists so far.

Async tests use anyio's pytest plugin (`@pytest.mark.anyio`) on asyncio.
"""

from __future__ import annotations

import pytest

BACKENDS = ["embedded"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test; each service's fixture builds it from this."""
    return str(request.param)
