"""The webhook trigger: a signed POST from a SaaS, verified, then run asynchronously.

Secrets are never part of the spec: `secret` names environment variables of the platform (one,
or several while a key is rotated), read when the spec is deployed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from nimbus.spec.base import Model
from nimbus.spec.paths import STATIC_PATH, check_not_reserved

Provider = Literal["github", "stripe", "hmac"]
Algorithm = Literal["sha256", "sha512", "sha1"]
Encoding = Literal["hex", "base64"]
Completion = Literal["handler", "progress"]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
SIGNED_PARTS = {"id", "timestamp", "body"}
DAY = 86400.0
RETENTION = 7 * DAY
"""How long a finished delivery is kept by default: beyond Stripe's 3 days of retries and
GitHub's 3 days of redeliveries, so that their replays are recognised."""
HMAC_ONLY = (
    "header", "algorithm", "encoding", "prefix", "timestamp_header", "id_header", "signed",
)  # fmt: skip
"""Settings of the generic scheme; GitHub's and Stripe's are fixed by the provider."""


class WebhookTrigger(Model):
    """An inbound webhook route. The generic `hmac` scheme defaults to Standard Webhooks
    (standardwebhooks.com): `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
    over `{id}.{timestamp}.{body}`, HMAC-SHA256, 5 minutes of tolerance."""

    type: Literal["webhook"] = "webhook"
    path: str = Field(min_length=2, max_length=1024)
    verify: Provider
    secret: tuple[str, ...] = Field(
        min_length=1, max_length=5, description="environment variables holding the secrets"
    )
    tolerance: float = Field(300.0, gt=0, le=86400, description="signed timestamp's age, s")
    header: str = Field("webhook-signature", description="hmac: the signature header")
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "base64"
    prefix: str = Field("v1,", max_length=32, description="hmac: before each signature")
    timestamp_header: str | None = "webhook-timestamp"
    id_header: str | None = "webhook-id"
    signed: str = Field("{id}.{timestamp}.{body}", max_length=256, description="hmac: content")
    completion: Completion = Field(
        "handler", description="progress: done when a function reports Progress.finish/fail"
    )
    callback: str | None = Field(None, max_length=2048, description="URL POSTed the result")
    retention: float = Field(
        RETENTION,
        ge=1,
        le=365 * DAY,
        description="s a finished delivery is kept: its status URL and its replay detection",
    )

    @field_validator("secret", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name: name the variable that "
                    "holds the secret, never the secret itself"
                )
        return names

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not STATIC_PATH.match(path):
            raise ValueError(
                "a webhook path is a static path such as /hooks/github (no {parameters}, "
                "no trailing '/')"
            )
        return check_not_reserved(path)

    @field_validator("header", "timestamp_header", "id_header")
    @classmethod
    def _check_header(cls, name: str | None) -> str | None:
        if name is not None and not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not an HTTP header name")
        return None if name is None else name.lower()

    @field_validator("callback")
    @classmethod
    def _check_callback(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/?#\s]+(/\S*)?$", url):
            raise ValueError("the callback is an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _check_scheme(self) -> WebhookTrigger:
        if self.verify != "hmac":
            changed = [f for f in HMAC_ONLY if getattr(self, f) != _DEFAULTS[f]]
            if changed:
                raise ValueError(f"{', '.join(changed)}: only for verify='hmac'")
            if self.verify == "github" and self.tolerance != _DEFAULTS["tolerance"]:
                raise ValueError("tolerance: GitHub signs no timestamp")
            return self
        parts = PLACEHOLDER.findall(self.signed)
        rest = PLACEHOLDER.sub("", self.signed)
        if "{" in rest or "}" in rest:
            raise ValueError("signed: unbalanced braces")
        if unknown := set(parts) - SIGNED_PARTS:
            first = sorted(unknown)[0]
            raise ValueError(
                f"signed: unknown part {{{first}}}; use {{id}}, {{timestamp}}, {{body}}"
            )
        if parts.count("body") != 1:
            raise ValueError("signed: {body} appears exactly once")
        if "timestamp" in parts and self.timestamp_header is None:
            raise ValueError("signed: {timestamp} needs a timestamp_header")
        if "id" in parts and self.id_header is None:
            raise ValueError("signed: {id} needs an id_header")
        return self

    @property
    def label(self) -> str:
        return f"webhook POST {self.path} ({self.verify})"

    @property
    def source(self) -> str:
        return self.path


_DEFAULTS: dict[str, Any] = {
    name: field.default for name, field in WebhookTrigger.model_fields.items()
}
