"""Platform events and the platform-control handle, on the real platform.

The subscribers of tests/apps/platform_events_app.py write each platform event they get to
files; the tests wait for those records (generous limits, never a timing assertion). Where a
test must show that something was *not* published, it waits for a later event (a sentinel):
platform events are published in the order they happen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimbus
from conftest import APPS, Platform, start_platform
from nimbus.ops.bursts import Bursts
from nimbus.ops.runtime_settings import RuntimeSettings, Setting
from nimbus.ops.store import Store
from nimbus.spec.manifest import load_manifest
from nimbus.spec.model import AppSpec

Record = dict[str, Any]
Launch = Callable[..., Platform]


class Harness:
    """A running platform and the folder its subscribers write to."""

    def __init__(self, platform: Platform, out: Path) -> None:
        self.platform = platform
        self.out = out

    def records(self, function: str) -> list[Record]:
        path = self.out / f"{function}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().split("\n")[:-1]]

    def events(self, event_type: str | None = None, **data: Any) -> list[Record]:
        """What the catch-all subscriber got, of `event_type`, whose data has these fields."""
        return [
            event
            for event in self.records("everything")
            if event_type in (None, event["type"])
            and all(event["data"].get(key) == value for key, value in data.items())
        ]

    def wait_events(self, event_type: str, what: str, count: int = 1, **data: Any) -> list[Record]:
        found: list[Record] = self.platform.wait_for(
            lambda: (events := self.events(event_type, **data)) and len(events) >= count and events,
            what,
        )
        return found

    def operate(self, **call: Any) -> Any:
        """A `nimbus.PLATFORM` call made by a function: {"ok": ...} or {"error": ...}."""
        record = self.platform.invoke("operate", call)
        assert record["outcome"] == "success", record
        return record["result"]

    def sentinel(self, tag: str) -> None:
        """Publish a platform event after everything that happened before, and wait for it."""
        assert "ok" in self.operate(op="tag", name="boom", tags={"sentinel": tag})
        self.wait_events("nimbus.function.updated", f"sentinel {tag}", function="boom")
        self.platform.wait_for(
            lambda: any(
                change["new"] == tag
                for event in self.events("nimbus.function.updated", function="boom")
                for change in event["data"]["changes"]
            ),
            f"sentinel {tag}",
        )


def start(app: Path | str, data_dir: Path, out: Path) -> Harness:
    out.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIMBUS_TEST_OUT", str(out))
        platform = start_platform(app, data_dir, "--no-reload")
    return Harness(platform, out)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("platform-events")
    running = start(APPS / "platform_events_app.py", folder / "data", folder / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


# what a deploy tells


def test_the_first_deploy_announces_every_function_and_resource(harness: Harness) -> None:
    spec = harness.platform.http.get("/_nimbus/spec").json()
    for name in spec["functions"]:
        harness.wait_events("nimbus.function.deployed", f"{name} deployed", function=name)
    [boom] = harness.events("nimbus.function.deployed", function="boom")
    assert boom["source"] == "nimbus.function"
    assert boom["subject"] == "nimbus:function:boom"
    assert boom["data"] == {
        "function": "boom", "owner": "boom-team", "tags": {"cost-center": "cc-1"},
        "handler": "platform_events_app:boom", "triggers": [], "max_instances": 10,
    }  # fmt: skip
    [slow] = harness.events("nimbus.function.deployed", function="slow")
    assert slow["data"]["triggers"] == ["GET /slow"] and slow["data"]["max_instances"] == 1
    [poison] = harness.wait_events("nimbus.resource.created", "queue created", resource="poison")
    assert poison["source"] == "nimbus.resource" and poison["subject"] == "nimbus:queue:poison"
    assert poison["data"] == {
        "resource": "poison", "kind": "queue", "owner": "queue-team", "tags": {"tier": "gold"}
    }  # fmt: skip
    [audit] = harness.wait_events("nimbus.resource.created", "table created", resource="audit")
    assert audit["data"]["kind"] == "table" and audit["data"]["owner"] == "data-team"
    created = {event["data"]["resource"] for event in harness.events("nimbus.resource.created")}
    assert created == {"poison", "audit"}  # the system topic is the platform's, not the app's


# failures


def test_each_kind_of_failed_invocation_is_an_event(harness: Harness) -> None:
    ids = {}
    for function, kind in (("boom", "Handler"), ("sleepy", "Timeout"), ("crash", "Crash")):
        record = harness.platform.invoke(function, {"n": 1})
        assert record["outcome"] != "success"
        ids[function] = record["id"]
        [event] = harness.wait_events(
            "nimbus.invocation.failed", f"{function} failed", function=function, kind=kind
        )
        assert event["source"] == "nimbus.invocation"
        assert event["subject"] == f"nimbus:function:{function}"
        assert event["data"]["request_id"] == record["id"]
        assert event["data"]["trigger"] == "invoke"
        assert event["data"]["count"] == 1
    [boom] = harness.events("nimbus.invocation.failed", function="boom", request_id=ids["boom"])
    assert boom["data"]["error_type"] == "ValueError"
    assert boom["data"]["error_message"] == "boom: {'n': 1}"
    assert boom["data"]["owner"] == "boom-team"


def test_dead_letters_are_events_from_the_failure_policy_and_from_queues(
    harness: Harness,
) -> None:
    response = harness.platform.http.post(
        "/_nimbus/functions/boom/invoke", params={"mode": "async"}, json={"dead": 1}
    )
    assert response.status_code == 202, response.text
    [letter] = harness.wait_events(
        "nimbus.message.dead_lettered", "boom's dead letter", function="boom", source="async"
    )
    assert letter["source"] == "nimbus.message" and letter["subject"] == "nimbus:function:boom"
    assert letter["data"]["target"] is None  # the platform's dead letters
    assert letter["data"]["condition"] == "RetriesExhausted"
    assert letter["data"]["attempts"] == 1
    assert letter["data"]["error_message"] == "boom: {'dead': 1}"
    listed = harness.platform.cli_json("dlq", "ls", "boom")
    assert any(x["error"]["message"] == "boom: {'dead': 1}" for x in listed)

    sent = harness.operate(op="send", body="poisoned")["ok"]
    [moved] = harness.wait_events(
        "nimbus.message.dead_lettered", "the queue's redrive", message_id=sent
    )
    assert moved["subject"] == "nimbus:queue:poison"
    assert moved["data"]["source"] == "queue:poison"
    assert moved["data"]["function"] is None and moved["data"]["target"] is None
    assert moved["data"]["condition"] == "MaxReceives" and moved["data"]["attempts"] == 1
    assert "poisoned" in moved["data"]["error_message"]


def test_throttles_are_coalesced_and_every_one_is_counted(harness: Harness) -> None:
    """`slow` runs one instance: a crowd of concurrent requests is mostly refused, and the
    refusals arrive as a few events whose counts add up to all of them."""

    def call(_: int) -> int:
        with httpx.Client(base_url=harness.platform.url, timeout=60) as client:
            return client.get("/slow", params={"seconds": "1"}).status_code

    with ThreadPoolExecutor(24) as pool:
        statuses = Counter(pool.map(call, range(24)))
    assert set(statuses) <= {200, 429} and statuses[200] >= 1
    refused = statuses[429]
    assert refused >= 3, statuses

    def counted() -> int:
        return sum(e["data"]["count"] for e in harness.events("nimbus.function.throttled"))

    harness.platform.wait_for(lambda: counted() >= refused, "every throttle counted")
    harness.sentinel("throttles")  # a later window closing would come before this
    events = harness.events("nimbus.function.throttled")
    assert counted() == refused
    assert len(events) < refused
    assert {event["data"]["function"] for event in events} == {"slow"}
    assert all(event["data"]["max_instances"] == 1 for event in events)
    assert events[0]["data"]["count"] == 1  # the first of a burst is told at once
    assert events[0]["data"]["owner"] == "slow-team"


def test_a_failing_subscriber_of_platform_events_causes_no_events_about_itself(
    harness: Harness,
) -> None:
    """`failing_subscriber` fails on every failure event; were its own failures (and dead
    letters) published, it would get them and fail again, without end."""
    harness.platform.invoke("boom", {"loop": 1})
    harness.platform.wait_for(
        lambda: any(
            r["data"].get("error_message") == "boom: {'loop': 1}"
            for r in harness.records("failing_subscriber")
        ),
        "the subscriber to fail on boom's failure",
    )
    harness.platform.wait_for(
        lambda: harness.platform.cli_json("dlq", "ls", "failing_subscriber"),
        "the subscriber's dead letter",
    )
    harness.sentinel("loop")
    matching = {"nimbus.invocation.failed", "nimbus.message.dead_lettered"}
    heard = [e for e in harness.events() if e["type"] in matching]
    assert not [e for e in heard if e["data"].get("function") == "failing_subscriber"]
    harness.platform.wait_for(
        lambda: len(harness.records("failing_subscriber")) == len(heard),
        "the subscriber to have heard each failure once",
    )


def test_patterns_select_platform_events(harness: Harness) -> None:
    """`function_events` asks for function events about `boom` or `slow`: it gets each of
    those once (invocations run concurrently, so in any order) and nothing else."""
    harness.sentinel("patterns")

    def wanted() -> list[str]:
        return sorted(
            json.dumps(event, sort_keys=True)
            for event in harness.events()
            if event["type"].startswith("nimbus.function.")
            and event["data"]["function"] in ("boom", "slow")
        )

    def got() -> list[str]:
        return sorted(
            json.dumps(event, sort_keys=True) for event in harness.records("function_events")
        )

    harness.platform.wait_for(lambda: got() == wanted(), "the filtered subscriber's events")
    types = {json.loads(event)["type"] for event in got()}
    assert types >= {"nimbus.function.deployed", "nimbus.function.updated"}
    assert len(got()) < len(harness.events())


# nimbus.PLATFORM


def test_functions_describe_tag_and_untag_through_the_platform_handle(harness: Harness) -> None:
    described = harness.operate(op="describe", name="poison")["ok"]
    assert described == {
        "name": "poison", "kind": "queue", "owner": "queue-team", "tags": {"tier": "gold"},
        "max_instances": None, "min_instances": None, "runtime": {},
    }  # fmt: skip
    tagged = harness.operate(op="tag", name="audit", tags={"cost-center": "cc-7", "env": "test"})
    assert tagged["ok"]["tags"] == {"cost-center": "cc-7", "env": "test"}
    spec = harness.platform.http.get("/_nimbus/spec").json()
    assert spec["tables"]["audit"]["tags"] == {"cost-center": "cc-7", "env": "test"}
    untagged = harness.operate(op="untag", name="audit", keys=["env", "absent"])["ok"]
    assert untagged["tags"] == {"cost-center": "cc-7"}
    assert untagged["runtime"] == {"tags": {"cost-center": "cc-7"}}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"op": "tag", "name": "audit", "tags": {"nimbus:owner": "x"}}, "InvalidRequest"),
        ({"op": "tag", "name": "audit", "tags": {"bad\nkey": "x"}}, "InvalidRequest"),
        ({"op": "tag", "name": "nowhere", "tags": {"a": "b"}}, "NotFound"),
        ({"op": "scale", "name": "boom", "max_instances": 0}, "InvalidRequest"),
        ({"op": "scale", "name": "boom", "max_instances": 1001}, "InvalidRequest"),
        ({"op": "scale", "name": "boom", "max_instances": "many"}, "InvalidRequest"),
        ({"op": "scale", "name": "poison", "max_instances": 2}, "InvalidRequest"),
        ({"op": "scale", "name": "nobody", "max_instances": 2}, "NotFound"),
        ({"op": "describe", "name": "nimbus-events"}, "NotFound"),
    ],
)
def test_bad_platform_calls_are_refused_and_change_nothing(
    harness: Harness, call: dict[str, Any], error: str
) -> None:
    before = harness.platform.http.get("/_nimbus/spec").json()
    answer = harness.operate(**call)
    assert answer["error"] == error, answer
    assert answer["message"]
    assert harness.platform.http.get("/_nimbus/spec").json() == before


def test_the_platform_handle_needs_uses(harness: Harness) -> None:
    answer = harness.platform.invoke("trespass")["result"]
    assert answer["error"] == "PermissionDenied"
    assert "nimbus-platform" in answer["message"]


def test_raising_max_instances_at_runtime_applies_at_once_and_is_an_event(
    harness: Harness,
) -> None:
    described = harness.operate(op="scale", name="boom", max_instances=4)["ok"]
    assert described["max_instances"] == 4 and described["runtime"]["max_instances"] == 4
    listed = harness.platform.functions()["boom"]
    assert listed["max_instances"] == 4 and listed["runtime"]["max_instances"] == 4
    change = {"field": "max_instances", "old": 10, "new": 4}
    harness.platform.wait_for(
        lambda: any(
            change in event["data"]["changes"]
            for event in harness.events("nimbus.function.updated", function="boom")
        ),
        "the scaling event",
    )
    table = harness.platform.cli("ls", check=True).stdout
    assert "<= 4 (set at runtime)" in table


# deploys, restarts and runtime settings, on platforms of their own

APP = """
import json, os
import nimbus

app = nimbus.App("automation-{version}")
{resources}


def record(event: nimbus.TopicEvent) -> None:
    line = json.dumps({{"type": event.type, "subject": event.subject, "data": event.data}})
    with open(os.environ["OUT"] + "/everything.jsonl", "a") as out:
        out.write(line + "\\n")


app.on_topic(nimbus.PLATFORM_EVENTS, name="everything", environment={{"OUT": {out!r}}})(record)


@app.function(max_instances={keep_max}, owner="keepers")
def keep(event: object) -> None: ...


@app.function(uses=[nimbus.PLATFORM])
def operate(event: dict) -> object:
    try:
        if event["op"] == "scale":
            return nimbus.PLATFORM.set_max_instances(event["name"], event["max_instances"]).runtime
        return nimbus.PLATFORM.tag(event["name"], event["tags"]).tags
    except nimbus.NimbusError as error:
        return {{"error": error.message}}
{functions}
"""
V1 = {
    "resources": 'app.queue("stays")\napp.queue("goes", owner="ops")',
    "functions": "\n@app.function(timeout=3)\ndef change_me(event: object) -> None: ...\n"
    "\n@app.function()\ndef drop_me(event: object) -> None: ...\n",
}
V2 = {
    "resources": 'app.queue("stays")\napp.bucket("fresh", tags={"env": "test"})',
    "functions": "\n@app.function(timeout=9)\ndef change_me(event: object) -> None: ...\n"
    "\n@app.function()\ndef new_one(event: object) -> None: ...\n",
}


def write_app(folder: Path, parts: dict[str, str], keep_max: int = 2) -> Path:
    (folder / "out").mkdir(parents=True, exist_ok=True)
    path = folder / "app.py"
    path.write_text(
        textwrap.dedent(APP).format(version=1, out=str(folder / "out"), keep_max=keep_max, **parts)
    )
    return path


def own_harness(launch: Launch, app: Path, data_dir: Path) -> Harness:
    return Harness(launch(app, "--no-reload", data_dir=data_dir), app.parent / "out")


def tag_sentinel(harness: Harness, tag: str) -> None:
    harness.platform.invoke("operate", {"op": "tag", "name": "keep", "tags": {"sentinel": tag}})
    harness.platform.wait_for(
        lambda: any(
            change["new"] == tag
            for event in harness.events("nimbus.function.updated", function="keep")
            for change in event["data"]["changes"]
        ),
        f"sentinel {tag}",
    )


def test_a_deploy_tells_what_it_changed_and_a_restart_tells_nothing(
    launch: Launch, tmp_path: Path
) -> None:
    app = write_app(tmp_path, V1)
    harness = own_harness(launch, app, tmp_path / "data")
    for name in ("keep", "operate", "change_me", "drop_me", "everything"):
        harness.wait_events("nimbus.function.deployed", f"{name} deployed", function=name)
    harness.wait_events("nimbus.resource.created", "queue goes", resource="goes")

    write_app(tmp_path, V2)
    harness.platform.cli("deploy", str(app), check=True)
    [updated] = harness.wait_events("nimbus.function.updated", "update", function="change_me")
    assert updated["data"]["changes"] == [{"field": "timeout", "old": 3.0, "new": 9.0}]
    harness.wait_events("nimbus.function.removed", "removal", function="drop_me")
    harness.wait_events("nimbus.function.deployed", "addition", function="new_one")
    [gone] = harness.wait_events("nimbus.resource.deleted", "queue goes", resource="goes")
    assert gone["subject"] == "nimbus:queue:goes" and gone["data"]["owner"] == "ops"
    [fresh] = harness.wait_events("nimbus.resource.created", "bucket fresh", resource="fresh")
    assert fresh["data"] == {"resource": "fresh", "kind": "bucket", "owner": None,
                             "tags": {"env": "test"}}  # fmt: skip

    told = len(harness.events())
    harness.platform.stop()
    harness = own_harness(launch, app, tmp_path / "data")
    tag_sentinel(harness, "after-restart")
    new = harness.events()[told:]
    assert [event["type"] for event in new] == ["nimbus.function.updated"], new


def test_a_runtime_max_instances_survives_restarts_until_a_deploy_declares_another(
    launch: Launch, tmp_path: Path
) -> None:
    app = write_app(tmp_path, V1, keep_max=2)
    harness = own_harness(launch, app, tmp_path / "data")
    answer = harness.platform.invoke("operate", {"op": "scale", "name": "keep", "max_instances": 6})
    assert answer["result"] == {"max_instances": 6}
    assert harness.platform.functions()["keep"]["max_instances"] == 6

    harness.platform.stop()
    harness = own_harness(launch, app, tmp_path / "data")
    keep = harness.platform.functions()["keep"]
    assert keep["max_instances"] == 6 and keep["runtime"] == {"max_instances": 6}
    assert harness.platform.cli("plan", str(app), check=True).stdout.strip() == "no changes"
    harness.platform.cli("deploy", str(app), check=True)  # the same declared value: kept
    assert harness.platform.functions()["keep"]["max_instances"] == 6

    write_app(tmp_path, V1, keep_max=3)  # the team decides: the deploy wins
    harness.platform.cli("deploy", str(app), check=True)
    keep = harness.platform.functions()["keep"]
    assert keep["max_instances"] == 3 and keep["runtime"] == {}
    harness.platform.stop()
    harness = own_harness(launch, app, tmp_path / "data")
    assert harness.platform.functions()["keep"]["max_instances"] == 3


SCHEDULED = """
import json, os
import nimbus

app = nimbus.App("scheduled")
OUT = {{"OUT": {out!r}}}


@app.on_topic(nimbus.PLATFORM_EVENTS, pattern={{"type": ["nimbus.schedule.missed"]}},
              environment=OUT)
def missed(event: nimbus.TopicEvent) -> None:
    with open(os.environ["OUT"] + "/missed.jsonl", "a") as out:
        out.write(json.dumps({{"subject": event.subject, "data": event.data}}) + "\\n")


@app.on_schedule("rate(1 second)", missed="once", environment=OUT)
def tick(event: nimbus.ScheduleTick) -> None:
    with open(os.environ["OUT"] + "/tick.jsonl", "a") as out:
        out.write(json.dumps(event.time) + "\\n")
"""


def test_ticks_missed_while_the_platform_was_down_are_an_event(
    launch: Launch, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(SCHEDULED).format(out=str(out)))
    platform = launch(app, "--no-reload", data_dir=tmp_path / "data")
    platform.wait_for((out / "tick.jsonl").exists, "a tick")
    platform.stop()
    stopped = time.time()
    platform.wait_for(lambda: time.time() > stopped + 3, "ticks to be missed")
    platform = launch(app, "--no-reload", data_dir=tmp_path / "data")
    platform.wait_for((out / "missed.jsonl").exists, "the missed-ticks event")
    event = json.loads((out / "missed.jsonl").read_text().split("\n")[0])
    assert event["subject"] == "nimbus:function:tick"
    data = event["data"]
    assert data["function"] == "tick" and data["schedule"] == "rate(1 second)"
    assert data["timezone"] == "UTC" and data["missed"] == "once"
    assert data["count"] >= 1 and data["last_fired"] is not None


# the rules, without a platform


@pytest.mark.parametrize("name", [nimbus.PLATFORM_EVENTS, "nimbus-platform"])
def test_an_app_cannot_declare_the_platforms_names(name: str, tmp_path: Path) -> None:
    app = nimbus.App("reserved")
    with pytest.raises(nimbus.SpecError, match="reserved for the platform"):
        app.topic(name)
    with pytest.raises(nimbus.SpecError, match="reserved for the platform"):
        app.queue(name)
    app.function(name=name)(handler)
    with pytest.raises(nimbus.SpecError, match="reserved for the platform"):
        app.spec(str(tmp_path))
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text(f"name: reserved\ntopics:\n  {name}:\n")
    with pytest.raises(nimbus.SpecError, match="reserved for the platform"):
        load_manifest(manifest)


def handler(event: object) -> None: ...


def test_platform_events_are_subscribed_to_and_never_published_by_functions(
    tmp_path: Path,
) -> None:
    app = nimbus.App("subscriber")
    app.on_topic(nimbus.PLATFORM_EVENTS, pattern={"type": [{"prefix": "nimbus."}]},
                 uses=[nimbus.PLATFORM])(handler)  # fmt: skip
    spec = app.spec(str(tmp_path))
    assert spec.functions["handler"].uses == ("nimbus-platform",)
    assert nimbus.PLATFORM_EVENTS not in spec.topics  # the platform's, in every app
    publisher = nimbus.App("publisher")
    publisher.function(uses=[nimbus.PLATFORM_EVENTS])(handler)
    with pytest.raises(nimbus.SpecError, match="only the platform publishes platform events"):
        publisher.spec(str(tmp_path))


@pytest.mark.parametrize(
    "tags",
    [{"nimbus:x": "1"}, {"": "1"}, {"a" * 129: "1"}, {"k": "v" * 257}, {"k": "line\nbreak"},
     {f"k{n}": "v" for n in range(51)}],
)  # fmt: skip
def test_tags_follow_the_aws_rules(tags: dict[str, str]) -> None:
    app = nimbus.App("tags")
    with pytest.raises(nimbus.SpecError, match="tags"):
        app.queue("q", tags=tags)
    with pytest.raises(nimbus.SpecError, match="tags"):
        app.function(tags=tags)(handler)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.floats(0, 30, allow_nan=False)), max_size=60).map(
        lambda occurrences: sorted(occurrences, key=lambda o: o[1])
    ),
    st.floats(0.5, 10),
)
def test_bursts_count_every_occurrence_once_in_few_reports(
    occurrences: list[tuple[str, float]], window: float
) -> None:
    """Drive Bursts as the platform does (a timer closes a key `window` after it opened or
    last reported): the reports add up to the occurrences, the first of a burst is told at
    once, and a key is told at most once per window."""
    bursts: Bursts[str, float] = Bursts()
    closing: dict[str, float] = {}  # key -> when its timer fires
    reports: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}

    def fire_timers(until: float) -> None:
        while due := [(at, key) for key, at in closing.items() if at <= until]:
            at, key = min(due)
            del closing[key]
            summary = bursts.close(key, at)
            if summary is not None:
                assert summary.since <= at and summary.latest <= at
                reports[key].append((at, summary.count))
                closing[key] = at + window

    for key, now in occurrences:
        fire_timers(now)
        if bursts.occur(key, now, now):
            reports[key].append((now, 1))
            closing[key] = now + window
    fire_timers(float("inf"))
    for key in "ab":
        times = [now for k, now in occurrences if k == key]
        told = reports[key]
        assert sum(count for _, count in told) == len(times)
        if times:
            assert told[0] == (times[0], 1)
        gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(told)]
        assert all(gap >= window * (1 - 1e-9) for gap in gaps)


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("deploy"), st.integers(1, 5)),
            st.tuples(st.just("runtime"), st.integers(1, 5)),
        ),
        max_size=12,
    )
)
def test_a_runtime_setting_holds_until_a_deploy_declares_a_new_value(
    steps: list[tuple[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The rule of nimbus.ops.runtime_settings against a model: the runtime value is in force
    from when it is set until a deploy declares a value other than the one it replaced; also
    after the store is opened again (a restart)."""

    def spec(declared: int) -> AppSpec:
        app = nimbus.App("model")
        app.function(max_instances=declared)(handler)
        return app.spec("/")

    async def run() -> None:
        store = Store(tmp_path_factory.mktemp("settings"))
        settings_ = RuntimeSettings(store.db)
        declared, expected = 3, 3
        runtime: tuple[int, int] | None = None  # (value, declared value it replaced)
        for step, value in steps:
            if step == "deploy":
                declared = value
                if runtime is not None and runtime[1] != declared:
                    runtime = None
            elif value == declared:
                runtime = None
                await settings_.forget([Setting("handler", "max_instances", value, declared)])
            else:
                runtime = (value, runtime[1] if runtime else declared)
                await settings_.put(Setting("handler", "max_instances", value, runtime[1]))
            expected = runtime[0] if runtime else declared
            effective, stale = settings_.effective(spec(declared))
            await settings_.forget(stale)
            assert effective.functions["handler"].max_instances == expected
        store.close()
        reopened = Store(store.db.path.parent)
        again, _ = RuntimeSettings(reopened.db).effective(spec(declared))
        assert again.functions["handler"].max_instances == expected
        reopened.close()

    asyncio.run(run())
