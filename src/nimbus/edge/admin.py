"""The admin API under /_nimbus: what the CLI (and later the client SDK) talks to."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.edge.metrics_api import metrics_routes
from nimbus.errors import InvalidRequest, NimbusError, NotFound, SpecError
from nimbus.json_input import decode_json
from nimbus.ops.log_query import query_from
from nimbus.spec.errors import describe
from nimbus.spec.model import AppSpec

if TYPE_CHECKING:
    from nimbus.controller import Controller

MAX_LIMIT = 1000
MAX_SEQUENCE = 2**63 - 1  # SQLite's largest integer
JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(data), status, headers, media_type="application/json")


def _whole_number(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _limit(request: Request, default: int = 50) -> int:
    return _whole_number(request, "limit", default, 1, MAX_LIMIT)


def _job_id(raw: str | None) -> str | None:
    """A caller's own id for an asynchronous invocation: it names the job in URLs."""
    if raw is not None and not JOB_ID.fullmatch(raw):
        raise InvalidRequest(f"id {raw!r} is not 1 to 128 letters, digits, '-', '_', '.', ':'")
    return raw


class AdminAPI:
    """Handlers of the admin API, bound to one controller."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    async def health(self, request: Request) -> Response:
        spec = self.controller.spec
        return json_response({"status": "ok", "app": spec.name if spec else None})

    async def functions(self, request: Request) -> Response:
        return json_response(self.controller.describe_functions())

    async def get_spec(self, request: Request) -> Response:
        if self.controller.spec is None:
            raise NotFound("no app is deployed")
        return json_response(self.controller.spec.model_dump(mode="json"))

    async def plan(self, request: Request) -> Response:
        plan = self.controller.plan(await _spec_from(request))
        return json_response(plan.model_dump(mode="json"))

    async def apply(self, request: Request) -> Response:
        plan = await self.controller.apply(await _spec_from(request))
        return json_response(plan.model_dump(mode="json"))

    async def invoke(self, request: Request) -> Response:
        function = request.path_params["function"]
        payload = await request.body() or b"null"
        try:
            decode_json(payload)
        except msgspec.DecodeError as error:
            raise InvalidRequest(f"the event is not valid JSON: {error}") from None
        if request.query_params.get("mode") == "async":
            job_id = _job_id(request.query_params.get("id"))  # a retried request runs once
            job = await self.controller.jobs.submit(function, payload, job_id=job_id)
            return json_response({"id": job.id, "status": job.status}, 202)
        invocation = await self.controller.invoker.invoke(
            function, trigger="invoke", payload=payload
        )
        record = msgspec.to_builtins(invocation.record)
        ok = invocation.error is None
        result = msgspec.json.decode(invocation.result.value) if ok else None
        return json_response({**record, "result": result})

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["id"]
        found = await self.controller.store.job(job_id)
        if found is None:
            raise NotFound(f"no asynchronous invocation {job_id!r}")
        data = msgspec.to_builtins(found)
        data.pop("payload")
        data["result"] = msgspec.json.decode(found.result) if found.result is not None else None
        return json_response(data)

    async def invocations(self, request: Request) -> Response:
        query = request.query_params
        records = await self.controller.store.invocations(
            query.get("function"), _limit(request), query.get("id")
        )
        return json_response(records)

    async def logs(self, request: Request) -> Response:
        query = query_from(request.query_params, time.time())
        after = _whole_number(request, "after", 0, 0, MAX_SEQUENCE)
        entries = await self.controller.store.logs(query, after, _limit(request, 100))
        return json_response(entries)

    async def dead_letters(self, request: Request) -> Response:
        function = request.query_params.get("function")
        return json_response(await self.controller.dead_letters.latest(function, _limit(request)))

    async def dead_letter(self, request: Request) -> Response:
        return json_response(await self.controller.dead_letters.show(request.path_params["id"]))

    async def redrive_queue(self, request: Request) -> Response:
        redriven = await self.controller.dead_letters.redrive_queue(request.path_params["name"])
        return json_response(redriven)

    async def redrive(self, request: Request) -> Response:
        return json_response(
            await self.controller.dead_letters.redrive(request.path_params["id"]), 202
        )


async def _on_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, NimbusError)
    status = error.status if error.status != 500 else 400
    retry_after = getattr(error, "retry_after", None)
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return json_response({"error": error.message, "type": type(error).__name__}, status, headers)


def create_admin(controller: Controller) -> Starlette:
    api = AdminAPI(controller)
    p = "/_nimbus"
    routes = [
        Route(f"{p}/health", api.health),
        Route(f"{p}/functions", api.functions),
        Route(f"{p}/spec", api.get_spec, methods=["GET"]),
        Route(f"{p}/spec", api.apply, methods=["PUT"]),
        Route(f"{p}/plan", api.plan, methods=["POST"]),
        Route(f"{p}/functions/{{function}}/invoke", api.invoke, methods=["POST"]),
        Route(f"{p}/jobs/{{id}}", api.job),
        Route(f"{p}/invocations", api.invocations),
        Route(f"{p}/logs", api.logs),
        Route(f"{p}/dlq", api.dead_letters),
        Route(f"{p}/dlq/{{id}}", api.dead_letter),
        Route(f"{p}/dlq/{{id}}/redrive", api.redrive, methods=["POST"]),
        Route(f"{p}/queues/{{name}}/redrive", api.redrive_queue, methods=["POST"]),
    ]
    routes += metrics_routes(controller, p)
    from nimbus.edge.resources_api import resource_routes  # it builds on this module

    routes += resource_routes(controller, p)
    from nimbus.edge.traces_api import trace_routes  # it builds on this module

    routes += trace_routes(controller, p)
    from nimbus.edge.dashboard import dashboard_routes  # it builds on this module

    routes += dashboard_routes(controller)
    from nimbus.edge.usage_api import usage_routes  # it builds on this module

    routes += usage_routes(controller, p)
    return Starlette(routes=routes, exception_handlers={NimbusError: _on_error})


async def _spec_from(request: Request) -> AppSpec:
    try:
        return AppSpec.model_validate_json(await request.body())
    except ValidationError as error:
        raise SpecError(describe(error, lambda loc: "spec")) from None
