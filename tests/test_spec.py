"""The declarative model: decorators and nimbus.yaml give the same validated spec; bad input is
refused with file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

import nimbus
from nimbus.errors import SpecError
from nimbus.spec.loader import load_app
from nimbus.spec.manifest import load_manifest
from nimbus.spec.model import AppSpec, FunctionSpec, HttpTrigger
from nimbus.spec.plan import make_plan

DECORATED = """
import nimbus

app = nimbus.App("shop")


@app.http("POST", "/orders", timeout=10, memory_mb=256)
def create_order(request):
    return {"ok": True}


@app.function(max_instances=3, environment={"TIER": "gold"}, preload=True)
def audit(event, context):
    return None
"""

MANIFEST = """
name: shop
functions:
  create_order:
    handler: app:create_order
    timeout: 10
    memory_mb: 256
    triggers:
      - {type: http, method: POST, path: /orders}
  audit:
    handler: app:audit
    max_instances: 3
    environment: {TIER: gold}
    preload: true
"""


def handler(event: object) -> int:
    return 7


async def async_handler(event: object) -> None: ...


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_decorators_and_manifest_produce_the_same_spec(tmp_path: Path) -> None:
    write(tmp_path, "app.py", DECORATED)
    manifest = write(tmp_path, "nimbus.yaml", MANIFEST)
    from_decorators = load_app(str(tmp_path / "app.py"))
    from_manifest = load_manifest(manifest)
    assert from_decorators == from_manifest
    assert from_decorators.functions["create_order"].triggers == (
        HttpTrigger(method="POST", path="/orders"),
    )
    assert from_decorators.functions["audit"].environment == {"TIER": "gold"}


def test_defaults_follow_lambda() -> None:
    spec = FunctionSpec(name="f", handler="m:f")
    assert (spec.timeout, spec.memory_mb, spec.concurrency) == (3.0, 128, 1)
    assert spec.failure.retries == 2


def test_decorator_returns_the_handler_unchanged() -> None:
    app = nimbus.App("t")
    assert app.function()(handler) is handler
    assert handler(None) == 7
    assert app.spec("/x").functions["handler"].handler == f"{__name__}:handler"


def test_decorator_error_names_file_line_and_field() -> None:
    app = nimbus.App("t")
    with pytest.raises(SpecError) as caught:
        app.function(timeout=-1)(handler)
    message = caught.value.message
    assert f"{__file__}:{handler.__code__.co_firstlineno}:" in message
    assert "timeout" in message
    assert "greater than 0" in message
    assert app.spec("/x").functions == {}  # nothing half-registered


def test_decorator_refuses_unknown_option() -> None:
    app = nimbus.App("t")
    with pytest.raises(SpecError, match="tiemout: unknown field"):
        app.function(tiemout=3)(handler)  # type: ignore[call-arg]


def test_handlers_must_be_importable() -> None:
    app = nimbus.App("t")
    with pytest.raises(SpecError, match="module level"):
        app.function()(lambda event: event)


def test_concurrency_needs_an_async_handler() -> None:
    app = nimbus.App("t")
    with pytest.raises(SpecError, match="async def"):
        app.function(concurrency=4)(handler)
    app.function(concurrency=4)(async_handler)
    assert app.spec("/x").functions["async_handler"].concurrency == 4


def test_stacked_decorators_give_one_function_with_both_routes() -> None:
    app = nimbus.App("t")
    app.http("GET", "/a")(handler)
    app.http("POST", "/a", timeout=5)(handler)
    function = app.spec("/x").functions["handler"]
    assert [(t.method, t.path) for t in function.triggers] == [("GET", "/a"), ("POST", "/a")]
    assert function.timeout == 5
    with pytest.raises(SpecError, match="timeout set twice"):
        app.http("PUT", "/a", timeout=6)(handler)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("orders", "must start with '/'"),
        ("/_nimbus/x", "reserved"),
        ("/a/{1x}", "Python identifier"),
        ("/a/{x}/{x}", "appears twice"),
        ("/a/{x", "unbalanced"),
    ],
)
def test_bad_paths_are_refused(path: str, problem: str) -> None:
    app = nimbus.App("t")
    with pytest.raises(SpecError, match=problem):
        app.http("GET", path)(handler)


def test_conflicting_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        AppSpec(
            name="t",
            root="/",
            functions={
                "a": FunctionSpec(
                    name="a", handler="m:a", triggers=(HttpTrigger(method="GET", path="/x/{id}"),)
                ),
                "b": FunctionSpec(
                    name="b", handler="m:b", triggers=(HttpTrigger(method="GET", path="/x/{key}"),)
                ),
            },
        )


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ValueError, match="min_instances"):
        FunctionSpec(name="f", handler="m:f", min_instances=5, max_instances=2)


@pytest.mark.parametrize(
    ("body", "line", "field", "problem"),
    [
        (
            """
            name: shop
            functions:
              create_order:
                handler: app:create_order
                tiemout: 10
            """,
            6,
            "functions.create_order.tiemout",
            "unknown field",
        ),
        (
            """
            name: shop
            functions:
              create_order:
                handler: app:create_order
                triggers:
                  - type: http
                    method: FETCH
                    path: /orders
            """,
            8,
            "method",
            "GET",
        ),
        (
            """
            name: shop
            functions:
              create_order:
                handler: app:create_order
                memory_mb: lots
            """,
            6,
            "functions.create_order.memory_mb",
            "integer",
        ),
        (
            """
            name: "bad name!"
            """,
            2,
            "name",
            "pattern",
        ),
    ],
)
def test_manifest_errors_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, problem: str
) -> None:
    manifest = write(tmp_path, "nimbus.yaml", body)
    with pytest.raises(SpecError) as caught:
        load_manifest(manifest)
    message = caught.value.message
    assert f"{manifest}:{line}:" in message
    assert field in message
    assert problem in message


def test_manifest_refuses_duplicate_keys_and_bad_yaml(tmp_path: Path) -> None:
    duplicated = write(tmp_path, "a.yaml", "name: a\nname: b\n")
    with pytest.raises(SpecError, match=r"a.yaml:2: duplicate key 'name'"):
        load_manifest(duplicated)
    broken = write(tmp_path, "b.yaml", "name: [unclosed\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_manifest(broken)


def test_app_module_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "broken_app.py", "import nimbus\napp = nimbus.App('x')\n1 / 0\n")
    with pytest.raises(
        SpecError, match=r"broken_app.py:3: importing the app failed: ZeroDivisionError"
    ):
        load_app(str(tmp_path / "broken_app.py"))


def test_plan_lists_additions_changes_and_removals() -> None:
    def spec(**functions: FunctionSpec) -> AppSpec:
        return AppSpec(name="shop", root="/app", functions=functions)

    a = FunctionSpec(name="a", handler="m:a")
    b = FunctionSpec(name="b", handler="m:b")
    c = FunctionSpec(name="c", handler="m:c")
    current = spec(a=a, b=b)
    desired = spec(a=a.model_copy(update={"timeout": 9.0}), c=c)
    plan = make_plan(current, desired)
    assert plan.add == ["c"]
    assert plan.remove == ["b"]
    assert [(ch.name, [(f.field, f.old, f.new) for f in ch.fields]) for ch in plan.change] == [
        ("a", [("timeout", 3.0, 9.0)])
    ]
    assert make_plan(desired, desired).empty
    assert make_plan(None, desired).add == ["a", "c"]


def test_plan_lists_resources_by_kind_apart_from_app_settings() -> None:
    current = AppSpec.model_validate(
        {"name": "shop", "root": "/app", "queues": {"orders": {"name": "orders"}},
         "tables": {"old": {"name": "old", "key": "id"}}}
    )  # fmt: skip
    desired = AppSpec.model_validate(
        {"name": "shop", "root": "/app",
         "queues": {"orders": {"name": "orders", "visibility_timeout": 60}},
         "topics": {"news": {"name": "news"}}}
    )  # fmt: skip
    plan = make_plan(current, desired)
    assert plan.app == []
    assert plan.add_resources == ["topic news"]
    assert plan.remove_resources == ["table old"]
    assert [
        (c.name, [(f.field, f.old, f.new) for f in c.fields]) for c in plan.change_resources
    ] == [("queue orders", [("visibility_timeout", 30.0, 60.0)])]
    assert make_plan(None, desired).add_resources == ["queue orders", "topic news"]
    assert make_plan(desired, desired).empty


def test_spec_refuses_dangling_references_and_duplicate_names() -> None:
    base = {"name": "shop", "root": "/app", "queues": {"orders": {"name": "orders"}}}
    cases = [
        ({"functions": {"f": {"name": "f", "handler": "m:f", "uses": ["nope"]}}}, "'nope'"),
        (
            {"functions": {"f": {"name": "f", "handler": "m:f",
                                 "triggers": [{"type": "queue", "queue": "missing"}]}}},
            "not a declared queue",
        ),
        ({"topics": {"orders": {"name": "orders"}}}, "both named 'orders'"),
        ({"queues": {"orders": {"name": "orders", "max_receives": 2, "dead_letter": "dlq"}}},
         "'dlq' is not a queue"),
        (
            {"functions": {"f": {"name": "f", "handler": "m:f",
                                 "failure": {"on_failure": "nowhere"}}}},
            "not a queue, topic or function",
        ),
        (
            {"topics": {"t": {"name": "t", "subscriptions": [
                {"queue": "orders", "pattern": {"a": [{"numeric": [">"]}]}}]}}},
            "numeric",
        ),
        (
            {"topics": {"t": {"name": "t", "subscriptions": [
                {"queue": "orders", "pattern": {"a": ["x"]}},
                {"queue": "orders", "pattern": {"a": ["y"]}}]}}},
            "subscribed twice",
        ),
    ]  # fmt: skip
    for extra, message in cases:
        with pytest.raises(ValidationError, match=message):
            AppSpec.model_validate({**base, **extra})


def test_manifest_merge_keys_share_settings(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "nimbus.yaml",
        """
        name: shop
        x-defaults: &defaults
          timeout: 9
          environment: {DB: shop.db}
        functions:
          a:
            <<: *defaults
            handler: m:a
          b:
            <<: *defaults
            handler: m:b
            timeout: 2
        """,
    )
    spec = load_manifest(manifest)  # top-level x- keys are extension fields, kept out of the spec
    assert (spec.functions["a"].timeout, spec.functions["b"].timeout) == (9, 2)
    assert spec.functions["b"].environment == {"DB": "shop.db"}
    text = manifest.read_text().replace("x-defaults: &defaults", "defaults: &defaults")
    manifest.write_text(text)
    with pytest.raises(SpecError, match=r"nimbus.yaml:3: defaults: unknown field"):
        load_manifest(manifest)


def test_manifest_merge_keys_inside_functions(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "nimbus.yaml",
        """
        name: shop
        functions:
          a: &base
            handler: m:a
            timeout: 9
            environment: {DB: shop.db}
          b:
            <<: *base
            handler: m:b
            timeout: 2
            memory_mb: 1
        """,
    )
    with pytest.raises(SpecError) as caught:
        load_manifest(manifest)
    assert f"{manifest}:12: functions.b.memory_mb" in caught.value.message
    manifest.write_text(manifest.read_text().replace("    memory_mb: 1\n", ""))
    spec = load_manifest(manifest)
    assert (spec.functions["b"].handler, spec.functions["b"].timeout) == ("m:b", 2)
    assert spec.functions["b"].environment == {"DB": "shop.db"}
    assert spec.functions["a"].timeout == 9


def test_manifest_refuses_alias_cycles_and_alias_bombs(tmp_path: Path) -> None:
    cycle = write(tmp_path, "cycle.yaml", "name: a\nfunctions: &loop\n  f: *loop\n")
    with pytest.raises(SpecError, match="an alias refers to itself"):
        load_manifest(cycle)
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    bomb = write(tmp_path, "bomb.yaml", "name: a\n" + "\n".join(levels) + "\n")
    with pytest.raises(SpecError, match="too many values"):
        load_manifest(bomb)


def test_nul_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        FunctionSpec(name="f", handler="m:f", environment={"A": "x\x00y"})
    with pytest.raises(ValueError, match="root"):
        AppSpec(name="a", root="/tmp\x00/x")
