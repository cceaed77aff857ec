"""The admin API under /_nimbus: what the CLI (and later the client SDK) talks to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nimbus.errors import NimbusError, NotFound, SpecError
from nimbus.spec.errors import describe
from nimbus.spec.model import AppSpec

if TYPE_CHECKING:
    from nimbus.controller import Controller

MAX_LIMIT = 1000


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(data), status, headers, media_type="application/json")


def _limit(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 0 < int(raw) <= MAX_LIMIT:
        raise NimbusError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def create_admin(controller: Controller) -> Starlette:
    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "app": controller.spec.name if controller.spec else None})

    async def functions(request: Request) -> Response:
        return json_response(controller.describe_functions())

    async def get_spec(request: Request) -> Response:
        if controller.spec is None:
            raise NotFound("no app is deployed")
        return json_response(controller.spec.model_dump(mode="json"))

    async def plan(request: Request) -> Response:
        return json_response(controller.plan(await _spec_from(request)).model_dump(mode="json"))

    async def apply(request: Request) -> Response:
        result = await controller.apply(await _spec_from(request))
        return json_response(result.model_dump(mode="json"))

    async def invoke(request: Request) -> Response:
        function = request.path_params["function"]
        payload = await request.body() or b"null"
        try:
            msgspec.json.decode(payload)
        except msgspec.DecodeError as error:
            raise NimbusError(f"the event is not valid JSON: {error}") from None
        if request.query_params.get("mode") == "async":
            job = await controller.jobs.submit(function, payload)
            return json_response({"id": job.id, "status": job.status}, 202)
        invocation = await controller.invoker.invoke(function, trigger="invoke", payload=payload)
        record = msgspec.to_builtins(invocation.record)
        result = msgspec.json.decode(invocation.result.value) if invocation.error is None else None
        return json_response({**record, "result": result})

    async def job(request: Request) -> Response:
        found = await controller.store.job(request.path_params["id"])
        if found is None:
            raise NotFound(f"no asynchronous invocation {request.path_params['id']!r}")
        data = msgspec.to_builtins(found)
        data.pop("payload")
        data["result"] = msgspec.json.decode(found.result) if found.result is not None else None
        return json_response(data)

    async def invocations(request: Request) -> Response:
        function = request.query_params.get("function")
        records = await controller.store.invocations(
            function, _limit(request), request.query_params.get("id")
        )
        return json_response(records)

    async def logs(request: Request) -> Response:
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise NimbusError("after must be a log sequence number")
        entries = await controller.store.logs(
            request.query_params.get("function"),
            request.query_params.get("request_id"),
            int(after),
            _limit(request, 100),
        )
        return json_response(entries)

    async def dead_letters(request: Request) -> Response:
        letters = await controller.store.dead_letters(
            request.query_params.get("function"), _limit(request)
        )
        return json_response([_letter(letter) for letter in letters])

    async def dead_letter(request: Request) -> Response:
        letter = await controller.store.dead_letter(request.path_params["id"])
        if letter is None:
            raise NotFound(f"no dead letter {request.path_params['id']!r}")
        return json_response(_letter(letter))

    async def redrive(request: Request) -> Response:
        job = await controller.jobs.redrive(request.path_params["id"])
        return json_response({"id": job.id, "status": job.status}, 202)

    async def on_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, NimbusError)
        status = error.status if error.status != 500 else 400
        headers = {"retry-after": str(error.retry_after)} if hasattr(error, "retry_after") else None
        return json_response({"error": error.message}, status, headers)

    prefix = "/_nimbus"
    routes = [
        Route(f"{prefix}/health", health),
        Route(f"{prefix}/functions", functions),
        Route(f"{prefix}/spec", get_spec, methods=["GET"]),
        Route(f"{prefix}/spec", apply, methods=["PUT"]),
        Route(f"{prefix}/plan", plan, methods=["POST"]),
        Route(f"{prefix}/functions/{{function}}/invoke", invoke, methods=["POST"]),
        Route(f"{prefix}/jobs/{{id}}", job),
        Route(f"{prefix}/invocations", invocations),
        Route(f"{prefix}/logs", logs),
        Route(f"{prefix}/dlq", dead_letters),
        Route(f"{prefix}/dlq/{{id}}", dead_letter),
        Route(f"{prefix}/dlq/{{id}}/redrive", redrive, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={NimbusError: on_error})


def _letter(letter: Any) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(letter)
    data["payload"] = letter.payload.decode("utf-8", errors="replace")
    return data


async def _spec_from(request: Request) -> AppSpec:
    try:
        return AppSpec.model_validate_json(await request.body())
    except ValidationError as error:
        raise SpecError(describe(error, lambda loc: "spec")) from None
