"""Metrics in the Prometheus format, served at GET /_nimbus/metrics (docs/metrics.md).

Events (invocations, errors by kind, durations, cold starts) are counted once per invocation
from the invoker's finish, with cheap updates of label children made once per function
(`invocations.py`). Levels (instances, concurrency, queue depths and ages, dead letters,
stream iterator ages, schedule lag) cost nothing per invocation: they are read when a scrape
comes (`levels.py`, `cursors.py`). Labels name only what the spec declares (functions, queues,
streams, partitions, schedules), never a request, so the number of series stays bounded.
"""
