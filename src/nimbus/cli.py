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

from nimbus.api_client import AdminClient, discover_url
from nimbus.errors import NimbusError
from nimbus.ids import short_id
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
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]
DEFAULT_DATA_DIR = Path(".nimbus")


def _client(url: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> AdminClient:
    return AdminClient(url or discover_url(data_dir))


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
) -> None:
    """Run the platform with TARGET on the embedded backend."""
    import uvloop

    from nimbus.server import serve

    uvloop.run(serve(target, host=host, port=port, data_dir=data_dir, reload=reload, fsync=fsync))


@app.command()
def invoke(
    function: str,
    data: Annotated[str, typer.Option("--data", "-d", help="the event, as JSON")] = "null",
    asynchronous: Annotated[
        bool, typer.Option("--async", help="return at once with an id")
    ] = False,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Invoke FUNCTION with an event and print its result."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise NimbusError(f"--data is not valid JSON: {error}") from None
    params = {"mode": "async"} if asynchronous else {}
    response = _client(url).request(
        "POST", f"/functions/{function}/invoke", content=data.encode(), params=params
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
    out.print(
        f"[red]{record['outcome']}[/red] {escape(error['type'])}: {escape(error['message'])}",
        highlight=False,
    )
    for line in error.get("traceback", []):
        out.print(line, highlight=False, markup=False)
    out.print(f"request id: {record['id']}")


@app.command("status")
def job_status(invocation_id: str, url: Url = None, as_json: AsJson = False) -> None:
    """Show the status and result of an asynchronous invocation."""
    job = _client(url).request("GET", f"/jobs/{invocation_id}")
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
def list_functions(url: Url = None, as_json: AsJson = False) -> None:
    """List the deployed functions with their triggers and instances."""
    functions = _client(url).request("GET", "/functions")
    if as_json:
        _print_json(functions)
        return
    table = Table("function", "triggers", "instances", "busy", "limits")
    for f in functions:
        triggers = ", ".join(f["trigger_labels"]) or "-"
        limits = f"{f['timeout']:g}s {f['memory_mb']}MB x{f['concurrency']} <= {f['max_instances']}"
        table.add_row(f["name"], triggers, str(f["instances"]), str(f["busy"]), limits)
    out.print(table)


@app.command()
def logs(
    function: Annotated[str | None, typer.Argument(help="only this function")] = None,
    request_id: Annotated[str | None, typer.Option("--request", help="only this request")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    limit: int = 100,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Print what functions printed and logged, with request ids."""
    client = _client(url)
    params: dict[str, Any] = {"after": 0, "limit": limit}
    if function:
        params["function"] = function
    if request_id:
        params["request_id"] = request_id
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
    out.print(
        f"{stamp} [cyan]{escape(entry['function'])}[/cyan] {short_id(entry['request_id'])} "
        f"{entry['level']:<5} {escape(entry['message'])}",
        highlight=False,
    )


@app.command()
def invocations(
    function: Annotated[str | None, typer.Argument(help="only this function")] = None,
    limit: int = 20,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """The most recent invocations: duration, billed duration, memory, cold start, outcome."""
    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    records = _client(url).request("GET", "/invocations", params=params)
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
    as_json: AsJson = False,
) -> None:
    """Show what deploying TARGET to the running platform would add, change and remove."""
    _send_spec("POST", "/plan", target, url, as_json)


@app.command()
def deploy(
    target: Annotated[str, typer.Argument(help="app.py, nimbus.yaml, or a folder holding one")],
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Apply TARGET's spec to the running platform (idempotent)."""
    _send_spec("PUT", "/spec", target, url, as_json)


def _send_spec(method: str, path: str, target: str, url: str | None, as_json: bool) -> None:
    """Load the app here, send its spec to the platform, print the plan that comes back."""
    desired = load_app(target)
    reply = _client(url).request(method, path, content=desired.model_dump_json())
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
    as_json: AsJson = False,
) -> None:
    """List the latest dead letters of every source, oldest first."""
    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    letters = _client(url).request("GET", "/dlq", params=params)
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
def dlq_show(letter_id: str, url: Url = None, as_json: AsJson = False) -> None:
    """Show one dead letter: its event, attempts and last error (always JSON)."""
    _print_json(_client(url).request("GET", f"/dlq/{letter_id}"))


@dlq_app.command("redrive")
def dlq_redrive(letter_id: str, url: Url = None, as_json: AsJson = False) -> None:
    """Send a dead letter's event to its function again (a new asynchronous invocation)."""
    job = _client(url).request("POST", f"/dlq/{letter_id}/redrive")
    if as_json:
        _print_json(job)
    else:
        out.print(f"re-driven as [bold]{job['id']}[/bold]")


@dlq_app.command("redrive-queue")
def dlq_redrive_queue(queue: str, url: Url = None, as_json: AsJson = False) -> None:
    """Move every message of a dead-letter queue back to the queue it came from."""
    moved = _client(url).request("POST", f"/queues/{queue}/redrive")
    if as_json:
        _print_json(moved)
    else:
        out.print(f"moved {moved['moved']} message(s) back to their queues")


def main() -> None:
    try:
        app()
    except NimbusError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error.message}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
