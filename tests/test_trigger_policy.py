"""How the one failure policy reads for each kind of source."""

from __future__ import annotations

from math import inf

import nimbus
from nimbus.services.patterns import compile_pattern
from nimbus.services.topic import TopicEvent
from nimbus.spec.model import FailurePolicy
from nimbus.triggers.base import ORDERED_BACKOFF, first_backoff, polled_age_limit
from nimbus.triggers.topic import matches


def test_polled_sources_have_no_age_limit_unless_the_policy_sets_one() -> None:
    """Like Lambda's SQS and Kinesis mappings: a backlog older than 6 hours is not given up
    by default (the queue's or stream's retention bounds it)."""
    assert polled_age_limit(FailurePolicy()) == inf
    assert polled_age_limit(FailurePolicy(max_event_age=600)) == 600


def test_an_ordered_source_retries_soon_unless_the_policy_sets_a_backoff() -> None:
    """A stream partition waits while its batch is retried: a minute's default would hold it."""
    assert first_backoff(FailurePolicy(), ordered=True) == ORDERED_BACKOFF
    assert first_backoff(FailurePolicy(), ordered=False) == 60.0
    assert first_backoff(FailurePolicy(backoff=7), ordered=True) == 7.0


def test_an_event_without_source_matches_as_delivered_with_its_topics() -> None:
    event = TopicEvent(sequence=1, id="e1", time=0.0, type="t", source="", data=b"1")
    pattern = compile_pattern({"source": ["nimbus:topic:orders"]})
    assert matches(pattern, "orders", event)
    assert not matches(pattern, "other", event)


app = nimbus.App("bisect")
clicks = app.stream("clicks")
customers = app.table("customers", key="id")


@app.on_stream(clicks, bisect_on_error=False)
def on_clicks(batch: nimbus.StreamBatch) -> None: ...


@app.on_table(customers, bisect_on_error=False)
def on_customers(batch: nimbus.TableBatch) -> None: ...


def test_stream_and_table_triggers_take_bisect_on_error() -> None:
    functions = app.spec("/app").functions
    for name in ("on_clicks", "on_customers"):
        (trigger,) = functions[name].triggers
        assert getattr(trigger, "bisect_on_error", None) is False, name
