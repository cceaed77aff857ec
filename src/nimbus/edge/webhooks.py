"""Inbound webhooks: verify, accept with 202 and a status URL, run asynchronously, report.

`POST <path>`: the signature is verified before anything is stored or run (401 otherwise, and
nothing is kept, not even a log line). A verified delivery is committed, then submitted to the
asynchronous invoker under a job id derived from the function, the path and the provider's
delivery id, so a replay of an accepted delivery gets the same 202 and status URL and runs
nothing again. The function's FailurePolicy retries it.

`GET <path>/deliveries/<token>`: the status document (a capability URL: the token is random).
It shows the job's status and attempts, the progress functions reported with the delivery's
token (`nimbus.Progress`), and the result or error. With `completion="progress"` the work ends
when a function calls `Progress.finish` or `fail` (the webhook's own handler having succeeded),
else when the handler's job ends. Then the callback, if declared, gets the same document.

A finished delivery (its work ended, its callback settled) is forgotten after its webhook's
`retention`, 7 days by default: that is the replay window, beyond which the same delivery id
is a new delivery (and runs again), and its status URL answers 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from nimbus.compute.async_invoke import AsyncInvoker
from nimbus.compute.protocol import HttpEvent
from nimbus.edge.callbacks import Callbacks
from nimbus.edge.gateway import (
    JSON,
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    _error,
    _read_body,
    _send,
)
from nimbus.edge.signatures import Unverified, Verified, Verifier, verifier_for
from nimbus.errors import InvalidRequest, NotFound, SpecError
from nimbus.events import aws, trace
from nimbus.events.types import WEBHOOK_DELIVERY, WebhookEvent
from nimbus.ops.deliveries import Deliveries, Delivery, Step
from nimbus.ops.logs import LogSink
from nimbus.ops.store import Job, Store
from nimbus.services import progress
from nimbus.spec.model import AppSpec
from nimbus.spec.paths import STATUS_SEGMENT
from nimbus.spec.webhooks import RETENTION, WebhookTrigger

MAX_DELIVERY_ID = 256
TRIGGER_PREFIX = "webhook:"
DONE = ("succeeded", "failed")
NO_STORE = (b"cache-control", b"no-store")
SWEEP_INTERVAL = 600.0  # seconds between sweeps, or a shorter retention
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Route:
    """A deployed webhook: its function and settings, and its verifier keyed with the secrets."""

    function: str
    trigger: WebhookTrigger
    style: str
    verifier: Verifier


class Webhooks:
    """The webhooks of the deployed app: the gateway hands them their paths' requests."""

    def __init__(
        self, data_dir: Path, jobs: AsyncInvoker, store: Store, logs: LogSink, *, fsync: bool
    ) -> None:
        self._deliveries = Deliveries(data_dir, fsync=fsync)
        self._jobs = jobs
        self._store = store
        self._logs = logs
        self._routes: dict[str, Route] = {}
        self._accepting: dict[str, asyncio.Event] = {}
        self._waiting: set[str] = set()  # jobs whose end may make a callback due
        self._tasks: set[asyncio.Task[None]] = set()
        self._callbacks = Callbacks(self._deliveries, self._document, logs)
        jobs.on_finished.append(self._job_finished)

    # deploy

    def prepare(self, spec: AppSpec, environ: Mapping[str, str] = os.environ) -> dict[str, Route]:
        """Each webhook's verifier, keyed with the secrets' values read now from the platform's
        environment: an unset one fails the deploy (SpecError) before anything changes."""
        routes = {}
        for function in spec.functions.values():
            for trigger in function.triggers:
                if isinstance(trigger, WebhookTrigger):
                    values = [environ.get(name, "") for name in trigger.secret]
                    missing = [n for n, v in zip(trigger.secret, values, strict=True) if not v]
                    if missing:
                        raise SpecError(
                            f"function {function.name!r}: the webhook {trigger.path} takes its "
                            f"secret from ${missing[0]}, which is not set in the platform's "
                            "environment (set it where `nimbus up` runs)"
                        )
                    verifier = verifier_for(trigger, values)
                    routes[trigger.path] = Route(function.name, trigger, function.style, verifier)
        return routes

    def install(self, routes: dict[str, Route]) -> None:
        self._routes = routes

    async def recover(self) -> None:
        """After a restart: callbacks not sent yet are sent; work that ended meanwhile is
        noticed (a job may have finished just before the stop)."""
        for delivery in await self._deliveries.unsettled():
            if delivery.callback_state == "pending":
                self._callbacks.schedule(delivery.token, delivery.callback_next_at or 0.0)
            else:
                self._waiting.add(delivery.job_id)
                self._background(self._settle(delivery.token, None))
        self._background(self._sweep_now_and_then())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._callbacks.close()
        self._deliveries.close()

    # retention

    async def sweep(self, now: float) -> int:
        """Forget the finished deliveries older than their webhook's retention (their steps
        too); returns how many. One whose work or callback goes on is kept."""
        forgotten = 0
        await self._store.db.barrier()  # the jobs' latest states
        for path in await self._deliveries.paths():
            route = self._routes.get(path)
            retention = RETENTION if route is None else route.trigger.retention
            after = (0.0, "")
            while batch := await self._deliveries.settled_before(
                path, now - retention, after, SWEEP_BATCH
            ):
                after = (batch[-1].accepted_at, batch[-1].token)
                done = [d.token for d in batch if await self._finished(d)]
                await self._deliveries.forget(done)
                forgotten += len(done)
        return forgotten

    async def _finished(self, delivery: Delivery) -> bool:
        if delivery.job_id in self._accepting:  # a replay is being answered right now
            return False
        status, _, _ = outcome(delivery, await self._store.job(delivery.job_id))
        return status in DONE

    async def _sweep_now_and_then(self) -> None:
        while True:
            retentions = [route.trigger.retention for route in self._routes.values()]
            await asyncio.sleep(min([SWEEP_INTERVAL, *retentions]))
            try:
                await self.sweep(time.time())
            except Exception as error:  # the next sweep tries again
                self._logs.platform(f"the sweep of webhook deliveries failed: {error!r}")

    # the gateway's part

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, path: str, token: str | None, limit: int
    ) -> None:
        """Answer a request the router matched to webhook `path` (`token`: its status URL)."""
        method: str = scope["method"]
        route = self._routes.get(path)
        if route is None:
            await _error(send, 404, f"no route for {method} {scope['path']}")
        elif token is not None:
            await self._status(send, method, path, token)
        elif method != "POST":
            await _error(send, 405, f"method {method} not allowed on {path}", [(b"allow", b"POST")])
        else:
            await self._receive(scope, receive, send, route, limit)

    async def _receive(
        self, scope: Scope, receive: Receive, send: Send, route: Route, limit: int
    ) -> None:
        try:
            body = await _read_body(scope, receive, limit)
        except BodyTooLarge as error:
            await _error(send, 413, error.message, [(b"connection", b"close")])
            return
        except ClientGone:
            return
        headers = _headers(scope["headers"])
        try:
            verified = route.verifier.verify(headers, body, time.time())
        except Unverified as error:
            await _error(send, 401, f"the webhook signature is not valid: {error.message}")
            return
        if len(verified.delivery_id) > MAX_DELIVERY_ID:
            await _error(send, 400, f"the delivery id is over {MAX_DELIVERY_ID} characters")
            return
        try:
            delivery, job, duplicate = await self._accept(route, verified, scope, headers, body)
        except NotFound:  # redeployed without it meanwhile
            await _error(send, 404, f"no route for POST {route.trigger.path}")
            return
        url = status_url(delivery)
        answer: dict[str, Any] = {"delivery_id": delivery.delivery_id, "status": job.status}
        answer |= {"status_url": url, "duplicate": duplicate}
        headers_out = [JSON, (b"location", url.encode()), NO_STORE]
        await _send(send, 202, headers_out, msgspec.json.encode(answer))

    async def _accept(
        self,
        route: Route,
        verified: Verified,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[Delivery, Job, bool]:
        """Commit the delivery, then its job; one at a time per delivery id, so that replays
        racing each other still make one job."""
        trigger = route.trigger
        key = f"{route.function}\0{trigger.path}\0{verified.delivery_id}"
        job_id = hashlib.sha256(key.encode()).hexdigest()[:32]
        while (busy := self._accepting.get(job_id)) is not None:
            await busy.wait()
        self._accepting[job_id] = accepting = asyncio.Event()
        try:
            candidate = Delivery(
                token=secrets.token_urlsafe(24), job_id=job_id, function=route.function,
                path=trigger.path, provider=trigger.verify, delivery_id=verified.delivery_id,
                accepted_at=time.time(), completion=trigger.completion,
                callback_url=trigger.callback,
                callback_state="none" if trigger.callback is None else "waiting",
            )  # fmt: skip
            delivery = await self._deliveries.add(candidate)
            duplicate = delivery is not candidate
            if delivery.callback_state == "waiting":
                self._waiting.add(job_id)
            parent = headers.get("traceparent")
            job = await self._jobs.submit(
                route.function,
                _payload(route, verified, delivery, scope, headers, body),
                TRIGGER_PREFIX + trigger.path,
                job_id=job_id,
                traceparent=parent if trace.parse(parent) else None,
                new=not duplicate,  # its delivery was new: so is the job named after it
            )
        finally:
            del self._accepting[job_id]
            accepting.set()
        return delivery, job, duplicate

    async def _status(self, send: Send, method: str, path: str, token: str) -> None:
        if method not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD")]
            await _error(send, 405, f"method {method} not allowed on a status URL", allow)
            return
        delivery = await self._deliveries.by_token(token)
        if delivery is None or delivery.path != path:
            await _error(send, 404, "no such delivery")
            return
        body = await self._document(delivery)
        await _send(send, 200, [JSON, NO_STORE], body, head=method == "HEAD")

    # progress, completion, callbacks

    async def perform(self, function: str, op: progress.ProgressOp) -> Any:
        """A function's Progress call (the token is its permission)."""
        delivery = await self._deliveries.by_token(op.token)
        if delivery is None:
            raise NotFound("no webhook delivery has this progress token")
        if isinstance(op, progress.ReportStep):
            await self._deliveries.report_step(op.token, await self._step(function, op))
            return None
        if delivery.completion != "progress":
            raise InvalidRequest(
                f"the delivery ends when {delivery.function!r} returns: Progress.finish and "
                "fail are for webhooks declared with completion='progress'"
            )
        if isinstance(op, progress.Finish):
            result = _json(op.result, "the result")
            changed = await self._deliveries.finish(
                op.token, "succeeded", result, None, time.time()
            )
        else:
            error = op.error[: progress.MAX_ERROR]
            changed = await self._deliveries.finish(op.token, "failed", None, error, time.time())
        if changed:
            await self._settle(op.token, None)
        return changed

    async def _step(self, function: str, op: progress.ReportStep) -> Step:
        if not 0 < len(op.step) <= progress.MAX_STEP:
            raise InvalidRequest(f"a step's name has 1 to {progress.MAX_STEP} characters")
        if op.percent is not None and not 0 <= op.percent <= 100:
            raise InvalidRequest(f"percent is from 0 to 100, not {op.percent}")
        count, known = await self._deliveries.step_count(op.token, op.step)
        if not known and count >= progress.MAX_STEPS:
            raise InvalidRequest(f"a delivery has at most {progress.MAX_STEPS} steps")
        detail = None if op.detail is None else msgspec.Raw(_json(op.detail, "the detail"))
        return Step(step=op.step, function=function, time=time.time(), percent=op.percent,
                    detail=detail)  # fmt: skip

    def _job_finished(self, job: Job) -> None:
        if job.id in self._waiting:
            self._waiting.discard(job.id)
            self._background(self._settle_job(job))

    async def _settle_job(self, job: Job) -> None:
        delivery = await self._deliveries.by_job(job.id)
        if delivery is not None:
            await self._settle(delivery.token, job)

    async def _settle(self, token: str, job: Job | None) -> None:
        """If the delivery's work has ended, its callback becomes due (once)."""
        delivery = await self._deliveries.by_token(token)
        if delivery is None or delivery.callback_state != "waiting":
            return
        job = job or await self._job(delivery.job_id)
        status, _, _ = outcome(delivery, job)
        if status in DONE and await self._deliveries.claim_callback(token, time.time()):
            self._callbacks.schedule(token, 0.0)

    async def _job(self, job_id: str) -> Job | None:
        await self._store.db.barrier()  # a finished job's state may still be on its way
        return await self._store.job(job_id)

    async def _document(self, delivery: Delivery) -> bytes:
        """The status document of a delivery: what its status URL and callback show."""
        job = await self._job(delivery.job_id)
        status, result, error = outcome(delivery, job)
        steps = await self._deliveries.steps(delivery.token)
        moments = [delivery.accepted_at, delivery.finished_at or 0.0, *(s.time for s in steps)]
        document: dict[str, Any] = {
            "delivery_id": delivery.delivery_id, "provider": delivery.provider,
            "function": delivery.function, "status": status, "done": status in DONE,
            "attempts": job.attempts if job else 0, "accepted_at": delivery.accepted_at,
            "updated_at": max([*moments, job.updated_at] if job else moments),
            "progress": {"percent": delivery.percent, "steps": steps},
            "result": result, "error": error,
        }  # fmt: skip
        if delivery.callback_url is not None:
            document["callback"] = {
                "status": delivery.callback_state, "attempts": delivery.callback_attempts,
                "error": delivery.callback_error,
            }  # fmt: skip
        return msgspec.json.encode(document)

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def outcome(delivery: Delivery, job: Job | None) -> tuple[str, Any, Any]:
    """The delivery's status (queued, running, retrying, succeeded or failed), result and
    error: the handler's job's, or with completion="progress" what the work reported."""
    if job is None:
        return "queued", None, None  # accepted; its job is committed right after
    if job.status == "failed":
        info = job.error
        return "failed", None, info and {"type": info.type, "message": info.message}
    if delivery.outcome is not None:
        failure = delivery.error and {"type": "Failed", "message": delivery.error}
        return delivery.outcome, _raw(delivery.result), failure
    if delivery.completion == "handler":
        return job.status, _raw(job.result) if job.status == "succeeded" else None, None
    return ("running" if job.status == "succeeded" else job.status), None, None


def status_url(delivery: Delivery) -> str:
    return f"{delivery.path}/{STATUS_SEGMENT}/{delivery.token}"


def _raw(value: bytes | None) -> msgspec.Raw | None:
    return None if value is None else msgspec.Raw(value)


def _json(value: Any, what: str) -> bytes:
    encoded = msgspec.json.encode(value)
    if len(encoded) > progress.MAX_DETAIL_BYTES:
        raise InvalidRequest(f"{what} is over {progress.MAX_DETAIL_BYTES} bytes of JSON")
    return encoded


def _headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; repeated headers' values joined with commas (RFC 9110)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _payload(
    route: Route,
    verified: Verified,
    delivery: Delivery,
    scope: Scope,
    headers: dict[str, str],
    body: bytes,
) -> bytes:
    """The handler's event: a WebhookEvent, or (style aws) API Gateway's HTTP API event, whose
    headers gain `x-nimbus-delivery-id` and `x-nimbus-progress-token`."""
    path, url = route.trigger.path, status_url(delivery)
    if route.style == "aws":
        extra = [(b"x-nimbus-delivery-id", delivery.delivery_id.encode()),
                 (b"x-nimbus-progress-token", delivery.token.encode())]  # fmt: skip
        http = HttpEvent("POST", path, {}, scope["query_string"], [*scope["headers"], *extra],
                         body, path)  # fmt: skip
        return msgspec.json.encode(aws.http_api_event(http, route=f"POST {path}"))
    parent = headers.get("traceparent")
    event = WebhookEvent(
        id=verified.delivery_id, source=f"nimbus:webhook:{path}", provider=route.trigger.verify,
        method="POST", path=path, headers=headers, body=body, progress_token=delivery.token,
        status_url=url, traceparent=parent if trace.parse(parent) else None,
        type=verified.event_type or WEBHOOK_DELIVERY,
    )  # fmt: skip
    return msgspec.json.encode(event)
