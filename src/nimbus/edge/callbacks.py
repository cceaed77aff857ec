"""Webhook callbacks: when a delivery's work ends, POST its status document to the webhook's
callback URL, retrying with backoff, in the background (the gateway never waits for it).

The URL comes from the spec (the operator's), and only a verified delivery ever leads to a
callback. Each attempt's outcome is committed, so a restart resumes a pending callback. A 2xx
answer delivers it; 408, 429, 5xx and network errors are retried (after 1, 2, 4 ... s, at most
5 min apart, MAX_ATTEMPTS in all, as SNS retries an HTTP endpoint); another 4xx fails it for
good. Redirects are not followed. Logs and errors name the URL's origin only: a callback URL
may carry a secret in its path or query (Slack's incoming webhooks do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from nimbus.ops.deliveries import CallbackState, Deliveries, Delivery
from nimbus.ops.logs import LogSink

MAX_ATTEMPTS = 8
FIRST_DELAY = 1.0
MAX_DELAY = 300.0
TIMEOUT = 10.0
RETRIED_STATUSES = frozenset({408, 429})
HEADERS = {"content-type": "application/json", "user-agent": "nimbus-webhooks"}


class Callbacks:
    """The callbacks being sent, each a task until it is delivered or fails for good."""

    def __init__(
        self,
        deliveries: Deliveries,
        document: Callable[[Delivery], Awaitable[bytes]],
        logs: LogSink,
    ) -> None:
        self._deliveries = deliveries
        self._document = document
        self._logs = logs
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, token: str, at: float) -> None:
        """Send the callback of delivery `token` at `at` (epoch seconds) or as soon as possible."""
        task = asyncio.get_running_loop().create_task(self._send(token, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _send(self, token: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        delivery = await self._deliveries.by_token(token)
        if delivery is None or delivery.callback_state != "pending" or not delivery.callback_url:
            return
        error, retried = await self._post(delivery.callback_url, await self._document(delivery))
        attempts = delivery.callback_attempts + 1
        state: CallbackState = "delivered"
        next_at = None
        if error is not None:
            state = "pending" if retried and attempts < MAX_ATTEMPTS else "failed"
        if state == "pending":
            next_at = time.time() + min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY)
        await self._deliveries.callback_attempted(token, state, attempts, next_at, error)
        if next_at is not None:
            self.schedule(token, next_at)
        elif state == "failed":
            self._logs.platform(
                f"the callback of webhook delivery {delivery.delivery_id!r} "
                f"({delivery.function!r}) to {origin(delivery.callback_url)} failed for good after "
                f"{attempts} attempt(s): {error}"
            )

    async def _post(self, url: str, body: bytes) -> tuple[str | None, bool]:
        """Why the receiver did not take it (None if it did), and whether to try again."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        try:
            response = await self._client.post(url, content=body, headers=HEADERS)
        except httpx.HTTPError as error:
            message = str(error).replace(url, origin(url))
            return f"{type(error).__name__}: {message}".rstrip(": "), True
        status = response.status_code
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", not 400 <= status < 500 or status in RETRIED_STATUSES


def origin(url: str) -> str:
    """`scheme://host[:port]/...`: what may be shown of a callback URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."
