"""The platform API's trace endpoints, for `nimbus traces` / `nimbus trace` and the dashboard:

- `GET /_nimbus/traces?function=F&limit=N`: the latest traces (that F took part in), the one
  with the newest span first, each summed up: root span, function, start, duration, span and
  error counts;
- `GET /_nimbus/traces/{trace_id}`: every span of one trace that is still kept, and the spans
  of other traces linked to it (the batches that processed its messages).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.edge.admin import _limit, json_response
from nimbus.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from nimbus.controller import Controller
    from nimbus.ops.tracing.store import TraceStore

TRACE_ID = re.compile(r"[0-9a-f]{32}")


class TracesAPI:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    async def traces(self, request: Request) -> Response:
        store = await self._store()
        function = request.query_params.get("function") or None
        return json_response(await store.recent(function, _limit(request, 20)))

    async def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        if not TRACE_ID.fullmatch(trace_id):
            raise InvalidRequest(f"{trace_id!r} is not a trace id (32 lower-case hex digits)")
        found = await (await self._store()).trace(trace_id)
        if found is None:
            raise NotFound(f"no trace {trace_id!r} (or its spans are no longer kept)")
        return json_response(found)

    async def _store(self) -> TraceStore:
        """The local span store, with every span recorded so far in it."""
        tracer = self.controller.tracer
        if tracer is None:
            raise Conflict("tracing is off on this platform (it was started with --no-traces)")
        await tracer.caught_up()
        return tracer.store


def trace_routes(controller: Controller, prefix: str) -> list[Route]:
    api = TracesAPI(controller)
    return [
        Route(f"{prefix}/traces", api.traces, methods=["GET"]),
        Route(f"{prefix}/traces/{{trace_id}}", api.trace, methods=["GET"]),
    ]
