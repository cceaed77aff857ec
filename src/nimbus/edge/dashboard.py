"""The web dashboard (/_nimbus/dashboard) and the time series its charts draw (/_nimbus/series).

The page's files are static and hold no data, so they are served without the platform's token
(`PAGE_PATHS`, opened by edge/auth.py); the page reads the token from its URL's fragment (which
browsers never send to a server), keeps it in the tab's sessionStorage, and calls the platform
API with `Authorization: Bearer`. A strict Content-Security-Policy keeps the page to its own
scripts and to this origin. No build step and no CDN: plain files, charts drawn as inline SVG.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.edge.admin import _whole_number, json_response
from nimbus.edge.gateway import ADMIN_PREFIX
from nimbus.errors import NotFound
from nimbus.ops import timeseries

if TYPE_CHECKING:
    from nimbus.controller import Controller

PREFIX = f"{ADMIN_PREFIX}/dashboard"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "panels.js": "text/javascript; charset=utf-8",
    "invocations.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
PAGE_PATHS = frozenset({PREFIX, f"{PREFIX}/", *(f"{PREFIX}/{name}" for name in ASSETS)})
"""Everything the page is made of: open to anyone, as it holds no data."""
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",  # revalidate: an upgraded platform serves its own page
}
DEFAULT_WINDOW = 3600
DEFAULT_BUCKETS = 60


def _asset(name: str) -> bytes:
    return (resources.files("nimbus.edge") / "dashboard_static" / name).read_bytes()


async def page(request: Request) -> Response:
    name = request.path_params.get("asset", "index.html")
    if name not in ASSETS:
        raise NotFound(f"the dashboard has no file {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers=HEADERS)


def dashboard_routes(controller: Controller) -> list[Route]:
    async def series(request: Request) -> Response:
        """Per function and time bucket: invocations, errors, durations, concurrency."""
        seconds = _whole_number(request, "window", DEFAULT_WINDOW, 1, timeseries.MAX_WINDOW)
        buckets = _whole_number(request, "buckets", DEFAULT_BUCKETS, 1, timeseries.MAX_BUCKETS)
        window = timeseries.Window.ending(time.time(), seconds, buckets)
        specs = controller.spec.functions if controller.spec else {}
        wanted = request.query_params.get("function")
        if wanted is not None and wanted not in specs:
            raise NotFound(f"no function named {wanted!r}")
        names = [wanted] if wanted else sorted(specs)
        lookback = max((specs[name].timeout for name in names), default=0.0)
        found = await timeseries.series(controller.store, names, window, lookback)
        return json_response(found)

    return [
        Route(PREFIX, page),
        Route(f"{PREFIX}/", page),
        Route(f"{PREFIX}/{{asset}}", page),
        Route(f"{ADMIN_PREFIX}/series", series),
    ]
