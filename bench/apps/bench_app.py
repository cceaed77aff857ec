"""The app the benchmarks deploy: the handlers of bench_handlers.py with benchmark settings."""

import bench_handlers

import nimbus

HELLO_MAX_INSTANCES = 8  # one per wrk connection, so that no request is throttled

app = nimbus.App("bench")
app.function()(bench_handlers.noop)
app.function(keep_alive=0, min_instances=0)(bench_handlers.cold)
app.function()(bench_handlers.pid)
app.http("GET", "/hello/{name}", max_instances=HELLO_MAX_INSTANCES)(bench_handlers.hello)
