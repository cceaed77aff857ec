"""The platform's metrics and their rendering in the format a scraper asks for.

Each controller has its own registry, not prometheus_client's global one: several platforms
may run in one process (tests, benchmarks), and each exposes only its own figures. A scrape
first gathers the levels (async reads of pools, queues, cursors), then renders them with the
event metrics in one pass; concurrent scrapes each render their own gathered levels.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

from nimbus.ops.metrics import cursors, levels
from nimbus.ops.metrics.invocations import InvocationMetrics

if TYPE_CHECKING:
    from nimbus.controller import Controller


class Metrics:
    def __init__(self, controller: Controller) -> None:
        self.registry = CollectorRegistry()
        self.invocations = InvocationMetrics(self.registry)
        ProcessCollector(registry=self.registry)  # the controller's CPU, memory, open files
        self._controller = controller

    async def scrape(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of an answer to a scrape with these Accept headers: the
        Prometheus text format, or OpenMetrics when asked for; gzipped when accepted."""
        controller = self._controller
        for function in controller.pools:
            self.invocations.track(function)  # a function deployed since the last scrape
        gathered = levels.compute(controller.pools)
        spec = controller.spec
        gathered += await levels.queues(controller.services.queues, spec.queues if spec else ())
        gathered += await levels.dead_letters(controller.store)
        runners = controller.triggers.running()
        gathered += await cursors.stream_ages(runners)
        gathered += await cursors.schedule_lags(runners)
        encode, content_type = choose_encoder(accept)
        body = encode(_Scrape(self.registry, gathered))
        headers = {"content-type": content_type}
        if gzip_accepted(accept_encoding):
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        return body, headers


class _Scrape:
    """What one scrape renders: the registry's metrics, then the levels gathered for it."""

    def __init__(self, registry: CollectorRegistry, gathered: list[Metric]) -> None:
        self._registry = registry
        self._gathered = gathered

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._gathered
