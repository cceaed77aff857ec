"""A small client of the admin API, used by the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from nimbus.errors import Conflict, NimbusError, NotFound, PlatformUnavailable, SpecError, Throttled

DEFAULT_URL = "http://127.0.0.1:8080"
_ERRORS: dict[int, type[NimbusError]] = {400: SpecError, 404: NotFound, 409: Conflict}


def discover_url(data_dir: Path) -> str:
    """NIMBUS_URL, else the URL a platform started from this folder wrote down, else the default."""
    if url := os.environ.get("NIMBUS_URL"):
        return url
    try:
        return str(json.loads((data_dir / "platform.json").read_text())["url"])
    except (OSError, ValueError, KeyError):
        return DEFAULT_URL


class AdminClient:
    def __init__(self, url: str, timeout: float = 960.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/_nimbus", timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise PlatformUnavailable(
                f"no nimbus platform answers at {self.url} ({error.__class__.__name__}); "
                "start one with `nimbus up APP` or set NIMBUS_URL"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text or f"HTTP {response.status_code}"
            if response.status_code == 429:
                raise Throttled(str(message), int(response.headers.get("retry-after", "1")))
            error_type = _ERRORS.get(response.status_code, NimbusError)
            raise error_type(str(message))
        return response.json()
