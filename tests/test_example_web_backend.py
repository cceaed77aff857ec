"""examples/web-backend end to end: the notes API over real HTTP, on a real platform.

The example is copied into tmp_path first, so its SQLite file never lands in the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Platform

EXAMPLES = Path(__file__).parent.parent / "examples"
EXAMPLE = EXAMPLES / "web-backend"
FUNCTIONS = {
    "list-notes": ("notes:list_notes", "GET", "/notes"),
    "create-note": ("notes:create_note", "POST", "/notes"),
    "get-note": ("notes:get_note", "GET", "/notes/{id}"),
    "update-note": ("notes:update_note", "PUT", "/notes/{id}"),
    "delete-note": ("notes:delete_note", "DELETE", "/notes/{id}"),
    "health": ("notes:health", "GET", "/health"),
}

Launch = Callable[..., Platform]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A private copy of the example, without anything a local run may have left in it."""
    target = tmp_path / "web-backend"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "notes.db*"))
    return target


def titles(platform: Platform, query: str = "") -> list[str]:
    response = platform.http.get(f"/notes{query}")
    assert response.status_code == 200, response.text
    return [note["title"] for note in response.json()["notes"]]


def create(platform: Platform, body: dict[str, Any]) -> dict[str, Any]:
    response = platform.http.post("/notes", json=body)
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/notes/{note['id']}"
    return note


def test_every_route_over_http(launch: Launch, app_dir: Path) -> None:
    platform = launch(app_dir, "--no-reload")
    http = platform.http

    assert http.get("/health").json() == {"status": "ok", "notes": 0}
    assert titles(platform) == []

    milk = create(platform, {"title": "  buy milk  "})
    assert milk["title"] == "buy milk"
    assert milk["done"] is False
    assert isinstance(milk["id"], int)
    bread = create(platform, {"title": "bake bread", "done": True})
    assert bread["done"] is True
    assert bread["id"] != milk["id"]

    # Every route is a separate function, hence separate processes: what one wrote the others
    # read from the shared database.
    assert titles(platform) == ["buy milk", "bake bread"]
    assert titles(platform, "?done=true") == ["bake bread"]
    assert titles(platform, "?done=false") == ["buy milk"]
    assert http.get(f"/notes/{milk['id']}").json() == milk

    updated = http.put(f"/notes/{milk['id']}", json={"done": True})
    assert updated.status_code == 200, updated.text
    assert updated.json() == {**milk, "done": True, "updated_at": updated.json()["updated_at"]}
    renamed = http.put(f"/notes/{milk['id']}", json={"title": "buy oat milk", "done": False})
    assert renamed.json()["title"] == "buy oat milk"
    assert renamed.json()["done"] is False
    assert http.get(f"/notes/{milk['id']}").json() == renamed.json()
    assert titles(platform, "?done=false") == ["buy oat milk"]

    deleted = http.delete(f"/notes/{milk['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert http.get(f"/notes/{milk['id']}").status_code == 404
    assert http.delete(f"/notes/{milk['id']}").status_code == 404
    assert titles(platform) == ["bake bread"]
    assert http.get("/health").json() == {"status": "ok", "notes": 1}

    functions = platform.functions()
    assert set(functions) == set(FUNCTIONS)
    for name, (handler, method, path) in FUNCTIONS.items():
        assert functions[name]["handler"] == handler
        assert functions[name]["triggers"] == [{"type": "http", "method": method, "path": path}]
        assert functions[name]["cold_starts"] >= 1, f"{name} never ran"


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    (b"{}", "'title'"),
    (b'{"title": ""}', "'title'"),
    (b'{"title": "   "}', "'title'"),
    (b'{"title": 7}', "'title'"),
    (b'{"title": "x", "done": "yes"}', "'done'"),
    (b'{"title": "x", "colour": "red"}', "unknown fields: colour"),
]


def test_create_rejects_bad_bodies(launch: Launch, app_dir: Path) -> None:
    platform = launch(app_dir, "--no-reload")
    for body, message in BAD_BODIES:
        response = platform.http.post(
            "/notes", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.text)
    assert titles(platform) == []


def test_errors(launch: Launch, app_dir: Path) -> None:
    platform = launch(app_dir, "--no-reload")
    http = platform.http
    note = create(platform, {"title": "keep me"})
    url = f"/notes/{note['id']}"

    missing = http.get("/notes/999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no note 999"}
    for odd in ("abc", "-1", "1.5", "%C2%B2", "9" * 30):  # not an id, yet no server error
        assert http.get(f"/notes/{odd}").status_code == 404, odd
    assert http.put("/notes/999", json={"done": True}).status_code == 404
    assert http.delete("/notes/999").status_code == 404

    assert http.put(url, content=b"{oops").status_code == 400
    assert http.put(url, json={}).status_code == 400
    assert http.put(url, json={"title": ""}).status_code == 400
    assert http.put(url, json={"done": 1}).status_code == 400
    assert http.get("/notes", params={"done": "maybe"}).status_code == 400

    wrong = http.patch(url, json={"done": True})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert http.post("/health").status_code == 405
    assert http.delete("/notes").status_code == 405
    assert http.get("/nowhere").status_code == 404

    # None of the refused requests changed the note.
    assert http.get(url).json() == note


def test_notes_persist_in_the_database_the_manifest_names(
    launch: Launch, app_dir: Path, tmp_path: Path
) -> None:
    database = tmp_path / "state" / "notes.db"
    manifest = app_dir / "nimbus.yaml"
    text = manifest.read_text()
    assert "NOTES_DB: notes.db" in text
    manifest.write_text(text.replace("NOTES_DB: notes.db", f"NOTES_DB: {database}"))

    first = launch(app_dir, "--no-reload")
    note = create(first, {"title": "survive a restart"})
    first.stop()

    second = launch(app_dir, "--no-reload")
    assert second.http.get(f"/notes/{note['id']}").json() == note
    assert titles(second) == ["survive a restart"]
    assert database.is_file()
    assert not list(app_dir.glob("notes.db*"))


def test_spec_prints_the_functions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nimbus", "spec", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)
    assert spec["name"] == "notes"
    assert Path(spec["root"]) == EXAMPLE.resolve()
    assert set(spec["functions"]) == set(FUNCTIONS)
    for name, (handler, method, path) in FUNCTIONS.items():
        function = spec["functions"][name]
        assert function["name"] == name
        assert function["handler"] == handler
        assert function["triggers"] == [{"type": "http", "method": method, "path": path}]
        assert function["environment"] == {"NOTES_DB": "notes.db"}
        assert function["memory_mb"] == 128  # defaults are filled in
    assert spec["functions"]["health"]["timeout"] == 1.0
    assert spec["functions"]["list-notes"]["timeout"] == 3.0
