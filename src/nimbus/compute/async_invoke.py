"""Asynchronous invocation: accept durably, run when capacity allows, retry with backoff like
AWS Lambda (2 retries by default), then dead-letter with the last error."""

from __future__ import annotations

import asyncio
import time

from nimbus.compute.invoker import Invoker
from nimbus.compute.protocol import ErrorInfo
from nimbus.errors import NotFound
from nimbus.ids import new_id
from nimbus.ops.store import DeadLetter, Job, Store


class AsyncInvoker:
    def __init__(self, invoker: Invoker, store: Store) -> None:
        self._invoker = invoker
        self._store = store
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, function: str, payload: bytes) -> Job:
        """Accept an invocation; returns once the acceptance is committed to disk."""
        self._invoker.pool(function)  # unknown function: NotFound, nothing stored
        now = time.time()
        job = Job(
            id=new_id(),
            function=function,
            payload=payload,
            status="queued",
            attempts=0,
            created_at=now,
            next_at=now,
            updated_at=now,
        )
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
        job_id, now = new_id(), time.time()
        if letter is None or not await self._store.redrive_dead_letter(letter_id, job_id, now):
            raise NotFound(f"no dead letter {letter_id!r}")
        job = Job(
            id=job_id, function=letter.function, payload=letter.payload, status="queued",
            attempts=0, created_at=now, next_at=now, updated_at=now,
        )  # fmt: skip
        self._schedule(job)
        return job

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        await asyncio.sleep(max(0.0, job.next_at - time.time()))
        try:
            spec = self._invoker.pool(job.function).spec
        except NotFound as error:
            await self._dead_letter(job, ErrorInfo("Init", "FunctionNotFound", error.message))
            return
        if time.time() - job.created_at > spec.failure.max_event_age:
            message = f"the event is older than max_event_age ({spec.failure.max_event_age:g} s)"
            await self._dead_letter(job, job.error or ErrorInfo("Timeout", "EventTooOld", message))
            return
        job.status, job.updated_at = "running", time.time()
        await self._store.put_job(job, durable=False)
        try:
            invocation = await self._invoker.invoke(
                job.function, trigger="async", payload=job.payload, wait=True, job_id=job.id
            )
        except NotFound as error:
            await self._dead_letter(job, ErrorInfo("Init", "FunctionNotFound", error.message))
            return
        job.attempts += 1
        job.request_ids.append(invocation.record.id)
        job.updated_at = time.time()
        if invocation.error is None:
            job.status, job.result, job.error = "succeeded", invocation.result.value, None
            await self._store.put_job(job, durable=False)
            return
        job.error = invocation.error
        delay = spec.failure.backoff * 2 ** (job.attempts - 1)
        too_old = job.updated_at + delay - job.created_at > spec.failure.max_event_age
        if job.attempts > spec.failure.retries or too_old:
            await self._dead_letter(job, invocation.error)
            return
        job.status, job.next_at = "retrying", job.updated_at + delay
        await self._store.put_job(job, durable=True)
        self._schedule(job)

    async def _dead_letter(self, job: Job, error: ErrorInfo) -> None:
        now = time.time()
        job.status, job.error, job.updated_at = "failed", error, now
        letter = DeadLetter(
            id=new_id(),
            function=job.function,
            payload=job.payload,
            error=error,
            attempts=job.attempts,
            job_id=job.id,
            created_at=job.created_at,
            failed_at=now,
        )
        await self._store.add_dead_letter(letter, job)
