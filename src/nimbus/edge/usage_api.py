"""The platform API's usage endpoints, for `nimbus usage` and the dashboard:

- `GET /_nimbus/usage?since=24h&until=...&by=all|function|resource`: per function and
  resource, what was used in the window and its cost under the platform's price sheet, with
  every budget as it stands (the shape: `UsageReport`, docs/usage.md);
- `GET /_nimbus/usage/prices`: the price sheet in force.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.edge.admin import json_response
from nimbus.ops.time_window import moment
from nimbus.ops.usage.report import parse_by

if TYPE_CHECKING:
    from nimbus.controller import Controller

DEFAULT_SINCE = "24h"


class UsageAPI:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    async def usage(self, request: Request) -> Response:
        query, now = request.query_params, time.time()
        since = moment(query.get("since") or DEFAULT_SINCE, now, "since")
        until = moment(query["until"], now, "until") if query.get("until") else now
        by = parse_by(query.get("by") or "all")
        return json_response(await self.controller.usage.report(since, until, by))

    async def prices(self, request: Request) -> Response:
        return json_response(self.controller.usage.sheet.model_dump(mode="json"))


def usage_routes(controller: Controller, prefix: str) -> list[Route]:
    api = UsageAPI(controller)
    return [
        Route(f"{prefix}/usage", api.usage, methods=["GET"]),
        Route(f"{prefix}/usage/prices", api.prices, methods=["GET"]),
    ]
