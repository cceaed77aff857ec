"""Whether and where traces go, from `nimbus up`'s options and the standard OpenTelemetry
environment: `OTEL_SDK_DISABLED=true` turns tracing off, like `--no-traces`;
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (plus
`/v1/traces`) turns OTLP/HTTP export on, like `--otlp-endpoint`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from nimbus.errors import InvalidRequest

DEFAULT_KEEP = 100_000
"""Entries (invocations, service calls) traces.db keeps: about 200 bytes each, some 20 MB."""
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


@dataclass(frozen=True, slots=True)
class TracingConfig:
    enabled: bool = True
    keep: int = DEFAULT_KEEP
    """How many entries traces.db keeps: the oldest go first."""
    export: bool = False
    """OTLP/HTTP export is on."""
    endpoint: str | None = None
    """The traces URL; None with `export`: the exporter reads it from the environment."""


def tracing_config(
    *,
    enabled: bool = True,
    keep: int = DEFAULT_KEEP,
    endpoint: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> TracingConfig:
    """The configuration `nimbus up` was given; a clear error for a bad one."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        enabled = False
    if keep < 1:
        raise InvalidRequest(f"--traces-keep must be at least 1, not {keep}")
    from_environment = next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)
    url = endpoint or from_environment
    if url is None or not enabled:
        return TracingConfig(enabled, keep)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"the OTLP endpoint {url!r} is not an http:// or https:// URL")
    protocol = next((environ[v] for v in PROTOCOL_VARIABLES if environ.get(v)), "http/protobuf")
    if protocol != "http/protobuf":
        raise InvalidRequest(
            f"nimbus exports OTLP over HTTP with protobuf (http/protobuf), not {protocol!r}"
        )
    return TracingConfig(enabled, keep, export=True, endpoint=endpoint)


DEFAULT_TRACING = TracingConfig()
"""Spans kept locally, no export: what `nimbus up` does unless told otherwise."""
