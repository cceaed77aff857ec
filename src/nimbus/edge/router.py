"""Maps a method and path to a function and its path parameters.

Routes match as API Gateway matches them: on the path as the client sent it, split at its `/`,
each segment percent-decoded after the split. So `/items/a%2Fb` is one segment: it matches
`/items/{id}` with `id` = `a/b`, not a route `/items/a/b` (a decoded path could not tell).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from nimbus.errors import HTTPError, NotFound
from nimbus.spec.model import PATH_PARAM, AppSpec
from nimbus.spec.paths import STATUS_SEGMENT
from nimbus.spec.webhooks import WebhookTrigger

Segments = tuple[str, ...]
"""A path's segments, decoded: `/a/b%2Fc` is ("", "a", "b/c")."""


class MethodNotAllowed(HTTPError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(405, "method not allowed")
        self.allowed = allowed


def path_segments(scope: Mapping[str, Any]) -> Segments:
    """The segments of an ASGI request's path: its `raw_path` split at `/`, then each
    percent-decoded (UTF-8, as the server decodes `path`); `path` split when there is no
    `raw_path` (it is optional in ASGI)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None or b"%" not in raw:  # nothing encoded: the path as the server decoded it
        return split(scope["path"])
    return tuple(unquote_to_bytes(part).decode("utf-8", "replace") for part in raw.split(b"/"))


def split(path: str) -> Segments:
    """The segments of a declared path (routes, webhooks and WebSocket APIs declare them
    decoded)."""
    return tuple(path.split("/"))


@dataclass
class _Path:
    template: str
    methods: dict[str, str] = field(default_factory=dict)
    patterns: tuple[re.Pattern[str], ...] = ()
    """One per segment, for a template with {parameters}."""

    def params(self, segments: Segments) -> dict[str, str] | None:
        """The parameters when `segments` match the template, else None."""
        if len(segments) != len(self.patterns):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.patterns, segments, strict=True):
            found = pattern.fullmatch(segment)
            if found is None:
                return None
            params |= found.groupdict()
        return params


class Router:
    def __init__(self, spec: AppSpec | None = None) -> None:
        self._static: dict[Segments, _Path] = {}
        self._dynamic: dict[str, _Path] = {}
        self._webhooks: dict[Segments, str] = {}
        for function in spec.functions.values() if spec else ():
            self._webhooks.update(
                (split(t.path), t.path) for t in function.triggers if isinstance(t, WebhookTrigger)
            )
            for trigger in function.http_triggers():
                if PATH_PARAM.search(trigger.path):
                    entry = self._dynamic.setdefault(
                        trigger.path, _Path(trigger.path, patterns=_compile(trigger.path))
                    )
                else:
                    entry = self._static.setdefault(split(trigger.path), _Path(trigger.path))
                entry.methods[trigger.method] = function.name

    def webhook(self, segments: Segments) -> tuple[str, str | None] | None:
        """The webhook a path is (its path, None) or a status URL of (its path, the token);
        None if neither. Webhooks come before HTTP routes with {parameters}."""
        if not self._webhooks:
            return None
        hook = self._webhooks.get(segments)
        if hook is not None:
            return hook, None
        hook = self._webhooks.get(segments[:-2])
        if hook is not None and segments[-2:-1] == (STATUS_SEGMENT,) and segments[-1]:
            return hook, segments[-1]
        return None

    def match(self, method: str, segments: Segments) -> tuple[str, dict[str, str], str]:
        """The function for this request, its path parameters and the route's path template;
        NotFound or MethodNotAllowed otherwise."""
        entry, params = self._find(segments)
        function = entry.methods.get(method)
        if function is None and method == "HEAD":
            function = entry.methods.get("GET")
        if function is None:
            allowed = set(entry.methods) | ({"HEAD"} if "GET" in entry.methods else set())
            raise MethodNotAllowed(sorted(allowed))
        return function, params, entry.template

    def _find(self, segments: Segments) -> tuple[_Path, dict[str, str]]:
        entry = self._static.get(segments)
        if entry is not None:
            return entry, {}
        for candidate in self._dynamic.values():
            params = candidate.params(segments)
            if params is not None:
                return candidate, params
        raise NotFound("no route")


def _compile(template: str) -> tuple[re.Pattern[str], ...]:
    """A pattern per segment; a parameter takes one whole segment or a part of one, and its
    decoded value may hold any character (a `/` that came encoded among them)."""
    return tuple(_compile_segment(segment) for segment in split(template))


def _compile_segment(segment: str) -> re.Pattern[str]:
    parts = PATH_PARAM.split(segment)
    regex = "".join(
        f"(?P<{part}>.+)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)
