"""WebSocket APIs on a real platform, with real clients: routes, refusals, sends from any
trigger, groups, Gone, limits, slow and dead clients; route selection as properties."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

import nimbus
from conftest import APPS, Platform, start_platform
from nimbus.errors import SpecError
from nimbus.services.websockets import select_route
from nimbus.spec.manifest import load_manifest
from nimbus.spec.websockets import DEFAULT

LIMIT = 30.0  # seconds to wait for anything (against hangs, not a timing assertion)
AGENT = {"x-agent": "tests"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(
        APPS / "websockets_app.py", tmp_path_factory.mktemp("ws"), "--no-reload"
    )
    yield running
    running.stop()
    running.assert_no_loop_errors()


def ws_url(platform: Platform, path: str) -> str:
    return platform.url.replace("http://", "ws://", 1) + path


def open_chat(platform: Platform, query: str = "", **options: Any) -> ClientConnection:
    path = "/chat" + (f"?{query}" if query else "")
    return connect(ws_url(platform, path), additional_headers=AGENT, open_timeout=LIMIT, **options)


def ask(client: ClientConnection, message: dict[str, Any] | str | bytes) -> Any:
    client.send(json.dumps(message) if isinstance(message, dict) else message)
    reply = client.recv(timeout=LIMIT)
    return json.loads(reply) if isinstance(reply, str) and reply[:1] in "{[" else reply


def whoami(client: ClientConnection) -> str:
    connection_id: str = ask(client, {"action": "echo", "text": "?"})["connection_id"]
    return connection_id


def logged(platform: Platform, connection_id: str) -> dict[str, Any] | None:
    """What the app's $connect / $disconnect handlers wrote about a connection."""
    response = platform.http.get(f"/log/{connection_id}")
    return response.json() if response.status_code == 200 else None


def wait_disconnected(platform: Platform, connection_id: str) -> dict[str, Any]:
    def ran() -> dict[str, Any] | None:
        found = logged(platform, connection_id)
        return found if found is not None and found["state"] == "disconnected" else None

    found: dict[str, Any] = platform.wait_for(ran, f"$disconnect of {connection_id}")
    return found


def refused(platform: Platform, path: str, **options: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(platform, path), additional_headers=AGENT, open_timeout=LIMIT, **options)
    return caught.value


# routes


def test_message_routes_and_their_replies(platform: Platform) -> None:
    with open_chat(platform) as client:
        own = whoami(client)
        assert ask(client, {"action": "echo", "text": "hi"}) == {"echo": "hi", "connection_id": own}
        assert ask(client, "plain text") == {"default": "plain text", "binary": None}
        assert ask(client, {"action": "no-such-route"})["default"] == '{"action": "no-such-route"}'
        assert ask(client, b"\x01\x02") == {"default": None, "binary": "0102"}
        assert ask(client, {"action": "bytes"}) == bytes(range(8))
        assert ask(client, {"action": "bad"}) == {"error": "this route always refuses"}
        failed = ask(client, {"action": "crash"})
        assert failed["error"]["type"] == "ValueError"
        assert failed["error"]["message"] == "the message handler failed"
        assert ask(client, {"action": "echo", "text": "still here"})["echo"] == "still here"


def test_messages_of_one_connection_are_handled_in_order(platform: Platform) -> None:
    with open_chat(platform) as client:
        for number in range(30):
            client.send(json.dumps({"action": "echo", "text": str(number)}))
        replies = [json.loads(client.recv(timeout=LIMIT))["echo"] for _ in range(30)]
    assert replies == [str(number) for number in range(30)]


# $connect


def test_connect_sees_the_handshake_and_picks_a_subprotocol(platform: Platform) -> None:
    with open_chat(platform, "rooms=lobby", subprotocols=["v1.chat", "v2.chat"]) as client:
        assert client.subprotocol == "v2.chat"
        own = whoami(client)
        assert logged(platform, own) == {"id": own, "state": "connected", "agent": "tests"}
        assert platform.http.get(f"/info/{own}").json()["groups"] == ["lobby"]


def test_connect_refuses_with_the_handlers_status(platform: Platform) -> None:
    denied = refused(platform, "/chat?token=bad")
    assert denied.response.status_code == 401
    assert json.loads(denied.response.body) == {"error": "bad token"}
    failed = refused(platform, "/chat?token=boom")
    assert failed.response.status_code == 502
    assert json.loads(failed.response.body)["error"]["type"] == "RuntimeError"
    assert refused(platform, "/nowhere").response.status_code == 404
    assert platform.http.get("/connections").json() == {"ids": []}


def test_an_api_path_is_matched_on_the_raw_path_as_http_routes_are(platform: Platform) -> None:
    """Each segment is decoded after the split: an encoded slash is no separator."""
    with connect(ws_url(platform, "/rooms/lobb%79"), open_timeout=LIMIT) as client:
        client.ping().wait(LIMIT)
    assert refused(platform, "/rooms%2Flobby").response.status_code == 404


# sending from functions


def test_groups_fan_out_to_members_but_the_sender(platform: Platform) -> None:
    with (
        open_chat(platform, "rooms=room-1") as alice,
        open_chat(platform, "rooms=room-1,room-2") as bob,
        open_chat(platform) as carol,
    ):
        ids = [whoami(c) for c in (alice, bob, carol)]
        members = platform.http.get("/connections", params={"group": "room-1"}).json()["ids"]
        assert members == sorted(ids[:2])
        assert ask(carol, {"action": "join", "room": "room-1"}) == "joined"
        assert ask(alice, {"action": "say", "room": "room-1", "text": "hello"}) == {"delivered": 2}
        for client in (bob, carol):
            assert json.loads(client.recv(timeout=LIMIT)) == {"from": ids[0], "text": "hello"}
        assert ask(bob, {"action": "leave", "room": "room-1"}) == "left"
        assert ask(carol, {"action": "say", "room": "room-1", "text": "bye"}) == {"delivered": 1}
        assert json.loads(alice.recv(timeout=LIMIT)) == {"from": ids[2], "text": "bye"}
        assert ask(bob, {"action": "echo", "text": "nothing came"})["echo"] == "nothing came"
        assert platform.http.get(f"/info/{ids[1]}").json()["groups"] == ["room-2"]


def test_http_and_queue_handlers_push_to_connections(platform: Platform) -> None:
    with open_chat(platform) as first, open_chat(platform) as second:
        own = whoami(first)
        whoami(second)
        assert platform.http.post(f"/push/{own}", json={"n": 1}).json() == {"sent": True}
        assert json.loads(first.recv(timeout=LIMIT)) == {"n": 1}
        platform.http.post("/queue-push", json={"to": own, "text": "from a queue"})
        assert json.loads(first.recv(timeout=LIMIT)) == {"from_queue": "from a queue"}
        assert platform.http.post("/broadcast", json="all").json() == {"delivered": 2}
        assert [c.recv(timeout=LIMIT) for c in (first, second)] == ["all", "all"]  # a str: text


def test_a_closed_connection_is_gone_and_its_disconnect_runs(platform: Platform) -> None:
    with open_chat(platform) as client:
        own = whoami(client)
    wait_disconnected(platform, own)
    assert logged(platform, own) == {"id": own, "state": "disconnected", "code": 1000}
    response = platform.http.post(f"/push/{own}", json="late")
    assert response.status_code == 410
    assert "is gone" in response.json()["gone"]
    assert platform.http.get(f"/info/{own}").status_code == 502  # Gone raised in the handler
    assert own not in platform.http.get("/connections").json()["ids"]


def test_a_function_closes_a_connection_after_what_it_sent(platform: Platform) -> None:
    with open_chat(platform) as client:
        own = whoami(client)
        client.send(json.dumps({"action": "bye"}))
        assert client.recv(timeout=LIMIT) == "see you"
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=LIMIT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")
    assert wait_disconnected(platform, own)["code"] == 4000


def test_bad_sends_are_clear_errors(platform: Platform) -> None:
    problems = platform.http.post("/misuse").json()
    assert problems["group"].startswith("InvalidRequest: group ''")
    assert problems["id"].startswith("InvalidRequest: 'not an id!' is not a connection id")
    assert problems["code"].startswith("InvalidRequest: close code 1006")
    assert problems["big"].startswith("PayloadTooLarge: the message is 204800 bytes")
    assert problems["json"].startswith("InvalidRequest: a message is a str, bytes or JSON")


# limits


def tight_clients(platform: Platform) -> list[str]:
    ids: list[str] = platform.http.get("/tight-connections").json()
    return ids


def test_a_message_over_the_limit_closes_the_connection(platform: Platform) -> None:
    platform.wait_for(lambda: tight_clients(platform) == [], "no tight connections")
    with connect(ws_url(platform, "/tight"), open_timeout=LIMIT) as client:
        assert ask(client, "x" * 1024) == ask(client, "small")  # at the limit is fine
        client.send("x" * 1025)
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=LIMIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_connections_over_the_limit_are_refused(platform: Platform) -> None:
    platform.wait_for(lambda: tight_clients(platform) == [], "no tight connections")
    with (
        connect(ws_url(platform, "/tight"), open_timeout=LIMIT) as one,
        connect(ws_url(platform, "/tight"), open_timeout=LIMIT) as two,
    ):
        assert ask(one, "hi") != ask(two, "hi")
        third = refused(platform, "/tight")
        assert third.response.status_code == 429
    platform.wait_for(lambda: tight_clients(platform) == [], "both gone")
    with connect(ws_url(platform, "/tight"), open_timeout=LIMIT) as again:
        assert ask(again, "hi")


class RawClient:
    """A WebSocket client that reads only what it is told to: after the handshake and one
    reply it can stop reading for good, like a stuck or vanished browser."""

    def __init__(self, platform: Platform, path: str) -> None:
        host, port = platform.url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(LIMIT)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def read_text(self) -> str:
        first, length = self._exactly(2)
        assert first == 0x81 and length < 126, (first, length)
        return self._exactly(length).decode()

    def drain_until_closed(self) -> bytes:
        """Read everything until the server's end of the socket closes."""
        received = b""
        try:
            while chunk := self.sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "the server closed the connection"
            data += chunk
        return data


def test_a_client_that_stops_reading_is_dropped_and_harms_no_one(platform: Platform) -> None:
    platform.wait_for(lambda: tight_clients(platform) == [], "no tight connections")
    stuck = RawClient(platform, "/tight")
    stuck.send_text("who am I?")
    own = stuck.read_text()
    flooded = platform.http.post(f"/flood/{own}").json()
    assert flooded["gone"] is True  # dropped once its backlog passed the send buffer
    assert platform.http.post(f"/tight/{own}").status_code == 410
    assert own not in tight_clients(platform)
    with connect(ws_url(platform, "/tight"), open_timeout=LIMIT) as other:
        assert ask(other, "still served") != own
    assert platform.http.get("/connections").status_code == 200
    wait_disconnected(platform, own)
    assert logged(platform, own) == {"id": own, "state": "disconnected", "code": 1008}
    stuck.drain_until_closed()  # the gateway aborted the socket: it ends, it does not hang
    stuck.sock.close()


def test_a_peer_that_answers_no_ping_is_dropped(platform: Platform) -> None:
    platform.wait_for(lambda: tight_clients(platform) == [], "no tight connections")
    silent = RawClient(platform, "/tight")  # never reads, so never answers a ping
    silent.send_text("who am I?")
    own = silent.read_text()
    platform.wait_for(lambda: own not in tight_clients(platform), "the keepalive to drop it")
    wait_disconnected(platform, own)
    silent.drain_until_closed()
    silent.sock.close()


# style="aws"


def test_aws_style_handlers_get_api_gateway_events(platform: Platform) -> None:
    assert refused(platform, "/aws?deny=1").response.status_code == 403
    with connect(ws_url(platform, "/aws?x=1"), open_timeout=LIMIT) as client:
        seen = ask(client, {"message": {"action": "ping"}, "n": 1})
        assert seen["routeKey"] == "ping"
        assert seen["eventType"] == "MESSAGE"
        assert seen["messageId"] and seen["connectionId"]
        assert json.loads(seen["body"]) == {"message": {"action": "ping"}, "n": 1}
        assert ask(client, {"action": "ping"}) == {"route": "$default"}  # the key is nested


# the spec


def test_websocket_spec_errors_name_the_problem(tmp_path: Path) -> None:
    app = nimbus.App("bad")
    with pytest.raises(SpecError, match="static path"):
        app.websocket("a", path="/rooms/{id}")
    with pytest.raises(SpecError, match="reserved"):
        app.websocket("b", path="/_nimbus/ws")
    chat = app.websocket("chat", path="/ws")
    app.websocket("other", path="/ws")
    with pytest.raises(SpecError, match="path /ws is claimed twice: by the WebSocket API 'other'"):
        app.spec(str(tmp_path))
    with pytest.raises(SpecError, match="routes starting with"):
        app.on_message(chat, "$custom")(handler)
    app = nimbus.App("twice")
    chat = app.websocket("chat", path="/ws")
    app.on_message(chat, "go")(handler)
    app.on_message(chat, "go")(other_handler)
    with pytest.raises(SpecError, match="route 'go' is handled twice"):
        app.spec(str(tmp_path))
    app = nimbus.App("unknown")
    app.on_connect("nope")(handler)
    with pytest.raises(SpecError, match="not a declared websocket"):
        app.spec(str(tmp_path))


def handler(event: object) -> None: ...


def other_handler(event: object) -> None: ...


def test_nimbus_yaml_declares_websockets(tmp_path: Path) -> None:
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text(
        "name: chat\n"
        "websockets:\n"
        "  live: {path: /live, route_key: type, max_message_bytes: 4096}\n"
        "functions:\n"
        "  hello:\n"
        "    handler: app:hello\n"
        "    uses: [live]\n"
        "    triggers:\n"
        "      - {type: websocket, websocket: live, route: $connect}\n"
        "      - {type: websocket, websocket: live, route: greet}\n"
    )
    spec = load_manifest(manifest)
    assert spec.websockets["live"].max_message_bytes == 4096
    assert [t.label for t in spec.functions["hello"].triggers] == [
        "websocket live $connect",
        "websocket live greet",
    ]
    manifest.write_text(manifest.read_text().replace("4096", "2000000"))
    with pytest.raises(SpecError, match=r"nimbus.yaml:3: websockets.live.max_message_bytes"):
        load_manifest(manifest)


# route selection


ROUTE = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


@given(routes=st.sets(ROUTE, max_size=5), chosen=ROUTE, extra=st.dictionaries(ROUTE, ROUTE))
def test_a_declared_route_key_selects_its_route(
    routes: set[str], chosen: str, extra: dict[str, str]
) -> None:
    message = json.dumps({**extra, "action": chosen})
    declared = frozenset(routes | {DEFAULT})
    expected = chosen if chosen in routes else DEFAULT
    assert select_route(message, "action", declared) == expected
    assert select_route(json.dumps({"a": {"b": chosen}}), "a.b", declared) == expected


@given(message=st.one_of(st.text(), st.binary()), routes=st.sets(ROUTE, max_size=5))
def test_anything_else_goes_to_default_or_nowhere(message: str | bytes, routes: set[str]) -> None:
    with_default = select_route(message, "action", frozenset(routes | {DEFAULT}))
    without = select_route(message, "action", frozenset(routes))
    assert with_default == DEFAULT or with_default in routes
    assert without is None or without in routes
    assert (without is None) == (with_default == DEFAULT)


@given(value=st.one_of(st.integers(), st.none(), st.lists(st.text()), st.just("$connect")))
def test_a_route_key_that_is_not_a_route_name_goes_to_default(value: Any) -> None:
    routes = frozenset({"$connect", "$disconnect", DEFAULT, "go"})
    assert select_route(json.dumps({"action": value}), "action", routes) == DEFAULT
