"""Asynchronous invocation: accept durably, run when capacity allows, retry with backoff like
AWS Lambda (2 retries by default), then dead-letter with the last error.

Push-style triggers (topics, object events, schedules) and destinations submit here too, so
they share its durability, retries, destinations and dead letters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nimbus.compute.failures import Condition, FailedEvent, FailureRouter, too_old
from nimbus.compute.invoker import EventExpired, Invoker
from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import Conflict, NotFound
from nimbus.events.outcome import reported_failures
from nimbus.events.types import InvalidBatchResponse
from nimbus.ids import new_id
from nimbus.ops.logs import LogSink
from nimbus.ops.store import DeadLetter, Job, Store
from nimbus.spec.model import FailurePolicy

BATCH_SOURCES = ("queue", "stream", "table")  # their events are batches with item failures


class AsyncInvoker:
    def __init__(self, invoker: Invoker, store: Store, logs: LogSink) -> None:
        self._invoker = invoker
        self._store = store
        self._logs = logs
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[None]] = set()  # inside an invocation right now
        self._stopping = False
        self.failures: FailureRouter | None = None  # set by the controller, which owns targets
        self.on_finished: list[Callable[[Job], None]] = []
        """Told of each job that succeeded or failed for good (its state is taken, maybe not
        yet committed): what waits for a job's outcome (webhook callbacks) starts from here."""

    async def submit(
        self,
        function: str,
        payload: bytes,
        trigger: str = "async",
        *,
        job_id: str | None = None,
        traceparent: str | None = None,
        new: bool = False,
    ) -> Job:
        """Accept an invocation; returns once the acceptance is committed to disk. Submitting
        a `job_id` that was accepted before returns that job and runs nothing again (`new`:
        the caller knows that none was, and the look-up is skipped)."""
        self._invoker.pool(function)  # unknown function: NotFound, nothing stored
        if job_id is not None and not new:
            accepted = await self._store.job(job_id)
            if accepted is not None:
                return accepted
        now = time.time()
        job = Job(
            id=job_id or new_id(), function=function, payload=payload, status="queued",
            attempts=0, created_at=now, next_at=now, updated_at=now, trigger=trigger,
            traceparent=traceparent,
        )  # fmt: skip
        await self._store.put_job(job, durable=True)
        self._schedule(job)
        return job

    async def recover(self) -> int:
        """After a restart, resume every job that was accepted and not finished (at least once)."""
        jobs = await self._store.pending_jobs()
        for job in jobs:
            self._schedule(job)
        return len(jobs)

    async def redrive(self, letter_id: str) -> Job:
        """Send a dead letter's event to its function again, as a new asynchronous invocation."""
        letter = await self._store.dead_letter(letter_id)
        if letter is not None and not letter.function:
            raise Conflict(
                f"dead letter {letter_id!r} came from {letter.source}, not from a function: "
                "there is no function to re-drive it to"
            )
        if letter is not None and self._policy(letter.function) is None:
            raise NotFound(
                f"dead letter {letter_id!r} failed in function {letter.function!r}, which is no "
                "longer deployed: deploy it again to re-drive the letter"
            )
        job_id, now = new_id(), time.time()
        if letter is None or not await self._store.redrive_dead_letter(letter_id, job_id, now):
            raise NotFound(f"no dead letter {letter_id!r}")
        job = Job(
            id=job_id, function=letter.function, payload=letter.payload, status="queued",
            attempts=0, created_at=now, next_at=now, updated_at=now, trigger=letter.source,
        )  # fmt: skip
        self._schedule(job)
        return job

    async def stop(self, grace: float) -> None:
        """Let running invocations finish (up to `grace` s). Jobs not finished stay pending in
        the store and resume at the next start."""
        self._stopping = True
        for task in self._tasks - self._running:
            task.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        await asyncio.sleep(max(0.0, job.next_at - time.time()))
        if self._stopping:
            return
        try:
            await self._attempt(job)
        except Exception as error:  # the platform failed, not the function
            self._logs.platform(
                f"asynchronous invocation {job.id} of {job.function!r} stopped: {error!r}; "
                "it resumes at the next start"
            )

    async def _attempt(self, job: Job) -> None:
        try:
            spec = self._invoker.pool(job.function).spec
        except NotFound as error:
            await self._dead_letter(job, ErrorInfo("Init", "FunctionNotFound", error.message))
            return
        policy, style = spec.failure, spec.style
        expires_at = job.created_at + policy.max_event_age
        if time.time() > expires_at:
            await self._fail(job, job.error or too_old(policy.max_event_age), "EventAgeExceeded")
            return
        job.status, job.updated_at = "running", time.time()
        await self._store.put_job(job, durable=False)
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            invocation = await self._invoker.invoke(
                job.function, trigger=job.trigger, payload=job.payload, wait=True,
                job_id=job.id, expires_at=expires_at, traceparent=job.traceparent,
            )  # fmt: skip
        except NotFound as error:
            await self._dead_letter(job, ErrorInfo("Init", "FunctionNotFound", error.message))
            return
        except EventExpired:
            await self._fail(job, job.error or too_old(policy.max_event_age), "EventAgeExceeded")
            return
        finally:
            self._running.discard(task)
        job.attempts += 1
        job.request_ids.append(invocation.record.id)
        job.updated_at = time.time()
        failure = invocation.error or _batch_failure(job, style, invocation.result.value)
        if failure is None:
            job.status, job.result, job.error = "succeeded", invocation.result.value, None
            await self._store.put_job(job, durable=False)
            if self.failures is not None:
                await self.failures.succeeded(
                    policy, function=job.function, request_id=invocation.record.id,
                    payload=job.payload, result=job.result or b"null", attempts=job.attempts,
                    traceparent=invocation.traceparent,
                )  # fmt: skip
            self._finished(job)
            return
        job.error = failure
        delay = policy.backoff * 2 ** (job.attempts - 1)
        if job.attempts > policy.retries:
            await self._fail(job, failure, "RetriesExhausted", invocation.traceparent)
            return
        if job.updated_at + delay > expires_at:
            await self._fail(job, failure, "EventAgeExceeded", invocation.traceparent)
            return
        job.status, job.next_at = "retrying", job.updated_at + delay
        await self._store.put_job(job, durable=True)
        self._schedule(job)

    async def _fail(
        self, job: Job, error: ErrorInfo, condition: Condition, traceparent: str | None = None
    ) -> None:
        """Out of retries or too old: the failure router takes it from here, continuing
        `traceparent` (the last invocation's trace context), else the event's own."""
        job.error, job.status, job.updated_at = error, "failed", time.time()
        policy = self._policy(job.function)
        if self.failures is None or policy is None:
            await self._dead_letter(job, error)
            return
        # routed before the job is marked failed: a crash in between runs it once more (at
        # least once) instead of leaving a failed job whose event went nowhere
        await self.failures.failed(
            policy,
            FailedEvent(
                function=job.function, source=job.trigger, payload=job.payload, error=error,
                attempts=job.attempts, condition=condition, first_seen=job.created_at,
                request_id=job.request_ids[-1] if job.request_ids else "", job_id=job.id,
                traceparent=traceparent or job.traceparent,
            ),
        )  # fmt: skip
        await self._store.put_job(job, durable=True)
        self._finished(job)

    def _finished(self, job: Job) -> None:
        for listener in self.on_finished:
            listener(job)

    def _policy(self, function: str) -> FailurePolicy | None:
        try:
            return self._invoker.pool(function).spec.failure
        except NotFound:
            return None

    async def _dead_letter(self, job: Job, error: ErrorInfo) -> None:
        now = time.time()
        job.status, job.error, job.updated_at = "failed", error, now
        letter = DeadLetter(
            id=new_id(), function=job.function, payload=job.payload, error=error,
            attempts=job.attempts, job_id=job.id, created_at=job.created_at, failed_at=now,
            source=job.trigger,
        )  # fmt: skip
        await self._store.add_dead_letter(letter, job)
        self._finished(job)


def _batch_failure(job: Job, style: str, result: bytes) -> ErrorInfo | None:
    """A re-driven batch (from a queue, stream or change feed) whose handler still reports
    items as failed has failed: it must not count as done."""
    if job.trigger.partition(":")[0] not in BATCH_SOURCES:
        return None
    try:
        failed = reported_failures(style, result, None)
    except InvalidBatchResponse as malformed:
        return ErrorInfo("Handler", "InvalidBatchResponse", malformed.message)
    if not failed:
        return None
    return ErrorInfo("Handler", "BatchItemFailure", f"the handler reported {failed} as failed")
