"""AWS Lambda handlers, written as for Lambda (only the decorators are nimbus's), declared with
`style="aws"` (tests/test_aws_style.py). Each records the fields AWS documents for its event
source; see triggers_common for where the records go."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote_plus

from triggers_common import ENV, record, run_ops

import nimbus

app = nimbus.App("aws")

orders = app.queue("orders", visibility_timeout=5)
inventory = app.table("inventory", key="sku")
docs = app.bucket("docs")
alerts = app.topic("alerts")
clicks = app.stream("clicks", partitions=1)

AWS: dict[str, Any] = {"style": "aws", "environment": ENV}


def context_fields(context: Any) -> dict[str, Any]:
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "function_version": context.function_version,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
    }


@app.on_queue(orders, failure=nimbus.FailurePolicy(retries=2, backoff=0.05), **AWS)
def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reports a message that asks for it as failed on its first delivery."""
    failures = []
    for item in event["Records"]:
        body = json.loads(item["body"])
        count = int(item["attributes"]["ApproximateReceiveCount"])
        record(
            "sqs_handler", id=body["id"], count=count, message_id=item["messageId"],
            event_source=item["eventSource"], arn=item["eventSourceARN"],
            attributes=item["messageAttributes"], sent=item["attributes"]["SentTimestamp"],
            context=context_fields(context),
        )  # fmt: skip
        if body.get("fail_first") and count == 1:
            failures.append({"itemIdentifier": item["messageId"]})
    return {"batchItemFailures": failures}


@app.http("POST", "/items/{sku}", **AWS)
def http_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    echo = {
        "version": event["version"],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "queryStringParameters": event.get("queryStringParameters"),
        "pathParameters": event.get("pathParameters"),
        "method": event["requestContext"]["http"]["method"],
        "header": event["headers"].get("x-test"),
        "cookies": event.get("cookies"),
        "body": json.loads(event["body"]),
        "isBase64Encoded": event["isBase64Encoded"],
        "aws_request_id": context.aws_request_id,
    }
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-sku": event["pathParameters"]["sku"]},
        "cookies": ["seen=1; Path=/"],
        "body": json.dumps(echo),
    }


@app.http("GET", "/logo", **AWS)
def binary_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "image/png"},
        "isBase64Encoded": True,
        "body": base64.b64encode(b"\x89PNG\x00\x01").decode(),
    }


@app.http("GET", "/plain", **AWS)
def plain_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"answer": 42}  # no statusCode: the whole value is a JSON body, status 200


@app.on_table(inventory, start="oldest", **AWS)
def dynamodb_handler(event: dict[str, Any], context: Any) -> None:
    for item in event["Records"]:
        change = item["dynamodb"]
        record(
            "dynamodb_handler", name=item["eventName"], event_source=item["eventSource"],
            keys=change["Keys"], new=change.get("NewImage"), old=change.get("OldImage"),
            sequence=change["SequenceNumber"], view=change["StreamViewType"],
        )  # fmt: skip


@app.on_bucket(docs, events=("created", "deleted"), **AWS)
def s3_handler(event: dict[str, Any], context: Any) -> None:
    for item in event["Records"]:
        s3 = item["s3"]
        record(
            "s3_handler", name=item["eventName"], event_source=item["eventSource"],
            bucket=s3["bucket"]["name"], key=unquote_plus(s3["object"]["key"]),
            size=s3["object"].get("size"), etag=s3["object"].get("eTag"),
        )  # fmt: skip


@app.on_stream(clicks, start="oldest", **AWS)
def kinesis_handler(event: dict[str, Any], context: Any) -> None:
    for item in event["Records"]:
        kinesis = item["kinesis"]
        record(
            "kinesis_handler", key=kinesis["partitionKey"], sequence=kinesis["sequenceNumber"],
            data=json.loads(base64.b64decode(kinesis["data"])), event_source=item["eventSource"],
        )  # fmt: skip


@app.on_topic(alerts, **AWS)
def sns_handler(event: dict[str, Any], context: Any) -> None:
    [item] = event["Records"]
    sns = item["Sns"]
    record(
        "sns_handler", message=json.loads(sns["Message"]), subject=sns["Subject"],
        attributes=sns["MessageAttributes"], topic=sns["TopicArn"],
        event_source=item["EventSource"],
    )  # fmt: skip


@app.on_schedule("rate(1 second)", **AWS)
def scheduled_handler(event: dict[str, Any], context: Any) -> None:
    record(
        "scheduled_handler", detail_type=event["detail-type"], source=event["source"],
        resources=event["resources"], time=event["time"], detail=event["detail"],
    )  # fmt: skip


@app.on_schedule("rate(1 second)", payload={"job": "nightly"}, **AWS)
def constant_input_handler(event: dict[str, Any], context: Any) -> None:
    record("constant_input_handler", event=event)


@app.function(timeout=7, memory_mb=256, **AWS)
def whoami(event: Any, context: Any) -> dict[str, Any]:
    return {"event": event, **context_fields(context)}


@app.function(uses=[orders, inventory, docs, alerts, clicks], timeout=30)
def produce(event: dict[str, Any]) -> list[dict[str, Any]]:
    return run_ops(event["ops"])
