"""The CLI's resource commands and `invoke --wait`, run as a user runs them against a real
`nimbus up`: output, exit codes, clean errors, and the token found in the data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import APPS, Platform, start_platform
from nimbus.client import Client
from nimbus.services import table

APP = APPS / "client_app.py"
DEEP = "[" * 60_000 + "]" * 60_000
"""JSON nested too deeply to decode (and short enough for one command-line argument)."""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(APP, tmp_path_factory.mktemp("client-cli"), "--no-reload")
    with Client(running.url, token=running.token) as client:
        for number, email in enumerate(["a@x", "b@x", "a@x"]):
            item = {"id": f"c{number}", "email": email}
            client.perform("customers", table.Put(item=item), type(None) | table.Item)
    yield running
    running.stop()
    running.assert_no_loop_errors()


def nimbus(
    *args: str, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "nimbus", *args],
        input=stdin,
        capture_output=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def drained(platform: Platform, queue: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = platform.invoke("drain", {"queue": queue})["result"]
    return received


def test_send_prints_the_message_id(platform: Platform) -> None:
    sent = platform.cli("send", "orders", "hello there", "--attribute", "kind=greeting", check=True)
    message_id = sent.stdout.strip()
    assert message_id
    assert drained(platform, "orders") == [
        {"body": "hello there", "attributes": {"kind": "greeting"}, "group": None}
    ]
    as_json = platform.cli_json("send", "payments", "pay", "--group", "g1")
    assert as_json["id"] == platform.cli_json("send", "payments", "pay", "--group", "g1")["id"]
    assert [m["body"] for m in drained(platform, "payments")] == ["pay"]


def test_send_reads_the_body_from_stdin(platform: Platform) -> None:
    env = {**os.environ, "NIMBUS_URL": platform.url, "NIMBUS_TOKEN": platform.token}
    result = nimbus("send", "orders", "-", env=env, stdin=b'{"from": "stdin"}')
    assert result.returncode == 0, result.stderr
    assert [m["body"] for m in drained(platform, "orders")] == ['{"from": "stdin"}']


def test_publish_sends_json_data_with_its_attributes(platform: Platform) -> None:
    result = platform.cli_json(
        "publish", "events", '{"n": 1}', "--type", "order.placed", "--source", "cli"
    )

    def delivered() -> list[dict[str, Any]]:
        return [json.loads(m["body"]) for m in drained(platform, "audit")]

    event = platform.wait_for(delivered, "the event in the audit queue")[0]
    assert event["id"] == result["id"]
    assert (event["type"], event["source"], event["data"]) == ("order.placed", "cli", {"n": 1})


def test_put_get_and_list_objects(platform: Platform, tmp_path: Path) -> None:
    source, copy = tmp_path / "report.csv", tmp_path / "copy.csv"
    source.write_bytes(b"a,b\n1,2\n" * 100_000)
    stored = platform.cli_json("put", "uploads", "reports/r.csv", str(source), "--meta", "by=cli")
    assert (stored["size"], stored["content_type"]) == (800_000, "text/csv")
    assert stored["metadata"] == {"by": "cli"}
    platform.cli("get", "uploads", "reports/r.csv", str(copy), check=True)
    assert copy.read_bytes() == source.read_bytes()
    env = {**os.environ, "NIMBUS_URL": platform.url, "NIMBUS_TOKEN": platform.token}
    to_stdout = nimbus("get", "uploads", "reports/r.csv", env=env)
    assert to_stdout.returncode == 0 and to_stdout.stdout == source.read_bytes()
    listing = platform.cli("objects", "uploads", "--delimiter", "/", check=True).stdout
    assert "reports/" in listing
    page = platform.cli_json("objects", "uploads", "--prefix", "reports/")
    assert [o["key"] for o in page["objects"]] == ["reports/r.csv"]
    readable = platform.cli("put", "uploads", "r2.txt", str(source), check=True).stdout
    assert "r2.txt: 800000 bytes, ETag" in readable


def test_put_reads_stdin(platform: Platform) -> None:
    env = {**os.environ, "NIMBUS_URL": platform.url, "NIMBUS_TOKEN": platform.token}
    result = nimbus("put", "uploads", "piped.bin", "-", env=env, stdin=b"\x00\x01piped")
    assert result.returncode == 0, result.stderr
    assert nimbus("get", "uploads", "piped.bin", env=env).stdout == b"\x00\x01piped"


def test_item_query_and_scan_print_json(platform: Platform) -> None:
    item = json.loads(platform.cli("item", "customers", '{"id": "c1"}', check=True).stdout)
    assert item == {"data": {"id": "c1", "email": "b@x"}, "version": 1}
    page = json.loads(platform.cli("query", "customers", "a@x", "--index", "by_email").stdout)
    assert sorted(i["data"]["id"] for i in page["items"]) == ["c0", "c2"]
    first = json.loads(platform.cli("scan", "customers", "--limit", "2", check=True).stdout)
    rest = json.loads(
        platform.cli("scan", "customers", "--cursor", first["cursor"], check=True).stdout
    )
    assert [i["data"]["id"] for i in first["items"] + rest["items"]] == ["c0", "c1", "c2"]
    filtered = platform.cli("scan", "customers", "--filter", '{"email": "b@x"}', check=True)
    assert [i["data"]["id"] for i in json.loads(filtered.stdout)["items"]] == ["c1"]


def test_invoke_wait_prints_the_result_of_an_async_invocation(platform: Platform) -> None:
    waited = platform.cli("invoke", "add", "--data", '{"a": 2, "b": 3}', "--wait", check=True)
    assert json.loads(waited.stdout) == 5
    again = platform.cli_json("invoke", "add", "-d", '{"a": 1, "b": 1}', "--wait", "--id", "j-1")
    assert again == {"id": "j-1", "result": 2}


def test_invoke_wait_on_a_failing_function_exits_non_zero(platform: Platform) -> None:
    failed = platform.cli("invoke", "broken", "--data", '"x"', "--wait")
    assert failed.returncode == 1
    assert "ValueError: cannot handle 'x'" in failed.stdout
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("send", "ghost", "boo"), 4, "no resource named 'ghost'"),
        (("send", "customers", "boo"), 2, "'customers' is a table, not a queue"),
        (("publish", "events", "{not json"), 2, "DATA is not valid JSON"),
        (("send", "orders", "x", "--attribute", "novalue"), 2, "--attribute takes NAME=VALUE"),
        (("item", "customers", '{"id": "nobody"}'), 4, "has no item"),
        (("item", "customers", '{"name": "c1"}'), 2, "key"),
        (("item", "customers", "notjson"), 2, "KEY is not valid JSON"),
        (("get", "uploads", "missing.bin"), 4, "has no object 'missing.bin'"),
        (("put", "uploads", "k", "/no/such/file"), 2, "/no/such/file is not a file"),
        (("put", "small", "k", str(APP)), 2, "max_object_bytes"),
        (("invoke", "add", "--id", "x"), 2, "add --async or --wait"),
        (("invoke", "add", "--data", "{bad"), 2, "--data is not valid JSON: JSON is malformed"),
        (("invoke", "add", "--data", DEEP), 2, "--data is not valid JSON: JSON is nested too"),
        (("invocations", "--limit", "0"), 2, "limit must be a whole number from 1 to 1000"),
        (("logs", "--limit", "100000"), 2, "limit must be a whole number from 1 to 1000"),
        (("dlq", "ls", "--limit", "0"), 2, "limit must be a whole number from 1 to 1000"),
        (("logs", "--level", "LOUD"), 2, "level 'LOUD' is not one of"),
        (("usage", "--by", "foo"), 2, "by must be one of all, function, resource"),
    ],
)
def test_bad_input_is_a_clean_error(
    platform: Platform, args: tuple[str, ...], code: int, message: str
) -> None:
    """Invalid input exits 2 (docs/client.md), with one line on stderr."""
    result = platform.cli(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_finds_url_and_token_in_the_data_folder(platform: Platform) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NIMBUS_URL", "NIMBUS_TOKEN")}
    found = nimbus("ls", "--json", env={**env, "NIMBUS_DATA_DIR": str(platform.data_dir)})
    assert found.returncode == 0, found.stderr
    assert "add" in [f["name"] for f in json.loads(found.stdout)]
    no_token = nimbus("ls", "--url", platform.url, env={**env, "NIMBUS_DATA_DIR": "/nowhere"})
    assert no_token.returncode == 8
    assert b"no platform token was sent" in no_token.stderr
    wrong = nimbus("ls", "--url", platform.url, "--token", "wrong", env=env)
    assert wrong.returncode == 8 and b"the token is not valid" in wrong.stderr
    assert b"Traceback" not in no_token.stderr + wrong.stderr
