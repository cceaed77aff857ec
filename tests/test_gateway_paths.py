"""HTTP routes, webhooks and WebSocket APIs share the gateway's paths: a clash is a spec error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nimbus
from nimbus.errors import SpecError
from nimbus.spec.manifest import load_manifest
from nimbus.spec.paths import check_gateway_paths, http_route, webhook, websocket_api


def one(event: object) -> None: ...
def two(event: object) -> None: ...
def three(event: object) -> None: ...
def four(event: object) -> None: ...
def five(event: object) -> None: ...
def six(event: object) -> None: ...


def app_with(*, http: list[tuple[str, str]], hooks: list[str], sockets: list[str]) -> nimbus.App:
    app = nimbus.App("paths")
    # one function per trigger: a function decorated twice would have two triggers
    handlers = iter([one, two, three, four, five, six])
    for number, (method, path) in enumerate(http):
        app.http(method, path, name=f"route{number}")(next(handlers))
    for number, path in enumerate(hooks):
        app.on_webhook(path, verify="github", secret="SECRET", name=f"hook{number}")(next(handlers))
    for number, path in enumerate(sockets):
        app.websocket(f"api{number}", path=path)
    return app


CLASHES = [
    ({"http": [("GET", "/ws")], "sockets": ["/ws"]}, "/ws", "WebSocket API 'api0'"),
    ({"http": [("GET", "/")], "sockets": ["/"]}, "/", "WebSocket API 'api0'"),
    ({"hooks": ["/ws"], "sockets": ["/ws"]}, "/ws", "the webhook of 'hook0'"),
    ({"hooks": ["/h"], "sockets": ["/h/deliveries/x"]}, "/h/deliveries/x", "status URLs"),
    ({"http": [("POST", "/h")], "hooks": ["/h"]}, "/h", "the webhook of 'hook0'"),
    ({"http": [("GET", "/h/deliveries/{token}")], "hooks": ["/h"]}, "/h/deliveries/", "status"),
    ({"hooks": ["/h", "/h/deliveries/t"]}, "/h/deliveries/t", "the webhook of 'hook0'"),
    ({"sockets": ["/ws", "/ws"]}, "/ws", "WebSocket API 'api0'"),
]


@pytest.mark.parametrize(("parts", "path", "named"), CLASHES)
def test_a_path_claimed_twice_is_a_spec_error_naming_both(
    parts: dict[str, list[object]], path: str, named: str, tmp_path: Path
) -> None:
    app = app_with(**{"http": [], "hooks": [], "sockets": [], **parts})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=f"path {path}.* is claimed twice: .*{named}"):
        app.spec(str(tmp_path))


def test_distinct_paths_and_parameter_routes_do_not_clash(tmp_path: Path) -> None:
    app = app_with(
        http=[("GET", "/ws/info"), ("POST", "/hooks/{name}"), ("GET", "/h"), ("POST", "/h")],
        hooks=["/hooks/github", "/hooks/stripe"],
        sockets=["/ws", "/chat"],
    )
    spec = app.spec(str(tmp_path))
    assert {api.path for api in spec.websockets.values()} == {"/ws", "/chat"}


def test_a_clash_in_nimbus_yaml_names_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text(
        """
name: shop
websockets:
  chat: {path: /events}
functions:
  events:
    handler: app:events
    triggers:
      - {method: GET, path: /events}
"""
    )
    with pytest.raises(SpecError, match="path /events is claimed twice"):
        load_manifest(manifest)


segments = st.sampled_from(["a", "b", "deliveries", "x"])
static_paths = st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(st.lists(st.tuples(st.sampled_from(["http", "hook", "socket"]), static_paths), max_size=6))
def test_a_spec_is_refused_exactly_when_some_path_has_two_owners(
    declared: list[tuple[str, str]],
) -> None:
    """The reference: every claimant and the paths it owns (a webhook: its path and every
    `<path>/deliveries/...`); two HTTP routes (of different methods) may share a path."""
    makers = {
        "http": lambda path, n: http_route(path, f"M{n}", f"f{n}"),
        "hook": lambda path, n: webhook(path, f"f{n}"),
        "socket": lambda path, n: websocket_api(path, f"api{n}"),
    }
    claims = [makers[kind](path, n) for n, (kind, path) in enumerate(declared)]

    def owns(kind: str, path: str, other: str) -> bool:
        return other == path or (kind == "hook" and other.startswith(path + "/deliveries/"))

    clash = any(
        owns(kind, path, other_path) and not (kind == other_kind == "http")
        for i, (kind, path) in enumerate(declared)
        for j, (other_kind, other_path) in enumerate(declared)
        if i != j
    )
    if clash:
        with pytest.raises(ValueError, match="is claimed twice"):
            check_gateway_paths(claims)
    else:
        check_gateway_paths(claims)
