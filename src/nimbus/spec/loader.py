"""Finds an app from a path the user gives: a .py file with an App, a nimbus.yaml, or a folder."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from nimbus.compute import handlers
from nimbus.errors import SpecError
from nimbus.spec.app import App
from nimbus.spec.errors import Location
from nimbus.spec.manifest import load_manifest
from nimbus.spec.model import AppSpec, FunctionSpec

MANIFEST_NAMES = ("nimbus.yaml", "nimbus.yml")
_IMPORT_MACHINERY = (
    str(Path(__file__).parent) + os.sep,
    os.path.dirname(importlib.__file__) + os.sep,
    "<frozen ",
)
"""Where the frames of nimbus.spec and of importlib come from: not the user's code."""


def resolve_target(target: str) -> Path:
    """The file that defines the app named by `target` (a file or a folder holding one)."""
    path = Path(target).resolve()
    if path.is_dir():
        for name in (*MANIFEST_NAMES, "app.py"):
            if (path / name).is_file():
                return path / name
        raise SpecError(f"{target}: no nimbus.yaml or app.py in this folder")
    if not path.is_file():
        raise SpecError(f"{target}: no such file or folder")
    if path.suffix not in (".py", ".yaml", ".yml"):
        raise SpecError(f"{target}: expected a .py file or a nimbus.yaml")
    return path


def load_app(target: str) -> AppSpec:
    """Load and validate the app at `target`. Imports user code: never call in the controller.
    What that code prints meanwhile goes to stderr: it is not the spec."""
    path = resolve_target(target)
    with contextlib.redirect_stdout(sys.stderr):
        if path.suffix in (".yaml", ".yml"):
            return load_manifest(path, check=_check_handlers)
        return _load_module_app(path)


def _load_module_app(path: Path) -> AppSpec:
    root = str(path.parent)
    _importable(root)
    try:
        module = _import(path.stem)
    except _ImportFailed as failed:
        raise SpecError(
            f"{failed.where or path}: importing the app failed: {failed.problem}"
        ) from None
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        found = "no nimbus.App" if not apps else f"{len(apps)} nimbus.App objects"
        raise SpecError(f"{path}: expected one nimbus.App at module level, found {found}")
    return apps[0].spec(root)


def _check_handlers(spec: AppSpec) -> list[tuple[Location, str]]:
    """Import each handler as its instances will, so that code that cannot run is refused
    now, not at every invocation. A module that fails is named once, at its first function."""
    _importable(spec.root)
    problems: list[tuple[Location, str]] = []
    broken: set[str] = set()
    for key, function in spec.functions.items():
        module = function.handler.partition(":")[0]
        if module in broken:
            continue
        field: Location = ("functions", key, "handler")
        try:
            with _as_instance(spec.root, function):
                _import(module)
                handler = handlers.load_handler(function.handler)
        except _ImportFailed as failed:
            broken.add(module)
            at = f"{failed.where}: " if failed.where else ""
            problems.append((field, f"importing {module} failed: {at}{failed.problem}"))
            continue
        except SpecError:
            raise
        except Exception as error:  # no such attribute, not callable
            problems.append((field, f"{type(error).__name__}: {error}"))
            continue
        if not handlers.concurrency_allowed(handler, function.concurrency):
            problems.append((("functions", key, "concurrency"), handlers.SYNC_CONCURRENCY))
    return problems


@contextlib.contextmanager
def _as_instance(root: str, function: FunctionSpec) -> Iterator[None]:
    """Import as the function's instances do, in the app's folder with the function's
    environment (a module may read either at import); both are put back after."""
    added = handlers.instance_environment(function.name, function.memory_mb, function.environment)
    saved = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    try:
        with contextlib.chdir(root):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _importable(root: str) -> None:
    if root not in sys.path:
        sys.path.insert(0, root)


class _ImportFailed(Exception):
    """User code raised while it was imported: where in it (None: before any of it ran)."""

    def __init__(self, where: str | None, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def _import(name: str) -> ModuleType:
    """Import user code; a failure names its line in that code, never an importlib frame
    (a syntax error's traceback ends in importlib, which read the file: it has its own line)."""
    try:
        return importlib.import_module(name)
    except SpecError:
        raise
    except SyntaxError as error:
        where = f"{error.filename}:{error.lineno}" if error.filename else None
        raise _ImportFailed(where, f"{type(error).__name__}: {error.msg}") from None
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if not f.filename.startswith(_IMPORT_MACHINERY)]
        where = f"{user[-1].filename}:{user[-1].lineno}" if user else None
        raise _ImportFailed(where, f"{type(error).__name__}: {error}") from None
