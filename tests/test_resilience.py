"""The platform keeps its promises when parts of it fail: a dead zygote, a hanging import, a
failing start with work queued, a redeploy under load, Ctrl-C in the terminal."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest import APPS, Platform

BROKEN = """
name: broken
functions:
  hangs:
    handler: hanging:handler
    timeout: 1
  fails:
    handler: failing:handler
    max_instances: 1
    failure: {retries: 0}
"""


def _broken(launch: Callable[..., Platform], folder: Path) -> Platform:
    """A platform running handlers that cannot start (see `Platform.deploy_unchecked`)."""
    (folder / "hanging.py").write_text("import time\ntime.sleep(600)\ndef handler(e): return e\n")
    (folder / "failing.py").write_text("raise RuntimeError('cannot import')\n")
    manifest = folder / "nimbus.yaml"
    manifest.write_text(BROKEN)
    platform = launch(APPS / "lazy_app.py", "--no-reload")
    platform.deploy_unchecked(manifest)
    return platform


def test_the_platform_replaces_a_dead_zygote(launch: Callable[..., Platform]) -> None:
    platform = launch(APPS / "basic.py", "--no-reload")
    assert platform.invoke("pid")["outcome"] == "success"
    dead = platform.zygote_pid()
    os.kill(dead, signal.SIGKILL)
    platform.wait_for(lambda: "the zygote was replaced" in platform.output(), "recovery")
    assert platform.invoke("pid")["outcome"] == "success"
    assert platform.http.get("/text").text == "plain words"
    assert "died; replacing it" in platform.output()


def test_a_handler_that_hangs_at_import_is_stopped_after_the_init_limit(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    platform = _broken(launch, tmp_path)
    record = platform.invoke("hangs")
    assert (record["outcome"], record["error"]["type"]) == ("init_error", "InitTimeout")
    assert platform.functions()["hangs"]["instances"] == 0


def test_queued_work_is_not_stranded_when_a_start_fails(
    launch: Callable[..., Platform], tmp_path: Path
) -> None:
    platform = _broken(launch, tmp_path)
    ids = [
        platform.http.post("/_nimbus/functions/fails/invoke?mode=async", json=n).json()["id"]
        for n in range(3)
    ]

    def all_failed() -> bool:
        jobs = [platform.http.get(f"/_nimbus/jobs/{i}").json() for i in ids]
        return all(job["status"] == "failed" for job in jobs)

    platform.wait_for(all_failed, "every job to end in the dead-letter store")
    assert platform.functions()["fails"]["waiting"] == 0


def test_a_redeploy_does_not_kill_calls_still_running(basic: Platform) -> None:
    """A call on a pool retired by one deploy survives a later deploy that moves every
    function to a new zygote."""
    original = basic.http.get("/_nimbus/spec").json()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(basic.invoke, "sleeper", {"seconds": 0.8})
        basic.wait_for(lambda: basic.functions()["sleeper"]["busy"] == 1, "the call to run")
        changed = _with(original, "sleeper", timeout=2.0)
        assert basic.http.put("/_nimbus/spec", json=changed).status_code == 200
        preloaded = _with(changed, "pid", preload=True)  # a new zygote for every function
        assert basic.http.put("/_nimbus/spec", json=preloaded).status_code == 200
        assert running.result()["outcome"] == "success"
    assert basic.http.put("/_nimbus/spec", json=original).status_code == 200


def test_ctrl_c_lets_running_calls_finish(launch: Callable[..., Platform]) -> None:
    """The terminal sends SIGINT to the whole process group; instances must not die of it."""
    platform = launch(APPS / "basic.py", "--no-reload")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(platform.http.get, "/busy", params={"sleep": "1"})
        platform.wait_for(lambda: platform.functions()["busy"]["busy"] == 1, "the call to run")
        os.killpg(platform.process.pid, signal.SIGINT)
        response = running.result()
    assert response.status_code == 200
    assert platform.process.wait(30) in (0, 130)  # 130: ended by SIGINT, as shells expect
    assert "Traceback" not in platform.output()


def test_a_cancelled_call_keeps_its_slot_until_it_stops(basic: Platform) -> None:
    """slow_to_stop has concurrency 2 and takes 1.5 s to stop once cancelled: while it stops,
    only one other call may run beside it."""
    assert basic.invoke("slow_to_stop", {"seconds": 30})["outcome"] == "timeout"
    url = "/_nimbus/functions/slow_to_stop/invoke?mode=async"
    ids = [basic.http.post(url, json={"seconds": 0.5}).json()["id"] for _ in range(2)]

    def results() -> list[dict[str, Any]] | None:
        jobs = [basic.http.get(f"/_nimbus/jobs/{i}").json() for i in ids]
        return jobs if all(job["status"] == "succeeded" for job in jobs) else None

    done = basic.wait_for(results, "both calls to succeed")
    assert max(job["result"]["peak"] for job in done) <= 2


def _with(spec: dict[str, Any], function: str, **fields: Any) -> dict[str, Any]:
    functions = {**spec["functions"], function: {**spec["functions"][function], **fields}}
    return {**spec, "functions": functions}
