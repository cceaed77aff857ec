"""Whether, which and where traces go, from `nimbus up`'s options and the standard OpenTelemetry
environment: `OTEL_SDK_DISABLED=true` turns tracing off, like `--no-traces`;
`OTEL_TRACES_SAMPLER` (+ `_ARG`) picks which new traces are recorded, like `--trace-ratio` and
`--traces-per-second`; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or
`OTEL_EXPORTER_OTLP_ENDPOINT` (plus `/v1/traces`) turns OTLP/HTTP export on, like
`--otlp-endpoint`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from nimbus.errors import InvalidRequest

DEFAULT_KEEP = 100_000
"""Entries (invocations, service calls) traces.db keeps: about 200 bytes each, some 20 MB."""
DEFAULT_PER_SECOND = 10
"""New traces recorded each second before `DEFAULT_RATIO` applies (see sampler.py)."""
DEFAULT_RATIO = 0.05
"""Of the new traces beyond those, the share recorded: X-Ray's default rule's rate."""
SAMPLERS = {
    "always_on": None,
    "parentbased_always_on": None,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
    "traceidratio": 1.0,
    "parentbased_traceidratio": 1.0,
}
"""OpenTelemetry's standard samplers nimbus follows (always parent-based), and the ratio each
stands for (the ratio ones: without `OTEL_TRACES_SAMPLER_ARG`); None: every trace."""
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
    per_second: int = DEFAULT_PER_SECOND
    """New traces recorded each second before `ratio` applies."""
    ratio: float = DEFAULT_RATIO
    """The share of the other new traces that is recorded."""


def tracing_config(
    *,
    enabled: bool = True,
    keep: int = DEFAULT_KEEP,
    endpoint: str | None = None,
    per_second: int | None = None,
    ratio: float | None = None,
    environ: Mapping[str, str] = os.environ,
) -> TracingConfig:
    """The configuration `nimbus up` was given; a clear error for a bad one. The sampling
    options left out come from `OTEL_TRACES_SAMPLER`, else the defaults."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        enabled = False
    if keep < 1:
        raise InvalidRequest(f"--traces-keep must be at least 1, not {keep}")
    sampled_per_second, sampled_ratio = _sampler(environ)
    per_second = sampled_per_second if per_second is None else per_second
    ratio = sampled_ratio if ratio is None else ratio
    if per_second < 0:
        raise InvalidRequest(f"--traces-per-second must be 0 or more, not {per_second}")
    if not 0.0 <= ratio <= 1.0:
        raise InvalidRequest(f"--trace-ratio must be between 0 and 1, not {ratio}")
    from_environment = next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)
    url = endpoint or from_environment
    if url is None or not enabled:
        return TracingConfig(enabled, keep, per_second=per_second, ratio=ratio)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"the OTLP endpoint {url!r} is not an http:// or https:// URL")
    protocol = next((environ[v] for v in PROTOCOL_VARIABLES if environ.get(v)), "http/protobuf")
    if protocol != "http/protobuf":
        raise InvalidRequest(
            f"nimbus exports OTLP over HTTP with protobuf (http/protobuf), not {protocol!r}"
        )
    return TracingConfig(
        enabled, keep, export=True, endpoint=endpoint, per_second=per_second, ratio=ratio
    )


def _sampler(environ: Mapping[str, str]) -> tuple[int, float]:
    """Traces per second and ratio as `OTEL_TRACES_SAMPLER` (+ `_ARG`) asks; the defaults
    without it."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not name:
        return DEFAULT_PER_SECOND, DEFAULT_RATIO
    if name not in SAMPLERS:
        known = ", ".join(SAMPLERS)
        raise InvalidRequest(f"OTEL_TRACES_SAMPLER={name!r} is not one nimbus knows ({known})")
    ratio = SAMPLERS[name]
    if ratio is None:
        return 0, 1.0
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if name.endswith("traceidratio") and argument:
        try:
            ratio = float(argument)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise InvalidRequest(
                f"OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, not {argument!r}"
            )
    return 0, ratio


DEFAULT_TRACING = TracingConfig()
"""Spans of sampled traces kept locally, no export: what `nimbus up` does unless told
otherwise."""
