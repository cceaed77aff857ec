"""GET /_nimbus/metrics: the platform's metrics for Prometheus, behind the platform token like
the rest of the admin API (Prometheus sends it with `authorization: {credentials: ...}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.errors import NotFound

if TYPE_CHECKING:
    from nimbus.controller import Controller


def metrics_routes(controller: Controller, prefix: str) -> list[Route]:
    async def metrics(request: Request) -> Response:
        if controller.metrics is None:
            raise NotFound("metrics are off: this platform was started with --no-metrics")
        headers = request.headers
        body, answer = await controller.metrics.scrape(
            headers.get("accept", ""), headers.get("accept-encoding", "")
        )
        return Response(body, headers=answer)

    return [Route(f"{prefix}/metrics", metrics, methods=["GET"])]
