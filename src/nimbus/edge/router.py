"""Maps a method and path to a function and its path parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nimbus.errors import HTTPError, NotFound
from nimbus.spec.model import PATH_PARAM, AppSpec
from nimbus.spec.paths import STATUS_SEGMENT
from nimbus.spec.webhooks import WebhookTrigger


class MethodNotAllowed(HTTPError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(405, "method not allowed")
        self.allowed = allowed


@dataclass
class _Path:
    template: str
    methods: dict[str, str] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None


class Router:
    def __init__(self, spec: AppSpec | None = None) -> None:
        self._static: dict[str, _Path] = {}
        self._dynamic: dict[str, _Path] = {}
        self._webhooks: set[str] = set()
        for function in spec.functions.values() if spec else ():
            self._webhooks.update(
                t.path for t in function.triggers if isinstance(t, WebhookTrigger)
            )
            for trigger in function.http_triggers():
                if PATH_PARAM.search(trigger.path):
                    entry = self._dynamic.setdefault(
                        trigger.path, _Path(trigger.path, pattern=_compile(trigger.path))
                    )
                else:
                    entry = self._static.setdefault(trigger.path, _Path(trigger.path))
                entry.methods[trigger.method] = function.name

    def webhook(self, path: str) -> tuple[str, str | None] | None:
        """The webhook `path` is (its path, None) or a status URL of (its path, the token);
        None if neither. Webhooks come before HTTP routes with {parameters}."""
        if not self._webhooks:
            return None
        if path in self._webhooks:
            return path, None
        head, _, token = path.rpartition("/")
        hook, _, segment = head.rpartition("/")
        if segment == STATUS_SEGMENT and hook in self._webhooks and token:
            return hook, token
        return None

    def match(self, method: str, path: str) -> tuple[str, dict[str, str], str]:
        """The function for this request, its path parameters and the route's path template;
        404 or 405 otherwise."""
        entry = self._static.get(path)
        params: dict[str, str] = {}
        if entry is None:
            for candidate in self._dynamic.values():
                assert candidate.pattern is not None
                found = candidate.pattern.fullmatch(path)
                if found:
                    entry, params = candidate, found.groupdict()
                    break
        if entry is None:
            raise NotFound(f"no route for {path}")
        function = entry.methods.get(method)
        if function is None and method == "HEAD":
            function = entry.methods.get("GET")
        if function is None:
            allowed = set(entry.methods) | ({"HEAD"} if "GET" in entry.methods else set())
            raise MethodNotAllowed(sorted(allowed))
        return function, params, entry.template


def _compile(template: str) -> re.Pattern[str]:
    parts = PATH_PARAM.split(template)
    regex = "".join(
        f"(?P<{part}>[^/]+)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
    )
    return re.compile(regex)
