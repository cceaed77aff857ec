"""The CLI, run as a user runs it: readable output, --json for scripts, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from conftest import APPS, ROOT, Platform
from nimbus.ids import short_id

HELLO = ROOT / "examples" / "hello"
RELOADING = """\
name: reloading
queues:
  jobs:
functions:
  hello:
    handler: handlers:hello
    max_instances: 1
    triggers:
      - {method: GET, path: /hello}
  work:
    handler: handlers:work
    max_instances: 1
    triggers:
      - {type: queue, queue: jobs}
"""
HANDLERS = """\
VERSION = "v1"


def hello(request):
    return VERSION


def work(batch):
    for message in batch.messages:
        print(f"{VERSION} got {message.body}")
"""


def nimbus(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if url:
        env["NIMBUS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "nimbus", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def one_line(text: str) -> str:
    """The CLI's error as one line: the terminal's width may have wrapped it anywhere."""
    return " ".join(text.split())


def save(path: Path, text: str) -> None:
    """Save as editors do, the new text in place at once: a reload never reads half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def logged(platform: Platform, function: str, text: str) -> bool:
    entries = platform.http.get("/_nimbus/logs", params={"function": function}).json()
    return any(text in entry["message"] for entry in entries)


def test_invoke_prints_the_result(basic: Platform) -> None:
    result = basic.cli("invoke", "echo", "--data", '{"k": [1, 2]}', check=True)
    assert json.loads(result.stdout)["event"] == {"k": [1, 2]}


def test_invoke_failure_exits_non_zero_with_the_error(basic: Platform) -> None:
    result = basic.cli("invoke", "flaky", "--data", '{"id": 7}')
    assert result.returncode == 1
    assert "RuntimeError: flaky failed on 7" in result.stdout
    assert "request id:" in result.stdout


def test_async_invoke_and_status(basic: Platform) -> None:
    accepted = basic.cli_json("invoke", "echo", "--async", "--data", '"later"')
    job = basic.wait_for(
        lambda: (j := basic.cli_json("status", accepted["id"]))["status"] == "succeeded" and j,
        "the async invocation",
    )
    assert job["result"]["event"] == "later"


def test_ls_shows_functions_and_routes(basic: Platform) -> None:
    listing = basic.cli("ls", check=True).stdout
    assert "hello" in listing
    assert "GET /hello/{name}" in listing
    functions = {f["name"]: f for f in basic.cli_json("ls")}
    assert functions["busy"]["max_instances"] == 1


def test_invocations_and_logs_commands(basic: Platform) -> None:
    record = basic.invoke("echo", "for the table")
    table = basic.cli("invocations", "echo", check=True).stdout
    assert record["id"] in table
    assert "success" in table
    logs = basic.wait_for(
        lambda: "for the table" in (out := basic.cli("logs", "echo").stdout) and out, "logs"
    )
    assert short_id(record["id"]) in logs


def test_bad_input_gets_a_clear_error_and_no_traceback(basic: Platform) -> None:
    bad_json = basic.cli("invoke", "echo", "--data", "{nope")
    assert bad_json.returncode == 2
    assert "--data is not valid JSON" in bad_json.stderr
    missing = basic.cli("invoke", "nope")
    assert missing.returncode == 4
    assert "no function named 'nope'" in missing.stderr
    for result in (bad_json, missing):
        assert "Traceback" not in result.stdout + result.stderr


def test_no_platform_is_a_clear_error() -> None:
    result = nimbus("ls", url="http://127.0.0.1:9")
    assert result.returncode == 3
    assert "no nimbus platform answers at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_spec_prints_the_resolved_spec_and_refuses_bad_apps(tmp_path: Path) -> None:
    spec = json.loads(nimbus("spec", str(HELLO)).stdout)
    assert spec["functions"]["hello"]["timeout"] == 3.0
    bad = tmp_path / "nimbus.yaml"
    bad.write_text("name: x\nfunctions:\n  f:\n    handler: m:f\n    memory_mb: 1\n")
    result = nimbus("spec", str(bad))
    assert result.returncode == 2
    assert (
        f"{bad}:5: functions.f.memory_mb: Input should be greater than or equal to 64"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert nimbus("spec", str(tmp_path / "missing.py")).returncode == 2


def test_spec_plan_and_deploy_refuse_handlers_that_cannot_run(
    basic: Platform, tmp_path: Path
) -> None:
    """Each handler is imported as its instances will import it (with the function's
    environment): a missing one, or a sync one with concurrency > 1, is refused with the file,
    line and field before anything is sent, instead of failing every invocation."""
    (tmp_path / "handlers.py").write_text(
        "import os\n\nGREETING = os.environ['GREETING']  # the function's own variable\n\n\n"
        "def hello(event):\n    return GREETING\n"
    )
    manifest = tmp_path / "nimbus.yaml"
    valid = "name: checked\nfunctions:\n  hello:\n    handler: handlers:hello\n"
    valid += "    environment: {GREETING: hi}\n"
    manifest.write_text(valid)
    assert nimbus("spec", str(manifest)).returncode == 0
    manifest.write_text(
        valid
        + "  typo:\n    handler: handlers:nope\n"
        + "  crowded:\n    handler: handlers:hello\n    concurrency: 4\n"
    )
    expected = [
        f"{manifest}:7: functions.typo.handler: AttributeError: "
        "module 'handlers' has no attribute 'nope'",
        f"{manifest}:10: functions.crowded.concurrency: "
        "concurrency > 1 needs an `async def` handler",
    ]
    for result in (
        nimbus("spec", str(manifest)),
        basic.cli("plan", str(manifest)),
        basic.cli("deploy", str(manifest)),
    ):
        assert result.returncode == 2
        for line in expected:
            assert line in one_line(result.stderr)
        assert "Traceback" not in result.stderr
    assert basic.http.get("/_nimbus/spec").json()["name"] == "basic"


def test_plan_then_deploy_is_idempotent(launch: Callable[..., Platform], tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(HELLO, app)
    platform = launch(app, "--no-reload")
    assert "no changes" in platform.cli("plan", str(app), check=True).stdout
    source = app / "app.py"
    source.write_text(
        source.read_text().replace("@app.function(timeout=10)", "@app.function(timeout=20)")
        + textwrap.dedent(
            """

            @app.function()
            def extra(event: object) -> str:
                return "extra"
            """
        )
    )
    plan = platform.cli_json("plan", str(app))
    assert plan["add"] == ["extra"]
    assert plan["change"] == [
        {"name": "add", "fields": [{"field": "timeout", "old": 10.0, "new": 20.0}]}
    ]
    readable = platform.cli("plan", str(app), check=True).stdout
    assert "+ extra" in readable
    assert "timeout: 10.0 -> 20.0" in readable
    platform.cli("deploy", str(app), check=True)
    assert platform.invoke("extra")["result"] == "extra"
    assert platform.functions()["add"]["timeout"] == 20.0
    assert "no changes" in platform.cli("deploy", str(app), check=True).stdout
    assert "no changes" in platform.cli("plan", str(app), check=True).stdout


def test_up_reloads_when_the_code_changes(launch: Callable[..., Platform], tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(HELLO, app)
    platform = launch(app)
    assert platform.invoke("add", {"a": 1, "b": 2})["result"] == 3
    source = app / "app.py"
    source.write_text(
        source.read_text().replace('event["a"] + event["b"]', 'event["a"] * event["b"]')
    )
    platform.wait_for(
        lambda: platform.invoke("add", {"a": 2, "b": 5})["result"] == 10, "the reload"
    )
    broken_line = len(source.read_text().splitlines()) + 2
    source.write_text(source.read_text() + "\ndef broken(:\n")
    platform.wait_for(
        lambda: "reload failed" in platform.output(), "the failed reload to be reported"
    )
    assert platform.invoke("add", {"a": 2, "b": 5})["result"] == 10  # the previous version runs on
    assert f"{source}:{broken_line}: importing the app failed: SyntaxError" in platform.output()
    assert "importlib" not in platform.output()  # the line of the user's code, not of its reader


def test_up_keeps_a_manifest_app_running_when_a_handler_module_breaks(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    """A reload imports each handler's module (in a process of its own, as at start): one that
    no longer imports is refused, and the previous version serves on."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "nimbus.yaml").write_text(RELOADING)
    source = app / "handlers.py"
    source.write_text(HANDLERS)
    platform = launch(app)
    assert platform.http.get("/hello").text == "v1"
    platform.cli("send", "jobs", "first", check=True)
    platform.wait_for(lambda: logged(platform, "work", "v1 got first"), "the first message")
    save(source, HANDLERS + "\ndef broken(:\n")
    platform.wait_for(lambda: "reload failed" in platform.output(), "the failed reload")
    broken_line = len(HANDLERS.splitlines()) + 2
    assert (
        f"{app / 'nimbus.yaml'}:6: functions.hello.handler: importing handlers failed: "
        f"{source}:{broken_line}: SyntaxError: invalid syntax"
    ) in platform.output()
    response = platform.http.get("/hello")
    assert (response.status_code, response.text) == (200, "v1")
    platform.cli("send", "jobs", "meanwhile", check=True)
    platform.wait_for(lambda: logged(platform, "work", "v1 got meanwhile"), "the message")
    records = platform.http.get("/_nimbus/invocations", params={"function": "work"}).json()
    assert {record["outcome"] for record in records} == {"success"}
    assert platform.cli_json("dlq", "ls") == []
    save(source, HANDLERS.replace('"v1"', '"version 2"'))
    platform.wait_for(lambda: platform.http.get("/hello").text == "version 2", "the fixed reload")
    assert platform.output().count("nimbus: reload failed") == 1


def test_up_refuses_a_bad_app_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "app.py"
    bad.write_text("import nimbus\napp = nimbus.App('bad name!')\n")
    result = nimbus("up", str(bad), "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "name" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_refuses_a_manifest_whose_handler_module_does_not_import(tmp_path: Path) -> None:
    """As an app.py that does not import: nothing starts, the error names where it failed."""
    source = tmp_path / "handlers.py"
    source.write_text("def hello(event):\n    return 'hi'\n\ndef broken(:\n")
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text("name: broken\nfunctions:\n  hello:\n    handler: handlers:hello\n")
    result = nimbus("up", str(tmp_path), "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert (
        f"{manifest}:4: functions.hello.handler: importing handlers failed: "
        f"{source}:4: SyntaxError: invalid syntax"
    ) in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d" / "platform.db").exists()


def test_up_on_a_taken_port_is_a_clear_error(basic: Platform, tmp_path: Path) -> None:
    port = basic.url.rsplit(":", 1)[1]
    result = nimbus("up", str(HELLO), "--port", port, "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_app_runs_from_the_readme(launch: Callable[..., Platform]) -> None:
    platform = launch(HELLO, "--no-reload")
    assert platform.http.get("/hello/world").json()["hello"] == "world"
    assert platform.invoke("add", {"a": 2, "b": 3})["result"] == 5
    assert APPS.exists()


def test_two_platforms_cannot_share_a_data_folder(basic: Platform) -> None:
    result = nimbus("up", str(HELLO), "--port", "0", "--data-dir", str(basic.data_dir))
    assert result.returncode == 1
    assert "another nimbus platform is running with the data folder" in result.stderr
    assert basic.invoke("pid")["outcome"] == "success"  # the running one is untouched


def test_up_refuses_bad_ports_and_unusable_data_folders(tmp_path: Path) -> None:
    port = nimbus("up", str(HELLO), "--port", "99999", "--data-dir", str(tmp_path / "d"))
    assert port.returncode == 2
    assert "Invalid value for '--port'" in port.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    folder = nimbus("up", str(HELLO), "--port", "0", "--data-dir", str(blocker / "d"))
    assert folder.returncode == 1
    assert f"cannot use the data folder {blocker / 'd'}" in folder.stderr
    for result in (port, folder):
        assert "Traceback" not in result.stderr


def test_logs_follow_prints_new_lines_as_they_come(basic: Platform) -> None:
    env = {**os.environ, "NIMBUS_URL": basic.url, "NIMBUS_TOKEN": basic.token}
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "nimbus", "logs", "echo", "--follow", "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as follower:
        try:
            record = basic.invoke("echo", "followed")
            assert follower.stdout is not None
            for line in follower.stdout:  # blocks until the follower prints; the kill ends it
                entry = json.loads(line)
                if entry["request_id"] == record["id"] and "followed" in entry["message"]:
                    break
        finally:
            follower.kill()


def test_a_deploy_no_backend_can_make_is_refused_before_anything_changes(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    """Changing a stream's partitions cannot be done in place: the whole deploy is refused
    with a clear error, and the running spec stays as it was."""
    app = tmp_path / "app"
    app.mkdir()
    source = app / "app.py"
    source.write_text(
        textwrap.dedent(
            """
            import nimbus

            app = nimbus.App("resources")
            jobs = app.queue("jobs", visibility_timeout=30)
            clicks = app.stream("clicks", partitions=2)
            """
        )
    )
    platform = launch(app, "--no-reload")
    source.write_text(
        source.read_text()
        .replace("visibility_timeout=30", "visibility_timeout=60")
        .replace("partitions=2", "partitions=4")
    )
    result = platform.cli("deploy", str(app))
    assert result.returncode != 0
    assert "stream 'clicks' has 2 partitions" in result.stderr
    assert "Traceback" not in result.stderr
    deployed = platform.http.get("/_nimbus/spec").json()
    assert deployed["queues"]["jobs"]["visibility_timeout"] == 30
    assert deployed["streams"]["clicks"]["partitions"] == 2
