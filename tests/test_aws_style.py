"""Existing AWS Lambda handlers run unchanged on nimbus with `style="aws"`: each gets its
source's event shaped as AWS documents it and a Lambda-like context, and what it returns is
read as Lambda reads it (`batchItemFailures`, API Gateway HTTP API v2 responses)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from test_triggers import Harness, Record, send, start_harness


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("aws")
    running = start_harness("triggers_aws.py", folder / "data", folder / "out")
    yield running
    running.platform.stop()
    running.platform.assert_no_loop_errors()


def test_an_sqs_handler_gets_records_and_its_batch_item_failures_are_honoured(
    aws: Harness,
) -> None:
    aws.ok(
        send("orders", {"id": "o1"}, attributes={"tenant": "acme"}),
        send("orders", {"id": "o2", "fail_first": True}),
        send("orders", {"id": "o3"}),
    )

    def o2_retried(records: list[Record]) -> bool:
        return ("o2", 2) in {(r["id"], r["count"]) for r in records}

    records = aws.wait_records("sqs_handler", o2_retried, "the failed message's retry")
    aws.settled("orders")
    assert sorted((r["id"], r["count"]) for r in records) == [
        ("o1", 1), ("o2", 1), ("o2", 2), ("o3", 1),
    ]  # fmt: skip
    first = next(r for r in records if r["id"] == "o1")
    assert first["event_source"] == "aws:sqs"
    assert first["arn"].startswith("arn:aws:sqs:") and first["arn"].endswith(":orders")
    assert first["attributes"] == {
        "tenant": {
            "stringValue": "acme", "stringListValues": [], "binaryListValues": [],
            "dataType": "String",
        }
    }  # fmt: skip
    assert first["sent"].isdigit()
    retried = [r["message_id"] for r in records if r["id"] == "o2"]
    assert retried[0] == retried[1]  # the same message came back
    context = first["context"]
    assert context["function_name"] == "sqs_handler"
    assert context["aws_request_id"] and 0 < context["remaining"] <= 3000
    assert context["invoked_function_arn"].endswith(":function:sqs_handler")
    assert context["log_group_name"] == "/aws/lambda/sqs_handler"


def test_an_http_api_v2_handler_gets_the_request_and_shapes_the_response(aws: Harness) -> None:
    response = aws.platform.http.post(
        "/items/sku-9?color=red&size=L",
        json={"qty": 2},
        headers={"X-Test": "yes", "Cookie": "session=abc; theme=dark"},
    )
    assert response.status_code == 201
    assert response.headers["x-sku"] == "sku-9"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["set-cookie"] == "seen=1; Path=/"
    echo = response.json()
    assert echo["version"] == "2.0"
    assert echo["routeKey"] == "POST /items/{sku}"  # the declared route, not $default
    assert (echo["rawPath"], echo["rawQueryString"]) == ("/items/sku-9", "color=red&size=L")
    assert echo["queryStringParameters"] == {"color": "red", "size": "L"}
    assert echo["pathParameters"] == {"sku": "sku-9"}
    assert (echo["method"], echo["header"]) == ("POST", "yes")
    assert echo["cookies"] == ["session=abc", "theme=dark"]
    assert (echo["body"], echo["isBase64Encoded"]) == ({"qty": 2}, False)
    assert echo["aws_request_id"]

    logo = aws.platform.http.get("/logo")
    assert (logo.status_code, logo.content) == (200, b"\x89PNG\x00\x01")
    assert logo.headers["content-type"] == "image/png"
    plain = aws.platform.http.get("/plain")
    assert (plain.status_code, plain.json()) == (200, {"answer": 42})


def test_a_dynamodb_streams_handler_reads_keys_and_images(aws: Harness) -> None:
    table = {"table": "inventory"}
    aws.ok(
        {"op": "table_put", "item": {"sku": "s1", "qty": 5, "price": 1.5, "tags": ["a"]}, **table},
        {"op": "table_update", "key": {"sku": "s1"}, "set": {"qty": 4}, **table},
        {"op": "table_delete", "key": {"sku": "s1"}, **table},
    )
    records = aws.wait_records("dynamodb_handler", lambda rs: len(rs) >= 3, "three changes")
    assert [r["name"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert {r["event_source"] for r in records} == {"aws:dynamodb"}
    assert {r["view"] for r in records} == {"NEW_AND_OLD_IMAGES"}
    assert all(r["keys"] == {"sku": {"S": "s1"}} for r in records)
    inserted, modified, removed = records
    image = {
        "sku": {"S": "s1"},
        "qty": {"N": "5"},
        "price": {"N": "1.5"},
        "tags": {"L": [{"S": "a"}]},
    }
    assert (inserted["new"], inserted["old"]) == (image, None)
    assert (modified["old"], modified["new"]) == (image, {**image, "qty": {"N": "4"}})
    assert (removed["old"], removed["new"]) == ({**image, "qty": {"N": "4"}}, None)
    sequences = [int(r["sequence"]) for r in records]
    assert sequences == sorted(sequences)


def test_an_s3_handler_reads_bucket_and_url_encoded_key(aws: Harness) -> None:
    bucket = {"bucket": "docs"}
    aws.ok(
        {"op": "object_put", "key": "reports/q1 summary.txt", "data": "twelve bytes", **bucket},
        {"op": "object_delete", "key": "reports/q1 summary.txt", **bucket},
    )
    records = aws.wait_records("s3_handler", lambda rs: len(rs) >= 2, "two object events")
    by_name = {r["name"]: r for r in records}
    created = by_name["ObjectCreated:Put"]
    assert (created["bucket"], created["key"], created["size"]) == (
        "docs", "reports/q1 summary.txt", 12,
    )  # fmt: skip
    assert created["etag"] and '"' not in created["etag"]
    assert created["event_source"] == "aws:s3"
    removed = by_name["ObjectRemoved:Delete"]
    assert (removed["key"], removed["size"]) == ("reports/q1 summary.txt", None)


def test_kinesis_and_sns_handlers_read_their_records(aws: Harness) -> None:
    records = [{"key": "user-1", "data": {"n": 1}}, {"key": "user-1", "data": {"n": 2}}]
    alert = {"data": {"level": "high"}, "attributes": {"team": "ops"}}
    aws.ok(
        {"op": "put_records", "stream": "clicks", "records": records},
        {"op": "publish", "topic": "alerts", **alert},
    )
    seen = aws.wait_records("kinesis_handler", lambda rs: len(rs) >= 2, "two stream records")
    assert [(r["key"], r["data"]) for r in seen] == [("user-1", {"n": 1}), ("user-1", {"n": 2})]
    assert {r["event_source"] for r in seen} == {"aws:kinesis"}
    [notified] = aws.wait_records("sns_handler", bool, "the notification")
    assert notified["message"] == {"level": "high"}
    assert notified["attributes"] == {"team": {"Type": "String", "Value": "ops"}}
    assert notified["topic"].endswith(":alerts") and notified["event_source"] == "aws:sns"


def test_scheduled_handlers_get_eventbridge_events_or_their_constant_input(aws: Harness) -> None:
    [tick, *_] = aws.wait_records("scheduled_handler", bool, "a scheduled event")
    assert (tick["detail_type"], tick["source"], tick["detail"]) == (
        "Scheduled Event", "aws.events", {},
    )  # fmt: skip
    [rule] = tick["resources"]
    assert rule.startswith("arn:aws:events:") and rule.endswith(":rule/scheduled_handler")
    assert tick["time"].endswith("Z")
    [constant, *_] = aws.wait_records("constant_input_handler", bool, "a scheduled event")
    assert constant["event"] == {"job": "nightly"}


def test_a_direct_invocation_gets_the_event_as_sent_and_a_lambda_context(aws: Harness) -> None:
    record = aws.platform.invoke("whoami", {"hello": ["world"]})
    result = record["result"]
    assert result["event"] == {"hello": ["world"]}
    assert result["aws_request_id"] == record["id"]
    assert result["function_name"] == "whoami"
    assert result["memory_limit_in_mb"] == "256"
    assert 0 < result["remaining"] <= 7000
    assert result["invoked_function_arn"].endswith(":function:whoami")
    assert result["function_version"] == "$LATEST"
    assert "[$LATEST]" in result["log_stream_name"]
