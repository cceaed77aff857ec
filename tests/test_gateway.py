"""The HTTP gateway over real sockets: routing, request and response shapes, and bad input."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import Platform


def test_route_with_path_params_query_and_headers(basic: Platform) -> None:
    response = basic.http.get(
        "/hello/ada", params={"x": "1", "y": "2"}, headers={"User-Agent": "t/1"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "ada"
    assert body["method"] == "GET"
    assert body["query"] == {"x": "1", "y": "2"}
    assert body["agent"] == "t/1"
    assert response.headers["x-nimbus-request-id"] == body["request_id"]
    assert 0 < body["remaining"] <= 3


def test_one_function_can_serve_two_methods(basic: Platform) -> None:
    assert basic.http.post("/hello/bob").json()["method"] == "POST"


def test_response_shapes(basic: Platform) -> None:
    text = basic.http.get("/text")
    assert (text.text, text.headers["content-type"]) == ("plain words", "text/plain; charset=utf-8")
    raw = basic.http.get("/bytes")
    assert (raw.content, raw.headers["content-type"]) == (
        b"\x00\x01binary",
        "application/octet-stream",
    )
    teapot = basic.http.get("/teapot")
    assert (teapot.status_code, teapot.json(), teapot.headers["x-kind"]) == (
        418,
        {"short": "stout"},
        "teapot",
    )
    nothing = basic.http.delete("/nothing")
    assert (nothing.status_code, nothing.content) == (204, b"")
    assert "content-length" not in nothing.headers  # RFC 9110: no Content-Length on 204
    head = basic.http.head("/text")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len("plain words"))


def test_json_body_round_trip(basic: Platform) -> None:
    response = basic.http.post("/json", json={"a": [1, 2, {"b": None}]})
    assert response.json() == {"got": {"a": [1, 2, {"b": None}]}}


def test_malformed_json_is_400_and_the_instance_survives(basic: Platform) -> None:
    response = basic.http.post("/json", content=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    empty = basic.http.post("/json")
    assert empty.status_code == 400
    assert basic.http.post("/json", json=1).json() == {"got": 1}


def test_routes_match_the_raw_path_and_decode_each_segment(basic: Platform) -> None:
    """As API Gateway: an encoded slash stays inside its segment, whose parameter gets it
    decoded; `request.path` is the decoded path."""
    assert basic.http.get("/hello/a%2Fb").json()["name"] == "a/b"
    assert basic.http.get("/h%65llo/x%20y").json()["name"] == "x y"
    encoded = basic.http.get("/paths/fixed%2Froute.txt").json()
    assert encoded == {"params": {"name": "fixed/route"}, "path": "/paths/fixed/route.txt"}
    unicode = basic.http.get("/paths/%F0%9F%8C%8D%3F.txt").json()
    assert unicode["params"] == {"name": "\U0001f30d?"}
    assert basic.http.get("/paths/fixed/route").json() == {
        "params": {}, "path": "/paths/fixed/route",
    }  # fmt: skip
    for path in ("/paths/fixed%2Froute", "/hello/a/b", "/paths/a/b.txt"):
        missing = basic.http.get(path)
        assert missing.status_code == 404, path
        assert "no route for GET" in missing.json()["error"]


def test_unknown_route_is_404_and_wrong_method_is_405(basic: Platform) -> None:
    missing = basic.http.get("/nowhere")
    assert missing.status_code == 404
    assert "no route" in missing.json()["error"]
    wrong = basic.http.put("/hello/x")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"


def test_body_over_the_limit_is_413_before_buffering(basic: Platform) -> None:
    # the test app sets max_body_bytes=1024
    response = basic.http.post("/json", content=b"x" * 2048)
    assert response.status_code == 413
    assert "1024 bytes" in response.json()["error"]
    assert basic.http.post("/json", json="fits").status_code == 200


def test_oversized_declared_body_is_refused_without_sending_it(basic: Platform) -> None:
    """A client announcing 100 MB gets 413 at once, though it never sends the body."""
    host, port = basic.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_chunked_body_over_the_limit_is_413(basic: Platform) -> None:
    def chunks() -> object:
        for _ in range(8):
            yield b"y" * 512

    response = basic.http.post("/json", content=chunks())  # type: ignore[arg-type]
    assert response.status_code == 413


def test_handler_error_is_502_with_request_id(basic: Platform) -> None:
    response = basic.http.get("/fail")
    assert response.status_code == 502
    body = response.json()
    assert body["error"]["type"] == "ValueError"
    assert body["error"]["message"] == "the handler broke"
    assert body["request_id"] == response.headers["x-nimbus-request-id"]
    records = basic.cli_json("invocations", "fail")
    assert records[0]["id"] == body["request_id"]
    assert records[0]["outcome"] == "error"


def test_timeout_is_504(basic: Platform) -> None:
    response = basic.http.get("/slow")
    assert response.status_code == 504
    assert response.json()["error"]["kind"] == "Timeout"


def test_saturated_function_answers_429_with_retry_after(basic: Platform, tmp_path: Path) -> None:
    """`busy` has max_instances=1: while one request holds it, the next is throttled."""
    release = tmp_path / "release"
    with httpx.Client(base_url=basic.url, timeout=60) as other, ThreadPoolExecutor(1) as pool:
        holder = pool.submit(other.get, "/busy", params={"until": str(release)})
        basic.wait_for(lambda: basic.functions()["busy"]["busy"] == 1, "busy to be busy")
        throttled = basic.http.get("/busy")
        release.touch()
        assert holder.result().status_code == 200
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert basic.http.get("/busy").status_code == 200
    outcomes = [r["outcome"] for r in basic.cli_json("invocations", "busy")]
    assert "throttled" in outcomes


def test_websocket_is_refused_cleanly(basic: Platform) -> None:
    response = basic.http.get(
        "/hello/x",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status_code in (403, 404, 426)


def test_invalid_responses_are_handler_errors_and_the_instance_survives(basic: Platform) -> None:
    pid_before = basic.invoke("pid")["result"]
    for kind in ("status", "text-status", "crlf", "unicode", "name"):
        response = basic.http.get("/bad-response", params={"kind": kind})
        assert response.status_code == 502, kind
        assert "cannot be sent back" in response.json()["error"]["message"]
    records = basic.cli_json("invocations", "bad_response")
    assert {r["outcome"] for r in records} == {"error"}
    assert basic.invoke("pid")["result"] == pid_before


def test_a_client_that_leaves_mid_body_runs_nothing(basic: Platform) -> None:
    host, port = basic.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /record-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        sock.sendall(b"only nine")
    assert basic.http.post("/record-body", content=b"whole").json() == 5
    logs = basic.cli_json("logs", "record_body")
    assert [e["message"] for e in logs] == ["got 5 bytes"]
