"""Traces: OpenTelemetry spans of every invocation and service call, recorded in the controller.

Workers run no tracing code: the controller knows when an invocation started, whether it was
cold, how long the handler ran (the worker's `Result`) and every service call it made, and
records the spans from that. Spans are kept in `traces.db` and, when configured, exported over
OTLP/HTTP. Nothing here imports OpenTelemetry until export is configured.
"""
