"""Finds an app from a path the user gives: a .py file with an App, a nimbus.yaml, or a folder."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from nimbus.errors import SpecError
from nimbus.spec.app import App
from nimbus.spec.manifest import load_manifest
from nimbus.spec.model import AppSpec

MANIFEST_NAMES = ("nimbus.yaml", "nimbus.yml")


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
    """Load and validate the app at `target`. Imports user code: never call in the controller."""
    path = resolve_target(target)
    if path.suffix in (".yaml", ".yml"):
        return load_manifest(path)
    return _load_module_app(path)


def _load_module_app(path: Path) -> AppSpec:
    root = str(path.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(path.stem)
    except SpecError:
        raise
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if not f.filename.startswith(str(Path(__file__).parent))]
        where = f"{user[-1].filename}:{user[-1].lineno}" if user else str(path)
        raise SpecError(
            f"{where}: importing the app failed: {type(error).__name__}: {error}"
        ) from None
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        found = "no nimbus.App" if not apps else f"{len(apps)} nimbus.App objects"
        raise SpecError(f"{path}: expected one nimbus.App at module level, found {found}")
    return apps[0].spec(root)
