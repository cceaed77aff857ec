"""`nimbus.client` against a real `nimbus up`: every operation through the sync and async
clients, errors as nimbus exceptions, and the platform API's token."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import APPS, Platform, start_platform
from nimbus.client import (
    AsyncClient,
    Client,
    FunctionFailed,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Throttled,
    Unauthorized,
)
from nimbus.discovery import locate
from nimbus.services import queue, table

APP = APPS / "client_app.py"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(APP, tmp_path_factory.mktemp("clients"), "--no-reload")
    yield running
    running.stop()
    running.assert_no_loop_errors()


@pytest.fixture
def client(platform: Platform) -> Iterator[Client]:
    with Client(platform.url, token=platform.token) as opened:
        yield opened


def drain(client: Client, queue_name: str) -> list[dict[str, Any]]:
    """What a function receiving from the queue gets (it deletes what it received)."""
    received: list[dict[str, Any]] = client.invoke("drain", {"queue": queue_name})
    return received


# Invocations


def test_invoke_returns_the_function_result(client: Client) -> None:
    assert client.invoke("add", {"a": 2, "b": 40}) == 42


def test_a_failed_invocation_raises_function_failed_with_the_error(client: Client) -> None:
    with pytest.raises(FunctionFailed) as failed:
        client.invoke("broken", {"id": 7})
    assert failed.value.error_type == "ValueError"
    assert "cannot handle {'id': 7}" in failed.value.message
    assert failed.value.outcome == "error"
    assert any("ValueError" in line for line in failed.value.traceback)
    records = client.request("GET", "/invocations", params={"id": failed.value.request_id})
    assert [r["function"] for r in records] == ["broken"]


def test_an_unknown_function_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound, match="nope"):
        client.invoke("nope")


def test_invoke_async_then_wait_for_the_result(client: Client) -> None:
    invocation = client.invoke_async("add", {"a": 1, "b": 1})
    assert invocation.wait(timeout=60) == 2
    job = invocation.status()
    assert (job.status, job.attempts, job.result) == ("succeeded", 1, 2)


def test_invoke_async_with_the_same_id_runs_once(client: Client) -> None:
    first = client.invoke_async("add", {"a": 3, "b": 4}, id="order-7-total")
    again = client.invoke_async("add", {"a": 3, "b": 4}, id="order-7-total")
    assert first.id == again.id == "order-7-total"
    assert again.wait(timeout=60) == 7
    assert len(client.invocation("order-7-total").status().request_ids) == 1


def test_an_invalid_async_id_is_refused(client: Client) -> None:
    with pytest.raises(InvalidRequest, match="id"):
        client.invoke_async("add", {"a": 1, "b": 1}, id="has/slash")


def test_waiting_for_a_failed_async_invocation_raises(client: Client) -> None:
    invocation = client.invoke_async("broken", "x")
    with pytest.raises(FunctionFailed, match="cannot handle 'x'") as failed:
        invocation.wait(timeout=60)
    assert failed.value.error_type == "ValueError"
    assert failed.value.request_id == invocation.status().request_ids[-1]


def test_wait_gives_up_after_its_timeout_and_can_wait_again(client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "open"
    invocation = client.invoke_async("hold", {"until": str(gate)})
    with pytest.raises(TimeoutError, match=invocation.id):
        invocation.wait(timeout=0.2)  # the function cannot finish before the gate opens
    gate.touch()
    assert invocation.wait(timeout=60) == "released"


def test_a_busy_function_throttles_with_retry_after(
    platform: Platform, client: Client, tmp_path: Path
) -> None:
    gate = tmp_path / "open"
    holder = threading.Thread(target=client.invoke, args=("hold", {"until": str(gate)}))
    holder.start()
    try:
        platform.wait_for(lambda: platform.functions()["hold"]["busy"] == 1, "hold busy")
        with pytest.raises(Throttled) as throttled:
            client.invoke("hold", {"until": str(gate)})
        assert throttled.value.retry_after >= 1
    finally:
        gate.touch()
        holder.join()


# Queues and topics


def test_queue_send_reaches_the_queue_as_functions_see_it(client: Client) -> None:
    orders = client.queue("orders")
    message_id = orders.send({"id": 7}, attributes={"kind": "order"})
    batch = orders.send_batch(["plain text", queue.SendEntry(body="entry", attributes={"a": "1"})])
    assert message_id and len(batch.sent) == 2 and batch.failed == []
    received = sorted(drain(client, "orders"), key=lambda m: m["body"])
    assert received == [
        {"body": "entry", "attributes": {"a": "1"}, "group": None},
        {"body": "plain text", "attributes": {}, "group": None},
        {"body": '{"id":7}', "attributes": {"kind": "order"}, "group": None},
    ]


def test_fifo_queue_semantics_hold_for_outside_senders(client: Client) -> None:
    payments = client.queue("payments")
    first = payments.send("pay 1", group="customer-1")
    assert payments.send("pay 1", group="customer-1") == first  # content_dedup, as SQS
    with pytest.raises(InvalidRequest, match="group"):
        payments.send("no group")
    assert [m["body"] for m in drain(client, "payments")] == ["pay 1"]


def test_a_send_batch_entry_fails_alone(client: Client) -> None:
    result = client.queue("orders").send_batch(["ok", queue.SendEntry(body="x", delay=-1)])
    assert result.sent[0] is not None and result.sent[1] is None
    assert [(f.index, f.error) for f in result.failed] == [(1, "InvalidRequest")]
    assert [m["body"] for m in drain(client, "orders")] == ["ok"]


def test_topic_publish_reaches_subscribers(client: Client) -> None:
    event_id = client.topic("events").publish({"n": 1}, type="order.placed", source="shop")
    results = client.topic("events").publish_batch([{"n": 2}])
    assert results[0].id is not None

    def delivered() -> list[dict[str, Any]]:
        return [json.loads(m["body"]) for m in drain(client, "audit")]

    events: list[dict[str, Any]] = []
    while len(events) < 2:
        events += delivered()
    first = next(e for e in events if e["id"] == event_id)
    assert (first["type"], first["source"], first["data"]) == ("order.placed", "shop", {"n": 1})
    assert {"n": 2} in [e["data"] for e in events]


# Tables


def test_table_get_query_and_scan(client: Client) -> None:
    for number in range(5):
        item = {"id": f"c{number}", "email": f"{number % 2}@example.com", "n": number}
        client.perform("customers", table.Put(item=item), type(None) | table.Item)
    customers = client.table("customers")
    assert customers.get(id="c3") == table.Item(
        data={"id": "c3", "email": "1@example.com", "n": 3}, version=1
    )
    assert customers.get({"id": "missing"}) is None
    odd = customers.query("1@example.com", index="by_email")
    assert sorted(i.data["id"] for i in odd.items) == ["c1", "c3"]
    filtered = customers.query("0@example.com", index="by_email", filter={"n": {">": 0}})
    assert [i.data["id"] for i in filtered.items] == ["c2", "c4"]
    first = customers.scan(limit=3)
    rest = customers.scan(cursor=first.cursor)
    assert [i.data["id"] for i in first.items + rest.items] == [f"c{n}" for n in range(5)]
    with pytest.raises(InvalidRequest, match="key"):
        customers.get(name="c1")


def test_table_query_by_sort_key(client: Client) -> None:
    for at in (3, 1, 2):
        client.perform("visits", table.Put(item={"user": "u1", "at": at}), type(None) | table.Item)
    visits = client.table("visits")
    assert [i.data["at"] for i in visits.query("u1").items] == [1, 2, 3]
    newest = visits.query("u1", sort={">=": 2}, forward=False, limit=1)
    assert [i.data["at"] for i in newest.items] == [3]
    assert newest.cursor is not None


# Buckets


def test_bucket_put_get_head_list_delete(client: Client) -> None:
    uploads = client.bucket("uploads")
    info = uploads.put("docs/a.txt", "hello world", metadata={"Owner": "Zoë"})
    assert info.etag == f'"{hashlib.md5(b"hello world").hexdigest()}"'
    assert info.metadata == {"owner": "Zoë"}
    assert uploads.head("docs/a.txt") == info
    assert uploads.get("docs/a.txt") == b"hello world"
    assert uploads.get("docs/a.txt", range=(6, None)) == b"world"
    assert uploads.get("docs/a.txt", range=(-5, None)) == b"world"
    assert uploads.get("docs/a.txt", range=(0, 4)) == b"hello"
    assert client.invoke("read_object", {"key": "docs/a.txt"})["text"] == "hello world"
    page = uploads.list(prefix="docs/", delimiter="/")
    assert [o.key for o in page.objects] == ["docs/a.txt"]
    assert uploads.delete("docs/a.txt") is True
    assert uploads.delete("docs/a.txt") is False
    with pytest.raises(NotFound):
        uploads.get("docs/a.txt")


def test_an_unsatisfiable_range_is_refused(client: Client) -> None:
    client.bucket("uploads").put("short", b"abc")
    with pytest.raises(InvalidRequest, match="not satisfiable"):
        client.bucket("uploads").get("short", range=(10, None))


def test_a_big_file_streams_both_ways(client: Client, tmp_path: Path) -> None:
    source, copy = tmp_path / "big.bin", tmp_path / "copy.bin"
    data = os.urandom(5 * 1024 * 1024 + 3)
    source.write_bytes(data)
    uploads = client.bucket("uploads")
    info = uploads.upload_file("big.bin", source, content_type="application/x-test")
    assert (info.size, info.content_type) == (len(data), "application/x-test")
    assert info.etag == f'"{hashlib.md5(data).hexdigest()}"'
    assert uploads.download_file("big.bin", copy) == info
    assert copy.read_bytes() == data
    assert client.invoke("read_object", {"key": "big.bin"})["size"] == len(data)


def test_a_download_of_a_missing_object_leaves_no_file(client: Client, tmp_path: Path) -> None:
    target = tmp_path / "never.bin"
    with pytest.raises(NotFound):
        client.bucket("uploads").download_file("missing.bin", target)
    assert not target.exists()


def test_the_object_routes_speak_http_as_s3_does(platform: Platform) -> None:
    """What curl or another language's client sees: ETag, ranges, 206/416, HEAD."""
    url = "/_nimbus/buckets/uploads/objects/http/abc.txt"
    stored = platform.http.put(url, content=b"abc", headers={"content-type": "text/x-abc"})
    assert stored.json()["etag"] == f'"{hashlib.md5(b"abc").hexdigest()}"'
    whole = platform.http.get(url)
    assert (whole.status_code, whole.content) == (200, b"abc")
    assert whole.headers["etag"] == stored.json()["etag"]
    assert whole.headers["content-type"] == "text/x-abc"
    partial = platform.http.get(url, headers={"range": "bytes=0-"})
    assert (partial.status_code, partial.content) == (206, b"abc")
    assert partial.headers["content-range"] == "bytes 0-2/3"
    past = platform.http.get(url, headers={"range": "bytes=5-"})
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */3"
    assert "not satisfiable" in past.json()["error"]
    head = platform.http.head(url)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "3")


@pytest.mark.parametrize("known_size", [True, False], ids=["content-length", "chunked"])
def test_an_object_over_the_bucket_limit_is_refused_and_not_stored(
    client: Client, known_size: bool
) -> None:
    small = client.bucket("small")
    with pytest.raises(PayloadTooLarge, match="max_object_bytes"):
        if known_size:
            small.put("too-big", b"x" * 2000)
        else:  # a BytesIO has no file size: its bytes are sent chunked
            small.upload_file("too-big", io.BytesIO(b"x" * 2000))
    with pytest.raises(NotFound):
        small.head("too-big")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60),
    data=st.binary(max_size=3000),
    first=st.integers(0, 3000),
    length=st.integers(1, 3000),
)
@example(key="0\n", data=b"", first=0, length=1)  # once cut to "0": a regression
@example(key="\n0", data=b"x", first=0, length=1)  # once not routed at all
def test_any_key_and_bytes_come_back_as_they_were_put(
    client: Client, key: str, data: bytes, first: int, length: int
) -> None:
    uploads = client.bucket("uploads")
    info = uploads.put(key, data)
    assert info.key == key and uploads.head(key) == info
    assert uploads.get(key) == data
    if first < len(data):
        assert uploads.get(key, range=(first, first + length - 1)) == data[first : first + length]
    assert key in [o.key for o in uploads.list(prefix=key).objects]


# Errors: bad input changes nothing


def test_only_declared_resources_are_reachable(client: Client) -> None:
    with pytest.raises(NotFound, match="no resource named 'ghost'"):
        client.queue("ghost").send("boo")
    with pytest.raises(NotFound):
        client.bucket("ghost").put("k", b"v")


def test_an_operation_of_another_kind_is_refused_clearly(client: Client) -> None:
    with pytest.raises(InvalidRequest, match="'customers' is a table, not a queue"):
        client.queue("customers").send("x")
    with pytest.raises(InvalidRequest, match="'orders' is a queue, not a bucket"):
        client.bucket("orders").put("k", b"v")
    assert drain(client, "orders") == []


def test_malformed_operations_are_refused_and_change_nothing(platform: Platform) -> None:
    before = platform.http.post("/_nimbus/resources/orders", json={"type": "queue.stats"}).json()
    for body in (b"{not json", b'{"type": "queue.fly"}', b'{"type": "queue.send", "body": 5}'):
        answer = platform.http.post("/_nimbus/resources/orders", content=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "InvalidRequest"
    bad_range = platform.http.get(
        "/_nimbus/buckets/uploads/objects/x", headers={"range": "bytes=1-2,5-6"}
    )
    assert bad_range.status_code == 400 and "one range" in bad_range.json()["error"]
    bad_metadata = platform.http.put(
        "/_nimbus/buckets/uploads/objects/m", content=b"v", headers={"x-nimbus-metadata": "[1]"}
    )
    assert bad_metadata.status_code == 400
    after = platform.http.post("/_nimbus/resources/orders", json={"type": "queue.stats"}).json()
    assert after == before
    assert platform.http.get("/_nimbus/buckets/uploads/objects/m").status_code == 404


DEEP = b"[" * 100_000 + b"]" * 100_000
"""JSON nested too deeply to decode: malformed JSON, as QA's fresh clone sent it."""


def test_json_nested_too_deeply_is_refused_as_malformed_everywhere(platform: Platform) -> None:
    route = platform.http.post("/echo", content=DEEP)
    assert route.status_code == 400, route.text
    assert route.json()["error"] == "the request body is not valid JSON: JSON is nested too deeply"
    publish = b'{"type": "topic.publish", "data": ' + DEEP + b"}"
    for path, body, what in (
        ("/_nimbus/functions/add/invoke", DEEP, "the event"),
        ("/_nimbus/resources/events", publish, "the operation"),
    ):
        answer = platform.http.post(path, content=body)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {
            "error": f"{what} is not valid JSON: JSON is nested too deeply",
            "type": "InvalidRequest",
        }
    assert platform.http.post("/echo", json=[[1]]).json() == [[1]]
    assert "RecursionError" not in platform.output()


# The platform API's token


def test_requests_without_the_token_are_refused(platform: Platform) -> None:
    with httpx.Client(base_url=platform.url, timeout=60) as anonymous:
        missing = anonymous.get("/_nimbus/functions")
        wrong = anonymous.post(
            "/_nimbus/resources/orders",
            json={"type": "queue.send", "body": "sneaky"},
            headers={"authorization": "Bearer not-the-token"},
        )
        assert missing.status_code == wrong.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="nimbus"'
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert "Authorization: Bearer" in missing.json()["error"]
        assert anonymous.get("/_nimbus/health").json()["status"] == "ok"
        assert anonymous.get("/ping").text == "pong"  # app routes are public


def test_a_client_with_a_wrong_token_gets_unauthorized(platform: Platform) -> None:
    with Client(platform.url, token="wrong") as wrong, pytest.raises(Unauthorized, match="token"):
        wrong.queue("orders").send("sneaky")
    with Client(platform.url, token=platform.token) as client:
        assert drain(client, "orders") == []


def test_clients_find_url_and_token_in_the_data_folder(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NIMBUS_URL", raising=False)
    monkeypatch.delenv("NIMBUS_TOKEN", raising=False)
    monkeypatch.setenv("NIMBUS_DATA_DIR", str(platform.data_dir))
    with Client() as client:
        assert client.url == platform.url
        assert client.invoke("add", {"a": 1, "b": 2}) == 3


def test_the_discovery_file_is_readable_by_its_owner_only(platform: Platform) -> None:
    found = platform.data_dir / "platform.json"
    assert stat.S_IMODE(found.stat().st_mode) == 0o600
    assert json.loads(found.read_text())["token"] == platform.token


def test_the_data_folder_token_never_goes_to_another_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NIMBUS_TOKEN", raising=False)
    monkeypatch.delenv("NIMBUS_URL", raising=False)
    found = {"url": "http://127.0.0.1:9999", "pid": 1, "token": "local-secret"}
    (tmp_path / "platform.json").write_text(json.dumps(found))
    assert locate(data_dir=tmp_path) == ("http://127.0.0.1:9999", "local-secret")
    assert locate("http://elsewhere:80", data_dir=tmp_path) == ("http://elsewhere:80", None)
    monkeypatch.setenv("NIMBUS_URL", "http://elsewhere:80")
    monkeypatch.setenv("NIMBUS_TOKEN", "given")
    assert locate(data_dir=tmp_path) == ("http://elsewhere:80", "given")
    assert locate(token="argument", data_dir=tmp_path).token == "argument"


def test_nimbus_up_takes_its_token_from_the_environment(
    launch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIMBUS_TOKEN", "chosen-token_1")
    platform = launch(APP, "--no-reload")
    assert platform.token == "chosen-token_1"
    with Client(platform.url, token="chosen-token_1") as client:
        assert client.invoke("add", {"a": 1, "b": 1}) == 2


def test_nimbus_up_refuses_a_token_that_cannot_be_sent(platform: Platform, tmp_path: Path) -> None:
    result = platform.cli("up", str(APP), "--token", "has space", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "platform token" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything started


def test_no_platform_is_a_clear_error() -> None:
    with Client("http://127.0.0.1:9", token="t") as client, pytest.raises(Exception) as error:
        client.invoke("add")
    assert type(error.value).__name__ == "PlatformUnavailable"
    assert "no nimbus platform answers at http://127.0.0.1:9" in str(error.value)


# The async client


@pytest.mark.anyio
async def test_the_async_client_does_what_the_sync_one_does(
    platform: Platform, tmp_path: Path
) -> None:
    data = os.urandom(2 * 1024 * 1024 + 1)
    (tmp_path / "in.bin").write_bytes(data)
    async with AsyncClient(platform.url, token=platform.token) as client:
        assert await client.invoke("add", {"a": 20, "b": 22}) == 42
        with pytest.raises(FunctionFailed, match="ValueError"):
            await client.invoke("broken")
        invocation = await client.invoke_async("add", {"a": 1, "b": 2})
        assert await invocation.wait(timeout=60) == 3
        assert (await client.invocation(invocation.id).status()).status == "succeeded"
        await client.queue("orders").send("async hello")
        await client.queue("orders").send_batch(["async batch"])
        bodies = sorted(m["body"] for m in await client.invoke("drain", {"queue": "orders"}))
        assert bodies == ["async batch", "async hello"]
        assert await client.topic("events").publish({"async": True})
        assert (await client.topic("events").publish_batch([1]))[0].id is not None
        await client.perform("customers", table.Put(item={"id": "a1"}), type(None) | table.Item)
        customers = client.table("customers")
        assert (await customers.get(id="a1")) == table.Item(data={"id": "a1"}, version=1)
        assert [i.data for i in (await customers.query("a1")).items] == [{"id": "a1"}]
        assert {"id": "a1"} in [i.data for i in (await customers.scan(limit=1000)).items]
        uploads = client.bucket("uploads")
        info = await uploads.upload_file("async/in.bin", tmp_path / "in.bin")
        assert info.etag == f'"{hashlib.md5(data).hexdigest()}"'
        assert await uploads.head("async/in.bin") == info
        assert await uploads.download_file("async/in.bin", tmp_path / "out.bin") == info
        assert (tmp_path / "out.bin").read_bytes() == data
        assert await uploads.get("async/in.bin", range=(0, 9)) == data[:10]
        assert (await uploads.put("async/s", "text")).size == 4
        assert [o.key for o in (await uploads.list(prefix="async/")).objects] == [
            "async/in.bin",
            "async/s",
        ]
        assert await uploads.delete("async/s") is True
        with pytest.raises(NotFound):
            await uploads.get("async/s")
        with pytest.raises(PayloadTooLarge):
            await client.bucket("small").upload_file("big", io.BytesIO(b"x" * 2000))
    async with AsyncClient(platform.url, token="wrong") as wrong:
        with pytest.raises(Unauthorized):
            await wrong.invoke("add", {"a": 1, "b": 1})
