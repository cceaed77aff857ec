"""Fixtures that run the real platform: `nimbus up` in a subprocess, on a free port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx
import pytest

from nimbus.spec.manifest import load_manifest

if TYPE_CHECKING:
    from mqtt_broker import Mosquitto

APPS = Path(__file__).parent / "apps"
ROOT = Path(__file__).parent.parent
STARTUP_LIMIT = 60.0
LOOP_ERRORS = (
    "exception was never retrieved",
    "Exception in callback",
    "Task was destroyed but it is pending",
    "Unhandled exception",
)


@dataclass
class Platform:
    """A running `nimbus up`, its URL, and helpers to call it like a user would."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path
    log_file: BinaryIO
    token: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"authorization": f"Bearer {self.token}"}  # the platform API wants it
        self.http = httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def cli(
        self, *args: str, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the `nimbus` CLI against this platform."""
        env = {**os.environ, "NIMBUS_URL": self.url, "NIMBUS_TOKEN": self.token, "COLUMNS": "200"}
        result = subprocess.run(
            [sys.executable, "-m", "nimbus", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"nimbus {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def invoke(self, function: str, event: Any = None) -> dict[str, Any]:
        response = self.http.post(f"/_nimbus/functions/{function}/invoke", json=event)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def deploy_unchecked(self, manifest: Path) -> None:
        """Send a nimbus.yaml's spec to the platform API as it is. `nimbus up` and `deploy`
        import each handler first and refuse one that cannot start; the API takes it (the
        controller never imports user code), and that is how such handlers reach instances."""
        spec = load_manifest(manifest).model_dump_json()
        response = self.http.put("/_nimbus/spec", content=spec)
        assert response.status_code == 200, response.text

    def functions(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.http.get("/_nimbus/functions").json()}

    def wait_for(self, condition: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
        """Poll until `condition()` is truthy (a limit against hangs, not a timing assertion)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what}; platform log:\n{self.output()}")

    def zygote_pid(self) -> int:
        """The zygote currently forking this platform's instances (the newest one)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        zygotes = [
            int(pid)
            for pid in children.split()
            if b"nimbus.compute.zygote" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        return max(zygotes, default=0)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_no_loop_errors(self) -> None:
        """asyncio's reports of lost errors are always platform bugs, whatever the test did."""
        output = self.output()
        for sign in LOOP_ERRORS:
            assert sign not in output, f"{sign!r} in the platform's output:\n{output}"

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        self.log_file.close()


def process_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie awaiting its reaper has)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def start_platform(target: Path | str, data_dir: Path, *extra: str) -> Platform:
    data_dir.mkdir(parents=True, exist_ok=True)
    discovery = data_dir / "platform.json"
    discovery.unlink(missing_ok=True)
    log_path = data_dir / "platform.log"
    log = log_path.open("wb")  # closed by Platform.stop
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nimbus",
            "up",
            str(target),
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a process group of its own, as in a terminal of its own
    )
    deadline = time.monotonic() + STARTUP_LIMIT
    while not discovery.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            log.close()
            raise AssertionError(f"the platform did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    found = json.loads(discovery.read_text())
    return Platform(process, found["url"], data_dir, log_path, log, found["token"])


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Platform]]:
    """Start platforms for a test; all are stopped at its end."""
    started: list[Platform] = []

    def run(target: Path | str, *extra: str, data_dir: Path | None = None) -> Platform:
        platform = start_platform(target, data_dir or tmp_path / f"data{len(started)}", *extra)
        started.append(platform)
        return platform

    yield run
    for platform in started:
        platform.stop()
    for platform in started:
        platform.assert_no_loop_errors()


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform running tests/apps/basic.py, shared by a module's tests."""
    platform = start_platform(APPS / "basic.py", tmp_path_factory.mktemp("basic"), "--no-reload")
    yield platform
    platform.stop()
    platform.assert_no_loop_errors()


# The service contract suites (tests/services) run once per backend; only the embedded backend
# exists so far. Their async tests use anyio's pytest plugin (`@pytest.mark.anyio`) on asyncio.
BACKENDS = ["embedded"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test; each service's fixture builds it from this."""
    return str(request.param)


class Clock:
    """A backend's clock, moved by hand: services take it as `clock=` and call it for the time."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_killed(script: str, *args: str, after: int | None = None) -> list[str]:
    """Run a Python snippet in a child process that prints one line per acknowledged write, and
    return those lines once the child has died of SIGKILL.

    With `after`, the child is killed as soon as it has printed that many lines; without, it must
    kill itself (`os.kill(os.getpid(), signal.SIGKILL)`) and every line it printed is returned.
    Either way only whole lines count, and the child must have died of SIGKILL.
    """
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdout is not None
        lines: list[str] = []
        try:
            while after is None or len(lines) < after:
                line = child.stdout.readline()
                if not line:
                    break
                assert line.endswith("\n"), f"an unfinished line {line!r}"
                lines.append(line[:-1])
        finally:
            if after is not None:
                child.kill()
            child.wait()
            child.stdout.close()
        errors.seek(0)
        stderr = errors.read()
    assert child.returncode == -signal.SIGKILL, f"exit status {child.returncode}:\n{stderr}"
    if after is not None:
        assert len(lines) == after, f"{len(lines)} lines of {after}:\n{stderr}"
    return lines


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Selenium through Debian's chromedriver (the pair
    is built together, so their versions match; nothing is downloaded). Missing: skipped
    outside CI, failed in CI."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = "Debian's chromium and chromium-driver packages are not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,2400")
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own on a free port (tests/mqtt_broker.py); missing: skipped
    outside CI, failed in CI."""
    from mqtt_broker import Mosquitto, require_mosquitto

    require_mosquitto()
    mosquitto = Mosquitto(tmp_path / "broker")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()
