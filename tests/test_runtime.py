"""The function runtime, observed from outside: isolation, context, limits, crashes, scaling."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import APPS, Platform, process_alive


def test_functions_run_in_their_own_processes(basic: Platform) -> None:
    first = basic.invoke("echo", {"n": 1})["result"]
    second = basic.invoke("other")["result"]
    assert first["pid"] != second["pid"]
    assert basic.process.pid not in (first["pid"], second["pid"], first["ppid"])
    assert first["event"] == {"n": 1}


def test_context_describes_the_invocation(basic: Platform) -> None:
    record = basic.invoke("echo", "x")
    result = record["result"]
    assert result["request_id"] == record["id"]
    assert result["function"] == "echo"
    assert result["memory_mb"] == 128


def test_environment_is_per_function_and_controller_secrets_stay_out(
    launch: Callable[..., Platform], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIMBUS_TEST_SECRET", "hunter2")
    platform = launch(APPS / "basic.py", "--no-reload")
    assert platform.invoke("other")["result"]["env"] == "hi"
    echoed = platform.invoke("echo")["result"]
    assert echoed["env"] is None
    assert echoed["secret"] is None


def test_functions_run_in_their_app_folder(basic: Platform) -> None:
    assert basic.invoke("where")["result"] == str(APPS)


def test_first_invocation_is_cold_then_warm(basic: Platform) -> None:
    first = basic.invoke("pid")
    second = basic.invoke("pid")
    assert first["cold_start"] is True
    assert second["cold_start"] is False
    assert first["result"] == second["result"]


def test_handler_exception_is_a_structured_error(basic: Platform) -> None:
    record = basic.invoke("flaky", {"id": "x"})
    assert record["outcome"] == "error"
    error = record["error"]
    assert (error["kind"], error["type"]) == ("Handler", "RuntimeError")
    assert error["message"] == "flaky failed on x"
    assert any("basic.py" in line and "in flaky" in line for line in error["traceback"])
    assert not any("nimbus/compute" in line for line in error["traceback"])
    logged = basic.cli_json("logs", "flaky", "--request", record["id"])
    assert any("RuntimeError: flaky failed on x" in entry["message"] for entry in logged)


def test_unserializable_result_is_an_error_not_a_crash(basic: Platform) -> None:
    record = basic.invoke("unserializable")
    assert record["outcome"] == "error"
    assert "cannot be sent back" in record["error"]["message"]
    assert basic.invoke("unserializable")["cold_start"] is False


def test_timeout_kills_the_instance_and_reports_timeout(basic: Platform) -> None:
    before = basic.invoke("sleeper", {"seconds": 0})["result"]["pid"]
    record = basic.invoke("sleeper", {"seconds": 30})
    assert record["outcome"] == "timeout"
    assert record["error"]["kind"] == "Timeout"
    assert record["billed_ms"] == 1000
    basic.wait_for(lambda: not process_alive(before), "the timed-out instance to be gone")
    after = basic.invoke("sleeper", {"seconds": 0})
    assert after["cold_start"] is True
    assert after["result"]["pid"] != before


def test_memory_over_the_limit_reports_out_of_memory(basic: Platform) -> None:
    record = basic.invoke("hog", 512)
    assert record["outcome"] == "oom"
    assert record["error"]["kind"] == "OutOfMemory"
    assert "128 MB" in record["error"]["message"]
    assert basic.invoke("hog", 8)["result"] == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("exit", "exited with status 3"),
        ("segfault", "killed by SIGSEGV"),
        ("kill", "killed by SIGKILL"),
        ("sysexit", "tried to exit the process"),
    ],
)
def test_a_crash_fails_only_its_invocation(basic: Platform, how: str, reason: str) -> None:
    record = basic.invoke("crash", how)
    assert record["outcome"] == "crash"
    assert reason in record["error"]["message"]
    assert basic.invoke("pid")["outcome"] == "success"
    assert basic.invoke("crash", "nothing-matches-so-it-kills-itself")["outcome"] == "crash"


def test_kill_9_of_a_worker_mid_invocation(basic: Platform) -> None:
    seen = basic.cli_json("logs", "busy")
    after = seen[-1]["seq"] if seen else 0
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(basic.http.get, "/busy", params={"sleep": "20"})
        pid = basic.wait_for(lambda: _busy_pid(basic, after), "the worker to be busy")
        os.kill(pid, signal.SIGKILL)
        response = running.result()
    assert response.status_code == 502
    assert "SIGKILL" in response.json()["error"]["message"]
    again = basic.http.get("/busy")
    assert again.status_code == 200
    assert again.json()["pid"] != pid


def test_scales_up_on_demand(basic: Platform, tmp_path: Path) -> None:
    """Three calls that can only finish together: each must have an instance of its own."""
    event = {"dir": str(tmp_path), "count": 3}
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: basic.invoke("rendezvous", event), range(3)))
    assert [r["outcome"] for r in results] == ["success"] * 3
    assert len({r["result"] for r in results}) == 3


def test_async_handler_takes_several_invocations_at_once(basic: Platform) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: basic.invoke("together", {"seconds": 1}), range(4)))
    assert all(r["outcome"] == "success" for r in results)
    assert len({r["result"]["pid"] for r in results}) == 1


def test_scale_to_zero_and_back(basic: Platform) -> None:
    first = basic.invoke("ephemeral")
    basic.wait_for(lambda: basic.functions()["ephemeral"]["instances"] == 0, "scale to zero")
    basic.wait_for(lambda: not process_alive(first["result"]), "the idle instance to exit")
    again = basic.invoke("ephemeral")
    assert again["cold_start"] is True
    assert again["result"] != first["result"]


def test_min_instances_are_kept_warm(basic: Platform) -> None:
    basic.wait_for(lambda: basic.functions()["warm"]["instances"] == 2, "two warm instances")
    record = basic.invoke("warm")
    assert record["cold_start"] is False
    assert basic.functions()["warm"]["instances"] >= 2


def test_logs_are_captured_per_invocation(basic: Platform) -> None:
    record = basic.invoke("echo", "log me")
    entries = basic.wait_for(
        lambda: basic.cli_json("logs", "echo", "--request", record["id"]), "the logs"
    )
    messages = [(e["level"], e["message"]) for e in entries]
    assert ("INFO", "echo got 'log me'") in messages
    assert ("WARNING", "a warning from echo") in messages
    assert all(e["request_id"] == record["id"] for e in entries)


def test_invocation_record_has_usage(basic: Platform) -> None:
    record = basic.invoke("pid")
    [stored] = basic.wait_for(
        lambda: basic.http.get("/_nimbus/invocations", params={"id": record["id"]}).json(),
        "the record",
    )
    assert stored["function"] == "pid"
    assert stored["trigger"] == "invoke"
    assert stored["billed_ms"] >= stored["duration_ms"] > 0
    assert stored["peak_memory_mb"] > 0
    assert stored["memory_mb"] == 128
    assert stored["outcome"] == "success"


def test_preload_imports_the_module_in_the_zygote(
    launch: Callable[..., Platform],
) -> None:
    preloaded = launch(APPS / "preload_app.py", "--no-reload").invoke("preloaded")["result"]
    assert preloaded["imported_in"] != preloaded["pid"]
    lazy = launch(APPS / "lazy_app.py", "--no-reload").invoke("lazy")["result"]
    assert lazy["imported_in"] == lazy["pid"]


def test_a_handler_that_cannot_be_loaded_reports_an_init_error(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    app = tmp_path / "nimbus.yaml"
    app.write_text(
        "name: broken\nfunctions:\n"
        "  gone:\n    handler: nowhere:handler\n"
        "  typo:\n    handler: lazy_app:lazzy\n"
        "  sync_concurrent:\n    handler: lazy_app:lazy\n    concurrency: 2\n"
        "  kept_warm:\n    handler: nowhere:handler\n    min_instances: 1\n"
    )
    (tmp_path / "lazy_app.py").write_text((APPS / "lazy_app.py").read_text())
    platform = launch(APPS / "lazy_app.py", "--no-reload")
    platform.deploy_unchecked(app)
    gone = platform.invoke("gone")
    assert (gone["outcome"], gone["error"]["type"]) == ("init_error", "ModuleNotFoundError")
    typo = platform.invoke("typo")
    assert (typo["outcome"], typo["error"]["type"]) == ("init_error", "AttributeError")
    sync = platform.invoke("sync_concurrent")
    assert sync["outcome"] == "init_error"
    assert "needs an `async def` handler" in sync["error"]["message"]
    logged = platform.wait_for(
        lambda: platform.cli_json("logs", "kept_warm"), "the failed warm start to be logged"
    )
    assert "an instance failed to start: ModuleNotFoundError" in logged[0]["message"]


def _busy_pid(platform: Platform, after: int) -> int | None:
    """The pid the `busy` function printed in a log line newer than `after`."""
    entries = platform.http.get("/_nimbus/logs", params={"function": "busy", "after": after}).json()
    for entry in entries:
        if entry["message"].startswith("busy in "):
            return int(entry["message"].removeprefix("busy in "))
    return None


def test_timeout_in_a_shared_async_instance_cancels_only_that_call(basic: Platform) -> None:
    with ThreadPoolExecutor(2) as pool:
        late = pool.submit(basic.invoke, "patient", {"seconds": 30})
        basic.wait_for(lambda: basic.functions()["patient"]["busy"] == 1, "the long call to run")
        on_time = pool.submit(basic.invoke, "patient", {"seconds": 0.5})
        late_record, on_time_record = late.result(), on_time.result()
    assert late_record["outcome"] == "timeout"
    assert on_time_record["outcome"] == "success"
    after = basic.invoke("patient", {})
    assert after["cold_start"] is False  # the instance was not killed
    assert after["result"]["pid"] == on_time_record["result"]["pid"]


def test_an_async_handler_that_ignores_cancellation_is_killed(basic: Platform) -> None:
    before = basic.invoke("patient", {})["result"]["pid"]
    record = basic.invoke("patient", {"block": 10})
    assert record["outcome"] == "timeout"
    basic.wait_for(lambda: not process_alive(before), "the stuck instance to be killed")
    assert basic.invoke("patient", {})["result"]["pid"] != before


def test_records_and_logs_reach_disk_without_being_queried(
    launch: Callable[..., Platform],
) -> None:
    """Regression: records once waited in memory until someone queried them."""
    platform = launch(APPS / "basic.py", "--no-reload")
    ids = [platform.invoke("echo", n)["id"] for n in range(5)]
    database = platform.data_dir / "platform.db"

    def on_disk() -> bool:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            found = {row[0] for row in connection.execute("SELECT id FROM invocations")}
            logged = {row[0] for row in connection.execute("SELECT request_id FROM logs")}
        return set(ids) <= found and set(ids) <= logged

    platform.wait_for(on_disk, "the records and logs to be written")
    platform.stop(signal.SIGKILL)
    assert on_disk()
