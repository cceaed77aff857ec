"""The app of webhook_accept.py: a GitHub webhook whose handler does nothing, and the hello
route the shared server harness polls to know that the platform answers."""

import bench_handlers

import nimbus

app = nimbus.App("bench-webhooks")
app.http("GET", "/hello/{name}")(bench_handlers.hello)
app.on_webhook(
    "/hooks/github", verify="github", secret="BENCH_WEBHOOK_SECRET", max_instances=2, name="hook"
)(bench_handlers.noop)
