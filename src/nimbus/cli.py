"""The `nimbus` command: thin commands over the controller and its admin API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nimbus.client import Client, Invocation
from nimbus.client.wire import async_params, invoke_path
from nimbus.discovery import DEFAULT_DATA_DIR, locate
from nimbus.errors import FunctionFailed, InvalidRequest, NimbusError, NotFound
from nimbus.ids import short_id
from nimbus.json_input import decode_json
from nimbus.ops.config import DEFAULT_LOG_LIMIT, DEFAULT_SAMPLE_INTERVAL, ops_config
from nimbus.ops.tracing.config import (
    DEFAULT_KEEP,
    DEFAULT_PER_SECOND,
    DEFAULT_RATIO,
    tracing_config,
)
from nimbus.services.bucket import ObjectInfo
from nimbus.spec.loader import load_app
from nimbus.spec.plan import Plan

app = typer.Typer(
    help="nimbus: a serverless platform for Python that you run yourself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dlq_app = typer.Typer(help="Dead letters of failed asynchronous invocations.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
out = Console(width=None if sys.stdout.isatty() else 200)  # piped tables are not cut at 80

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="platform state folder", envvar="NIMBUS_DATA_DIR")
]
Url = Annotated[str | None, typer.Option("--url", help="platform URL (default: discovered)")]
Token = Annotated[
    str | None,
    typer.Option("--token", help="platform token (default: NIMBUS_TOKEN, else discovered)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _client(url: str | None, token: str | None = None) -> Client:
    """The platform API: URL and token as given, else NIMBUS_URL / NIMBUS_TOKEN, else what the
    platform running with NIMBUS_DATA_DIR (.nimbus) wrote down."""
    return Client(url, token=token)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def up(
    target: Annotated[str, typer.Argument(help="app.py, nimbus.yaml, or a folder holding one")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port of the gateway and admin API (0: any free)")
    ] = 8080,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    reload: Annotated[bool, typer.Option(help="reload when the app's code changes")] = True,
    fsync: Annotated[bool, typer.Option(help="fsync every commit (power-loss safety)")] = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="NIMBUS_TOKEN",
            help="the token the platform API (/_nimbus) wants (default: a new one, written to "
            "the data folder's platform.json)",
            show_default=False,
        ),
    ] = None,
    traces: Annotated[
        bool, typer.Option(envvar="NIMBUS_TRACES", help="record spans (off: nothing is traced)")
    ] = True,
    traces_keep: Annotated[
        int,
        typer.Option(
            envvar="NIMBUS_TRACES_KEEP",
            help="invocations and service calls whose spans traces.db keeps (oldest go first)",
        ),
    ] = DEFAULT_KEEP,
    traces_per_second: Annotated[
        int | None,
        typer.Option(
            envvar="NIMBUS_TRACES_PER_SECOND",
            help=f"new traces recorded each second before --trace-ratio applies (default: "
            f"{DEFAULT_PER_SECOND}, or as OTEL_TRACES_SAMPLER says)",
            show_default=False,
        ),
    ] = None,
    trace_ratio: Annotated[
        float | None,
        typer.Option(
            envvar="NIMBUS_TRACE_RATIO",
            help=f"share of the other new traces recorded, 0 to 1 (default: {DEFAULT_RATIO}, "
            "or as OTEL_TRACES_SAMPLER says; 1 records every trace)",
            show_default=False,
        ),
    ] = None,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="also export spans over OTLP/HTTP to this traces URL (default: "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces)",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        bool, typer.Option(envvar="NIMBUS_METRICS", help="serve metrics at /_nimbus/metrics")
    ] = True,
    metering: Annotated[
        bool, typer.Option(envvar="NIMBUS_METERING", help="meter usage (off: no usage, budgets)")
    ] = True,
    prices: Annotated[
        Path | None,
        typer.Option(help="price sheet (default: DATA_DIR/prices.yaml, else AWS's list prices)"),
    ] = None,
    usage_sample_interval: Annotated[
        float, typer.Option(help="seconds between samples of what resources store")
    ] = DEFAULT_SAMPLE_INTERVAL,
    log_limit: Annotated[
        str, typer.Option(envvar="NIMBUS_LOG_LIMIT", help="logs kept, oldest dropped first")
    ] = DEFAULT_LOG_LIMIT,
) -> None:
    """Run the platform with TARGET on the embedded backend."""
    import uvloop

    from nimbus.server import serve

    tracing = tracing_config(
        enabled=traces, keep=traces_keep, endpoint=otlp_endpoint,
        per_second=traces_per_second, ratio=trace_ratio,
    )  # fmt: skip
    ops = ops_config(
        metering=metering, prices=prices, sample_interval=usage_sample_interval,
        log_limit=log_limit,
    )  # fmt: skip
    uvloop.run(
        serve(
            target, host=host, port=port, data_dir=data_dir, reload=reload, fsync=fsync,
            token=token, tracing=tracing, metrics=metrics, ops=ops,
        )
    )  # fmt: skip


@app.command()
def invoke(
    function: str,
    data: Annotated[str, typer.Option("--data", "-d", help="the event, as JSON")] = "null",
    asynchronous: Annotated[
        bool, typer.Option("--async", help="return at once with an id")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="invoke asynchronously (with retries), wait, print")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="with --wait: stop waiting after this many s")
    ] = None,
    job_id: Annotated[
        str | None, typer.Option("--id", help="asynchronous: its id (given again, runs once)")
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Invoke FUNCTION with an event and print its result."""
    event = _json_argument(data, "--data")
    if job_id is not None and not (asynchronous or wait):
        raise InvalidRequest("--id names an asynchronous invocation: add --async or --wait")
    client = _client(url, token)
    if wait:
        _wait_for(client.invoke_async(function, event, id=job_id), timeout, as_json)
        return
    params = async_params(job_id) if asynchronous else {}
    response = client.request(
        "POST", invoke_path(function), content=msgspec.json.encode(event), params=params
    )
    if as_json:
        _print_json(response)
    elif asynchronous:
        out.print(f"accepted: [bold]{response['id']}[/bold]")
    elif response["error"] is None:
        _print_json(response["result"])
    else:
        _print_error(response)
    if not asynchronous and response.get("error") is not None:
        raise typer.Exit(1)


def _print_error(record: dict[str, Any]) -> None:
    error = record["error"]
    _print_failure(record["outcome"], error["type"], error["message"], error.get("traceback", []))
    out.print(f"request id: {record['id']}")


def _print_failure(outcome: str, error_type: str, message: str, traceback: list[str]) -> None:
    out.print(f"[red]{outcome}[/red] {escape(error_type)}: {escape(message)}", highlight=False)
    for line in traceback:
        out.print(line, highlight=False, markup=False)


def _wait_for(invocation: Invocation, timeout: float | None, as_json: bool) -> None:
    """Print the result of an asynchronous invocation once it is done."""
    try:
        result = invocation.wait(timeout)
    except TimeoutError as error:
        raise NimbusError(f"{error}; `nimbus status {invocation.id}` shows it later") from None
    except FunctionFailed as failure:
        _print_failure(failure.outcome, failure.error_type, failure.message, failure.traceback)
        out.print(f"invocation id: {invocation.id}")
        raise typer.Exit(1) from None
    _print_json({"id": invocation.id, "result": result} if as_json else result)


def _json_argument(text: str, name: str) -> Any:
    try:
        return decode_json(text)
    except msgspec.DecodeError as error:
        raise InvalidRequest(f"{name} is not valid JSON: {error}") from None


@app.command("status")
def job_status(
    invocation_id: str,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show the status and result of an asynchronous invocation."""
    job = _client(url, token).request("GET", f"/jobs/{invocation_id}")
    if as_json:
        _print_json(job)
        return
    attempts = f"after {job['attempts']} attempt(s)"
    out.print(f"{job['function']} {job['id']}: [bold]{job['status']}[/bold] {attempts}")
    if job["result"] is not None:
        _print_json(job["result"])
    if job["error"]:
        error = job["error"]
        out.print(f"last error: {error['type']}: {error['message']}", highlight=False, markup=False)


@app.command("ls")
def list_functions(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """List the deployed functions with their triggers and instances."""
    functions = _client(url, token).request("GET", "/functions")
    if as_json:
        _print_json(functions)
        return
    table = Table("function", "triggers", "instances", "busy", "limits")
    for f in functions:
        triggers = ", ".join(f["trigger_labels"]) or "-"
        limits = f"{f['timeout']:g}s {f['memory_mb']}MB x{f['concurrency']} <= {f['max_instances']}"
        if "max_instances" in f.get("runtime", {}):
            limits += " (set at runtime)"
        table.add_row(f["name"], triggers, str(f["instances"]), str(f["busy"]), limits)
    out.print(table)


@app.command()
def dashboard(
    url: Url = None,
    token: Token = None,
    open_it: Annotated[bool, typer.Option("--open", help="open it in a web browser")] = False,
) -> None:
    """Print the link to the web dashboard; it carries the token, so keep it to yourself."""
    import webbrowser
    from urllib.parse import quote

    target = locate(url, token)
    _client(target.url, target.token).request("GET", "/functions")  # answers, takes the token
    link = f"{target.url}/_nimbus/dashboard#token={quote(target.token or '', safe='')}"
    out.print(link, highlight=False, markup=False, soft_wrap=True)
    if open_it:
        webbrowser.open(link)


@app.command()
def logs(
    function: Annotated[str | None, typer.Argument(help="only this function")] = None,
    request_id: Annotated[str | None, typer.Option("--request", help="only this request")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    limit: int = 100,
    only: Annotated[str | None, typer.Option("--function", help="only this function")] = None,
    level: Annotated[
        str | None, typer.Option(help="this level and above: DEBUG, INFO, WARNING, ERROR")
    ] = None,
    grep: Annotated[str | None, typer.Option(help="only lines holding this text")] = None,
    since: Annotated[str | None, typer.Option(help="from: 10m, 24h, 7d ago, or RFC 3339")] = None,
    until: Annotated[str | None, typer.Option(help="before: 10m ago, or RFC 3339")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Print what functions printed and logged, with request ids (--json: with trace ids and
    the fields given with `extra=`)."""
    client = _client(url, token)
    params: dict[str, Any] = {"after": 0, "limit": limit}
    filters = {
        "function": function or only, "request_id": request_id, "level": level, "grep": grep,
        "since": since, "until": until,
    }  # fmt: skip
    params |= {name: value for name, value in filters.items() if value}
    entries = client.request("GET", "/logs", params=params)
    if as_json and not follow:
        _print_json(entries)  # one array; with --follow, one JSON object per line
        return
    while True:
        for entry in entries:
            params["after"] = entry["seq"]
            _print_log(entry, as_json)
        if not follow:
            return
        sys.stdout.flush()
        time.sleep(0.5)
        entries = client.request("GET", "/logs", params=params)


def _print_log(entry: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(entry) + "\n")
        return
    stamp = time.strftime("%H:%M:%S", time.localtime(entry["time"]))
    fields = " ".join(f"{name}={value}" for name, value in entry.get("extra", {}).items())
    out.print(
        f"{stamp} [cyan]{escape(entry['function'])}[/cyan] {short_id(entry['request_id'])} "
        f"{entry['level']:<5} {escape(entry['message'])}"
        + (f" [dim]{escape(fields)}[/dim]" if fields else ""),
        highlight=False,
    )


@app.command()
def invocations(
    function: Annotated[str | None, typer.Argument(help="only this function")] = None,
    limit: int = 20,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """The most recent invocations: duration, billed duration, memory, cold start, outcome."""
    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    records = _client(url, token).request("GET", "/invocations", params=params)
    if as_json:
        _print_json(records)
        return
    table = Table(
        "started",
        "function",
        "request id",
        "trigger",
        "outcome",
        "duration",
        "billed",
        "memory",
        "cold",
    )
    for r in records:
        outcome = r["outcome"] if r["outcome"] == "success" else f"[red]{r['outcome']}[/red]"
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(r["started_at"])),
            r["function"],
            r["id"],
            r["trigger"],
            outcome,
            f"{r['duration_ms']:.2f} ms",
            f"{r['billed_ms']} ms",
            f"{r['peak_memory_mb']:g}/{r['memory_mb']} MB",
            "yes" if r["cold_start"] else "",
        )
    out.print(table)


@app.command()
def usage(
    since: Annotated[str, typer.Option(help="from: 24h, 7d ago, or RFC 3339")] = "24h",
    until: Annotated[str | None, typer.Option(help="before (default: now)")] = None,
    by: Annotated[str, typer.Option(help="all, function or resource")] = "all",
    prices: Annotated[
        Path | None, typer.Option(help="also price the usage with this sheet, side by side")
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Usage per function and resource, its cost under the platform's price sheet, budgets."""
    from nimbus.ops.usage.prices import load_sheet
    from nimbus.ops.usage.view import budget_table, reprice, usage_table

    other = load_sheet(prices) if prices is not None else None  # a bad sheet fails first
    params = {"since": since, "by": by, **({"until": until} if until else {})}
    report = _client(url, token).request("GET", "/usage", params=params)
    compare = reprice(report, other) if other is not None else None
    if as_json:
        _print_json({**report, "compare": compare} if compare is not None else report)
        return
    out.print(usage_table(report, compare))
    if report["budgets"]:
        out.print(budget_table(report["budgets"]))


@app.command("traces")
def list_traces(
    function: Annotated[str | None, typer.Option(help="only traces this function ran in")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """The latest traces (newest span first): root span, function, duration, spans, errors."""
    from nimbus.ops.tracing.view import trace_table

    params: dict[str, Any] = {"limit": limit, **({"function": function} if function else {})}
    found = _client(url, token).request("GET", "/traces", params=params)
    if as_json:
        _print_json(found)
    else:
        out.print(trace_table(found))


@app.command("trace")
def show_trace(
    trace_id: str, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Print one trace as a tree of spans with their durations."""
    from nimbus.ops.tracing.view import span_tree

    found = _client(url, token).request("GET", f"/traces/{trace_id}")
    if as_json:
        _print_json(found)
    else:
        out.print(span_tree(trace_id, found["spans"], found["linked"]))


@app.command()
def spec(
    target: Annotated[str, typer.Argument(help="app.py, nimbus.yaml, or a folder holding one")],
    as_json: AsJson = False,
) -> None:
    """Print the app's resolved spec (defaults filled in)."""
    resolved = load_app(target).model_dump(mode="json")
    if as_json or not sys.stdout.isatty():
        _print_json(resolved)
    else:
        out.print_json(data=resolved)


@app.command()
def plan(
    target: Annotated[str, typer.Argument(help="app.py, nimbus.yaml, or a folder holding one")],
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show what deploying TARGET to the running platform would add, change and remove."""
    _send_spec("POST", "/plan", target, _client(url, token), as_json)


@app.command()
def deploy(
    target: Annotated[str, typer.Argument(help="app.py, nimbus.yaml, or a folder holding one")],
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Apply TARGET's spec to the running platform (idempotent)."""
    _send_spec("PUT", "/spec", target, _client(url, token), as_json)


def _send_spec(method: str, path: str, target: str, client: Client, as_json: bool) -> None:
    """Load the app here, send its spec to the platform, print the plan that comes back."""
    desired = load_app(target)
    reply = client.request(method, path, content=desired.model_dump_json())
    _show_plan(Plan.model_validate(reply), as_json)


def _show_plan(result: Plan, as_json: bool) -> None:
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    if result.empty:
        out.print("no changes")
        return
    for change in result.app:
        out.print(
            f"[yellow]~ app {change.field}[/yellow]: {change.old!r} -> {change.new!r}",
            highlight=False,
        )
    groups = (
        (result.add_resources, result.change_resources, result.remove_resources, " (data kept)"),
        (result.add, result.change, result.remove, ""),
    )
    for added, changed, removed, note in groups:
        for name in added:
            out.print(f"[green]+ {name}[/green]")
        for item in changed:
            out.print(f"[yellow]~ {item.name}[/yellow]")
            for change in item.fields:
                out.print(f"    {change.field}: {change.old!r} -> {change.new!r}", highlight=False)
        for name in removed:
            out.print(f"[red]- {name}[/red]{note}")


@dlq_app.command("ls")
def dlq_list(
    function: Annotated[str | None, typer.Argument(help="only this function")] = None,
    limit: int = 50,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the latest dead letters of every source, oldest first."""
    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    letters = _client(url, token).request("GET", "/dlq", params=params)
    if as_json:
        _print_json(letters)
        return
    table = Table("id", "source", "function", "attempts", "failed", "error")
    for letter in letters:
        error = letter["error"] or {}
        table.add_row(
            escape(letter["id"]),
            escape(letter["source"]),
            escape(letter["function"] or "-"),
            str(letter["attempts"]),
            time.strftime("%H:%M:%S", time.localtime(letter["failed_at"])),
            escape(f"{error.get('type', '')}: {error.get('message', '')}"),
        )
    out.print(table)


@dlq_app.command("show")
def dlq_show(letter_id: str, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Show one dead letter: its event, attempts and last error (always JSON)."""
    _print_json(_client(url, token).request("GET", f"/dlq/{letter_id}"))


@dlq_app.command("redrive")
def dlq_redrive(
    letter_id: str,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Send a dead letter's event to its function again (a new asynchronous invocation)."""
    job = _client(url, token).request("POST", f"/dlq/{letter_id}/redrive")
    if as_json:
        _print_json(job)
    else:
        out.print(f"re-driven as [bold]{job['id']}[/bold]")


@dlq_app.command("redrive-queue")
def dlq_redrive_queue(
    queue: str,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Move every message of a dead-letter queue back to the queue it came from."""
    redriven = _client(url, token).request("POST", f"/queues/{queue}/redrive")
    if as_json:
        _print_json(redriven)
        return
    out.print(f"moved {redriven['moved']} message(s) back to their queues")
    if redriven["left"]:
        out.print(
            f"{redriven['left']} message(s) stay in {escape(queue)}: without a known source "
            "queue, or in flight"
        )


Pairs = Annotated[list[str] | None, typer.Option(metavar="NAME=VALUE", show_default=False)]


@app.command()
def send(
    queue: str,
    body: Annotated[str, typer.Argument(help="the message body, as it is (-: read stdin)")],
    group: Annotated[str | None, typer.Option(help="message group (FIFO queues)")] = None,
    dedup_id: Annotated[str | None, typer.Option(help="deduplication id (FIFO queues)")] = None,
    delay: Annotated[float | None, typer.Option(help="seconds before it can be received")] = None,
    attribute: Pairs = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Send a message to QUEUE and print its id."""
    text = sys.stdin.read() if body == "-" else body
    handle, attributes = _client(url, token).queue(queue), _pairs(attribute, "--attribute")
    message_id = handle.send(
        text, delay=delay, attributes=attributes, group=group, dedup_id=dedup_id
    )
    _print_id(message_id, as_json)


@app.command()
def publish(
    topic: str,
    data: Annotated[str, typer.Argument(help="the event's data, as JSON")],
    event_type: Annotated[str, typer.Option("--type", help="the event's type")] = "nimbus.event",
    source: Annotated[str, typer.Option(help="the event's source")] = "",
    subject: Annotated[str | None, typer.Option(help="the event's subject")] = None,
    attribute: Pairs = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Publish an event to TOPIC and print its id."""
    event = _json_argument(data, "DATA")
    handle, attributes = _client(url, token).topic(topic), _pairs(attribute, "--attribute")
    event_id = handle.publish(
        event, type=event_type, source=source, subject=subject, attributes=attributes
    )
    _print_id(event_id, as_json)


@app.command()
def put(
    bucket: str,
    key: str,
    file: Annotated[str, typer.Argument(help="the file to store (-: read stdin)")],
    content_type: Annotated[str | None, typer.Option(help="default: guessed from the key")] = None,
    meta: Pairs = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Store FILE in BUCKET under KEY, streamed (a big file is never read whole)."""
    source = sys.stdin.buffer if file == "-" else Path(file)
    if isinstance(source, Path) and not source.is_file():
        raise InvalidRequest(f"{file} is not a file")
    handle, metadata = _client(url, token).bucket(bucket), _pairs(meta, "--meta")
    info = handle.upload_file(key, source, content_type=content_type, metadata=metadata)
    _print_object(info, as_json)


@app.command()
def get(
    bucket: str,
    key: str,
    file: Annotated[str, typer.Argument(help="where to write it (default, -: stdout)")] = "-",
    url: Url = None,
    token: Token = None,
) -> None:
    """Write the object KEY of BUCKET to FILE or stdout, as it arrives."""
    target = sys.stdout.buffer if file == "-" else Path(file)
    _client(url, token).bucket(bucket).download_file(key, target)


@app.command("objects")
def list_objects(
    bucket: str,
    prefix: Annotated[str, typer.Option(help="only keys that start with this")] = "",
    delimiter: Annotated[str | None, typer.Option(help="roll keys up at this (e.g. /)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
    cursor: Annotated[str | None, typer.Option(help="where the last page ended")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the objects of BUCKET in key order, a page at a time."""
    page = _client(url, token).bucket(bucket).list(prefix, delimiter, limit, cursor)
    if as_json:
        _print_json(msgspec.to_builtins(page))
        return
    listing = Table("key", "size", "modified", "etag", "content type")
    for prefix_only in page.common_prefixes:
        listing.add_row(escape(prefix_only), "-", "", "", "")
    for info in page.objects:
        modified = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.last_modified))
        listing.add_row(
            escape(info.key), str(info.size), modified, info.etag, escape(info.content_type)
        )
    out.print(listing)
    if page.cursor is not None:
        out.print(f"more: --cursor {page.cursor}", highlight=False)


@app.command()
def item(
    table: str,
    key: Annotated[str, typer.Argument(help='the key, as JSON: \'{"id": "c1"}\'')],
    url: Url = None,
    token: Token = None,
) -> None:
    """Print the item of TABLE with KEY (its data and version), as JSON."""
    found = _client(url, token).table(table).get(_json_argument(key, "KEY"))
    if found is None:
        raise NotFound(f"table {table!r} has no item with key {key}")
    _print_json(msgspec.to_builtins(found))


@app.command()
def query(
    table: str,
    value: Annotated[str, typer.Argument(help="the partition key's value (JSON, else text)")],
    index: Annotated[str | None, typer.Option(help="query this index")] = None,
    sort: Annotated[str | None, typer.Option(help="sort key test: '{\">=\": 3}'")] = None,
    filter: Annotated[str | None, typer.Option(help="filter, as JSON")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="items read")] = 100,
    reverse: Annotated[bool, typer.Option(help="descending sort key order")] = False,
    cursor: Annotated[str | None, typer.Option(help="where the last page ended")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Print one page of a partition of TABLE (or of an index) as JSON: items and cursor."""
    page = _client(url, token).table(table).query(
        _key_value(value), index=index, sort=_json_option(sort, "--sort"),
        filter=_json_option(filter, "--filter"), limit=limit, forward=not reverse, cursor=cursor,
    )  # fmt: skip
    _print_json(msgspec.to_builtins(page))


@app.command()
def scan(
    table: str,
    filter: Annotated[str | None, typer.Option(help="filter, as JSON")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="items read")] = 100,
    cursor: Annotated[str | None, typer.Option(help="where the last page ended")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Print one page of every item of TABLE in key order as JSON: items and cursor."""
    handle = _client(url, token).table(table)
    page = handle.scan(filter=_json_option(filter, "--filter"), limit=limit, cursor=cursor)
    _print_json(msgspec.to_builtins(page))


def _print_id(new_id: str, as_json: bool) -> None:
    if as_json:
        _print_json({"id": new_id})
    else:
        out.print(new_id, highlight=False)


def _print_object(info: ObjectInfo, as_json: bool) -> None:
    if as_json:
        _print_json(msgspec.to_builtins(info))
    else:
        out.print(f"{escape(info.key)}: {info.size} bytes, ETag {info.etag}", highlight=False)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        name, equals, text = value.partition("=")
        if not equals or not name:
            raise InvalidRequest(f"{option} takes NAME=VALUE, not {value!r}")
        pairs[name] = text
    return pairs


def _json_option(text: str | None, name: str) -> Any:
    return None if text is None else _json_argument(text, name)


def _key_value(text: str) -> Any:
    """A key value typed as JSON when it is a JSON string or number (`7`, `"7"`), else the
    text itself (`c1`)."""
    try:
        value = decode_json(text)
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else text


def main() -> None:
    try:
        app()
    except NimbusError as error:
        errors = Console(stderr=True, soft_wrap=True)  # one line, however narrow the terminal
        errors.print(f"[red]error:[/red] {escape(error.message)}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
