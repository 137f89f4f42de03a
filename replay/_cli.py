"""The query and replay commands: ``spanreel sql``, ``traces``, ``show`` and ``replay``.

All four find the database the same way (``--db``, ``SPANREEL_DB``, ``--config`` /
``./otel-config.yaml``, the default path; see :mod:`spanreel._config`) and read it through
:func:`spanreel.collector.run_query`, so they work while a collector is writing to it.
With ``--json`` only machine-readable JSON goes to stdout; notes and warnings go to stderr.
User errors (unknown trace, no database, bad SQL) are one-line messages with exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._cli_common import (
    SafeConsole,
    db_options,
    load_source,
    resolve_db,
    source_options,
    terminal_safe,
    user_errors,
)
from ._cost import format_usd

if TYPE_CHECKING:
    from ._load import SpanRecord
    from ._report import FailOn

__all__ = ["replay_command", "show_command", "sql_command", "traces_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (only JSON) on stdout.")(func)


#: Width used when stdout is not a terminal (pipes, files): tables keep their natural width
#: instead of being squeezed to 80 columns.
_PIPE_WIDTH = 240


def _stdout() -> Console:
    console = SafeConsole(highlight=False)
    if not console.is_terminal:
        console = SafeConsole(highlight=False, width=_PIPE_WIDTH)
    return console


def _stderr() -> Console:
    return SafeConsole(stderr=True, highlight=False)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(terminal_safe(str(value)))  # escaped before layout, so the columns line up


# --------------------------------------------------------------------------- sql


@click.command(
    "sql",
    epilog="""\b
Examples:
  spanreel sql "SELECT name, count(*) FROM spans GROUP BY name ORDER BY 2 DESC"
  spanreel sql "SELECT request_model, sum(output_tokens) FROM llm_calls GROUP BY 1" --json
  spanreel sql "SELECT * FROM traces ORDER BY start_time DESC LIMIT 5" --db ./spanreel.duckdb

Tables and views: spans, llm_calls, traces, sessions, trace_index (docs/schema.md).""",
)
@click.argument("query")
@db_options
@_json_option
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Print at most this many rows (the query stops there); a note says when there were more.",
)
def sql_command(query: str, db: str | None, config_path: str | None, as_json: bool, max_rows: int) -> None:
    """Run a read-only SQL QUERY over the stored spans (DuckDB SQL).

    Prints a table, or with --json {"columns": [...], "rows": [[...], ...], "truncated": bool}.
    Only read-only statements are allowed.
    """
    from spanreel.collector import run_query

    path = resolve_db(db, config_path)
    with user_errors():
        result = run_query(query, path, max_rows=max_rows)
    more = _truncation_note(len(result.rows), max_rows)
    if as_json:
        _print_json(
            {
                "columns": list(result.columns),
                "rows": [list(r) for r in result.rows],
                "truncated": result.truncated,
            }
        )
        if result.truncated:
            _stderr().print(more, style="yellow")
        return
    out = _stdout()
    columns = [str(c) for c in result.columns]
    cells = [[_cell(v) for v in row] for row in result.rows]
    if _natural_width(columns, cells) <= out.width:
        table = Table(show_header=True, header_style="bold")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row_cells in cells:
            table.add_row(*row_cells)
        out.print(table)
    else:  # too wide for a table: one block per row, column name beside value (like psql's \x)
        for n, row_cells in enumerate(cells, start=1):
            block = Table(show_header=False, title=f"row {n}", title_justify="left")
            block.add_column(style="bold", no_wrap=True)
            block.add_column(overflow="fold", ratio=1)
            for col, cell in zip(columns, row_cells, strict=True):
                block.add_row(col, cell)
            out.print(block)
    _stderr().print(f"{len(cells)} row{'s' if len(cells) != 1 else ''}", style="dim")
    if result.truncated:
        _stderr().print(more, style="yellow")


def _truncation_note(shown: int, max_rows: int | None) -> str:
    """What cut a truncated answer: ``--max-rows``, or (fewer rows than that) the running
    collector's own caps, ``exporters.duckdb.query_max_rows`` and ``query_max_bytes``."""
    if max_rows is not None and shown >= max_rows:
        return f"more rows than --max-rows {max_rows}: showing the first {max_rows}"
    return (
        f"the collector's exporters.duckdb.query_max_rows or query_max_bytes cut the answer at "
        f"{shown:,} rows (raise them in otel-config.yaml, or narrow the query)"
    )


def _natural_width(columns: list[str], cells: list[list[Text]], cap: int = 40) -> int:
    """Width a plain table would need, each column capped at ``cap`` characters."""
    total = 1
    for i, col in enumerate(columns):
        longest = max([len(col), *(min(cap, cell.cell_len) for row in cells for cell in row[i : i + 1])])
        total += longest + 3
    return total


# --------------------------------------------------------------------------- traces

_TRACES_SQL = """
SELECT * FROM traces
ORDER BY start_time DESC
LIMIT ?
"""

# Replays of a trace: traces with a span whose spanreel.replay.original_trace_id is the trace
# (the replay root for a one-trace replay, the re-created spans for a session replay).
_REPLAYS_SQL = """
SELECT * FROM traces
WHERE trace_id IN (
    SELECT DISTINCT trace_id FROM spans
    WHERE json_extract_string(attributes, '$."spanreel.replay.original_trace_id"') = ?
)
ORDER BY start_time DESC
LIMIT ?
"""


def _fmt_duration_ns(value: Any) -> str:
    if value is None:
        return ""
    ms = int(value) / 1e6
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 59_995:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)  # as the viewer shows it
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _fmt_tokens(rec: dict[str, Any]) -> str:
    """``in/out`` tokens of a ``traces`` or ``sessions`` row; empty when neither was reported."""
    if rec.get("input_tokens") is None and rec.get("output_tokens") is None:
        return ""
    return f"{rec.get('input_tokens') or 0}/{rec.get('output_tokens') or 0}"


def _fmt_start(value: Any) -> str:
    text = str(value or "")
    # ISO-8601 from the query layer: show seconds precision, UTC
    return text.replace("T", " ")[:19]


@click.command(
    "traces",
    epilog="""\b
Examples:
  spanreel traces
  spanreel traces --limit 5 --json
  spanreel traces --replays-of 4bf92f35     # every replay of that trace
  spanreel show $(spanreel traces --limit 1 --json | jq -r '.[0].trace_id')""",
)
@db_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many traces.")
@click.option(
    "--replays-of",
    "replays_of",
    default=None,
    metavar="TRACE_ID",
    help="Only the replays of this trace (id or unique prefix ≥ 8): traces whose spans carry "
    "spanreel.replay.original_trace_id = TRACE_ID.",
)
@_json_option
def traces_command(
    db: str | None, config_path: str | None, limit: int, replays_of: str | None, as_json: bool
) -> None:
    """List recent traces, newest first: id, root span, service, start (UTC), duration,
    span count, LLM calls, tokens in/out, cost (USD, when recorded).

    With --json: a list of objects with the columns of the `traces` view (docs/schema.md).
    """
    from spanreel.collector import run_query

    from ._load import resolve_trace_id

    path = resolve_db(db, config_path)
    with user_errors():
        if replays_of is None:
            result = run_query(_TRACES_SQL, path, params=[limit])
        else:
            original = resolve_trace_id(replays_of, path)
            result = run_query(_REPLAYS_SQL, path, params=[original, limit])
    columns = list(result.columns)
    records = [dict(zip(columns, row, strict=True)) for row in result.rows]
    if result.truncated:
        _stderr().print(_truncation_note(len(records), limit), style="yellow")
    if as_json:
        _print_json(records)
        return
    if not records:
        _stderr().print(f"no replays of {replays_of} in {path}" if replays_of else f"no traces in {path}")
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("trace id", no_wrap=True)
    table.add_column("root span", overflow="fold", min_width=10)
    table.add_column("service", overflow="fold", min_width=8)
    table.add_column("start (UTC)", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("spans", justify="right")
    table.add_column("LLM calls", justify="right")
    table.add_column("tokens in/out", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for rec in records:
        table.add_row(
            Text(str(rec["trace_id"]), style="bold"),
            Text(str(rec.get("root_name") or "")),
            Text(str(rec.get("service_name") or "")),
            _fmt_start(rec.get("start_time")),
            _fmt_duration_ns(rec.get("duration_ns")),
            str(rec.get("span_count") or 0),
            str(rec.get("llm_calls") or 0),
            _fmt_tokens(rec),
            format_usd(rec.get("cost_usd")) or "",
        )
    _stdout().print(table)


# --------------------------------------------------------------------------- show


@click.command(
    "show",
    epilog="""\b
Examples:
  spanreel show 4bf92f3577b34da6a3ce929d0e0e4736
  spanreel show 4bf92f35            # a unique prefix of at least 8 hex characters
  spanreel show --session ticket-42 # every trace of a session
  spanreel show --from-file trace.json
  spanreel show 4bf92f35 --json     # nested JSON with every attribute""",
)
@click.argument("trace_id", required=False)
@source_options
@db_options
@_json_option
def show_command(
    trace_id: str | None,
    session_id: str | None,
    from_file: Path | None,
    db: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Show a trace as a span tree with a waterfall: a timing bar per span, duration, model,
    tokens in→out, cost (USD) and status.

    TRACE_ID is the 32-hex-character trace id or a unique prefix of at least 8 characters; or
    use --session / --from-file. Spans whose parent was not recorded are shown under a
    placeholder, never dropped. --json prints the tree as nested JSON ({"trace_id",
    "span_count", "roots"}; several traces: {"trace_count", "span_count", "traces": [...]}).
    """
    from ._render import render_waterfall, trace_to_json, traces_to_json
    from ._tree import build_tree

    spans, _ = load_source(trace_id, session_id, from_file, db, config_path)
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    forests = [(tid, build_tree(group)) for tid, group in by_trace.items()]
    if as_json:
        if trace_id is not None and len(forests) == 1:
            _print_json(trace_to_json(*forests[0]))
        else:
            _print_json(traces_to_json(forests))
        return
    out = _stdout()
    if session_id is not None:
        out.print(
            Text.assemble(("session ", "dim"), (session_id, "bold"), (f"  {len(forests)} traces", "dim"))
        )
    for tid, roots in forests:
        out.print(render_waterfall(tid, roots))


# --------------------------------------------------------------------------- replay


def _read_text_arg(value: str | None, option: str) -> str | None:
    """TEXT, or the contents of FILE for ``@FILE`` (``@@…`` for a literal leading ``@``)."""
    if value is None or not value.startswith("@"):
        return value
    if value.startswith("@@"):
        return value[1:]
    file = Path(value[1:]).expanduser()
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {file}: {exc}", param_hint=option) from exc


def _load_callable(spec: str, option: str) -> Callable[..., Any]:
    """``module:function`` or ``path/to/file.py:function`` → the callable (cwd is importable)."""
    import importlib
    import importlib.util

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected module:function, got {spec!r}", param_hint=option)
    try:
        if module_name.endswith(".py"):
            file = Path(module_name).expanduser().resolve()
            loader_spec = importlib.util.spec_from_file_location(file.stem, file)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {file}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            cwd = str(Path.cwd())
            if cwd not in sys.path:
                sys.path.insert(0, cwd)
            module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError, OSError, SyntaxError) as exc:
        raise click.BadParameter(
            f"cannot load {spec}: {type(exc).__name__}: {exc}", param_hint=option
        ) from exc
    if not callable(fn):
        raise click.BadParameter(f"{spec} is not callable", param_hint=option)
    result: Callable[..., Any] = fn
    return result


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int, int, Any], None] | None]:
    """A rich progress bar on stderr (only when ``enabled``); yields the replay's progress callback."""
    if not enabled or total < 2:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", style="dim"),
        console=_stderr(),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)

        def update(done: int, _total: int, call: Any) -> None:
            bar.update(task, completed=done, description=f"{call.name}: {call.status}")

        yield update


@click.command(
    "replay",
    epilog="""\b
Examples:
  spanreel replay 4bf92f35
  spanreel replay 4bf92f35 --base-url http://127.0.0.1:8000/v1
  spanreel replay 4bf92f35 --model gpt-4.1 --system "Answer in one sentence."
  spanreel replay --session ticket-42 --mode cascade --system-append "Be brief." --dry-run
  spanreel replay --from-file trace.json --set temperature=0 --only 'agent/*/chat *'
  spanreel replay 4bf92f35 --hook my_hooks:redact --json | jq .totals
  spanreel replay 4bf92f35 --fail-on changed --similarity-threshold 0.9   # a CI regression check

\b
Modes: verbatim re-sends every recorded request as recorded (edits aside); cascade
substitutes each replayed call's new output into the later requests that contained the
original output (assistant text or tool calls), so a change flows through the conversation.
Credentials come from the environment only (OPENAI_API_KEY, ANTHROPIC_API_KEY, …), never
from the trace. Only the recorded host or --base-url is contacted; link-local and cloud-metadata
addresses are refused unless --allow-host. The replay is recorded as a new trace (service
spanreel-replay) linked to the original, exported to the collector running on the same
database (else to OTEL_EXPORTER_OTLP_ENDPOINT).
Exit codes: 0 ok; 1 the --fail-on check failed (a call errored, no call could be replayed, or
with --fail-on changed an output changed; with --dry-run: an edit does not fit a call, or no
call would be sent) or a user error; 2 bad usage.""",
)
@click.argument("trace_id", required=False)
@source_options
@db_options
@click.option(
    "--mode",
    type=click.Choice(["verbatim", "cascade"]),
    default="verbatim",
    show_default=True,
    help="verbatim: each request as recorded; cascade: later requests get earlier calls' new outputs.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (calls, targets, dependencies, models after the edits) and send nothing. "
    "The edits are applied to the recorded bodies (--hook runs) so an edit that does not fit a "
    "call shows as 'edit failed' (exit 1 unless --fail-on never).",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Send the requests here instead of the recorded host; its path is a mount prefix "
    "(recorded https://api.openai.com/v1/chat/completions + http://127.0.0.1:8000/v1 "
    "→ http://127.0.0.1:8000/v1/chat/completions).",
)
@click.option(
    "--model",
    default=None,
    metavar="M",
    help="Replace the request's model: the body's, or the URL path's where it names the model "
    "(Gemini, Anthropic on Vertex AI and Amazon Bedrock). Not on embeddings calls (to change "
    "those: --set model=M --only 'embeddings *').",
)
@click.option(
    "--set",
    "set_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a request body key; VALUE is JSON (temperature=0, stop='[\"\\n\"]'), else a string; "
    "a.b sets a nested key. Repeatable.",
)
@click.option(
    "--system",
    default=None,
    metavar="TEXT|@FILE",
    help="Replace the system prompt (one is inserted if absent); @FILE reads it from a file. "
    "Chat calls only (chat completions, Responses, Anthropic messages, Gemini): embeddings and "
    "legacy completions are left unchanged; a warning says when no call was changed.",
)
@click.option(
    "--system-append",
    default=None,
    metavar="TEXT|@FILE",
    help="Append to the system prompt (after a blank line); chat calls only, like --system.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="GLOB",
    help="Apply the edits only to calls whose span name ('chat gpt-4o-mini'), tree path (span "
    "names from the trace root down to the call, joined by '/': 'turn 1/plan/chat gpt-4o-mini') or "
    "spanreel.session.path ('/support/turn-2') matches the glob ('*' also matches '/'). "
    "Repeatable. A warning says when no call matches.",
)
@click.option(
    "--hook",
    default=None,
    metavar="MODULE:FUNCTION",
    help="A Python callable that receives each (edited) request body and returns the body to send.",
)
@click.option(
    "--tool-hook",
    default=None,
    metavar="MODULE:FUNCTION",
    help="Supplies tool results when a replayed output asks for a different tool call than "
    "recorded: called with (ToolCall, recorded result or None), returns the result text (a str: "
    "json.dumps a structured result; anything else, or an exception, fails the call that needed "
    "it with 'tool hook … returned/failed'). Default: reuse the recorded result.",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Independent calls sent at the same time (dependent calls always wait).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST",
    help="Allow a host that is refused by default (link-local / cloud metadata). Repeatable.",
)
@click.option(
    "--retries",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retries of a request that failed with HTTP 429 or 5xx, a connection error or a timeout.",
)
@click.option(
    "--max-retry-wait",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Cap in seconds on one wait between retries (also on a server's Retry-After).",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per request attempt (the connect, read and write timeouts; > 0).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "changed", "never"]),
    default="error",
    show_default=True,
    help="Exit 1 when a replayed call errors (error), also when an output changed (changed), or never. "
    "An answer without model output (an HTML page or {} with HTTP 200: a wrong --base-url) where the "
    "recording had one is an error. A replay that sent no call (every call skipped) fails both.",
)
@click.option(
    "--similarity-threshold",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="With --fail-on changed: an output counts as changed when its word similarity to the "
    "original is below this (1.0: any change).",
)
@click.option("--no-diff", is_flag=True, help="Do not print the unified diffs under the table.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway without a terminal).")
@_json_option
def replay_command(
    trace_id: str | None,
    session_id: str | None,
    from_file: Path | None,
    db: str | None,
    config_path: str | None,
    mode: str,
    dry_run: bool,
    base_url: str | None,
    model: str | None,
    set_values: tuple[str, ...],
    system: str | None,
    system_append: str | None,
    only: tuple[str, ...],
    hook: str | None,
    tool_hook: str | None,
    concurrency: int,
    allow_hosts: tuple[str, ...],
    retries: int,
    max_retry_wait: float,
    timeout: float,
    fail_on: str,
    similarity_threshold: float,
    no_diff: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Re-send the recorded LLM requests of TRACE_ID (or --session / --from-file) and compare
    each with the original.

    Every LLM call recorded with its request (content capture on; for other instrumentations,
    their recorded messages) is sent again, verbatim unless edited, dependencies first and up
    to --concurrency at a time. The report pairs each original call with its replay: outputs
    side by side with a unified diff and a similarity score, tokens, latency, cost, finish
    reason and their deltas, and tool-call divergences.
    """
    from ._edits import ReplayEdits, parse_set, validate_only
    from ._execute import execute_plan, prepare_replay
    from ._plan import rewrite_url
    from ._render import plan_to_json, render_plan
    from ._report import judge, render_report, report_to_json
    from ._safety import RetryPolicy

    if base_url is not None:
        try:
            rewrite_url("http://localhost/", base_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--base-url") from exc
    try:
        params = tuple(parse_set(v) for v in set_values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from exc
    try:
        patterns = validate_only(only)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from exc
    edits = ReplayEdits(
        model=model,
        system=_read_text_arg(system, "--system"),
        system_append=_read_text_arg(system_append, "--system-append"),
        params=params,
        only=patterns,
        hook=_load_callable(hook, "--hook") if hook else None,
        hook_name=hook,
    )
    tool_results = _load_callable(tool_hook, "--tool-hook") if tool_hook else None
    path = resolve_db(db, config_path)
    spans, _ = load_source(trace_id, session_id, from_file, db, config_path)
    plan = prepare_replay(
        spans, mode="cascade" if mode == "cascade" else "verbatim", edits=edits, session_id=session_id
    )
    err = _stderr()
    if dry_run:
        data = plan_to_json(plan, base_url)
        if as_json:
            _print_json(data)
        else:
            _stdout().print(render_plan(plan, base_url, data))
        for warning in data["warnings"]:
            err.print(f"warning: {warning}", style="yellow", markup=False)
        # As the replay itself would fail the check: an edit that does not fit, or no call to send.
        nothing = not any(c["replayable"] for c in data["calls"])
        if fail_on != "never" and (nothing or any(c["edit_error"] for c in data["calls"])):
            sys.exit(1)
        return
    show_progress = not (as_json or no_progress) and err.is_terminal
    total = sum(1 for c in plan.calls if c.replayable)
    with _progress_bar(show_progress, total) as progress:
        result = execute_plan(
            plan,
            db_path=path,
            base_url=base_url,
            concurrency=concurrency,
            retry=RetryPolicy(max_retries=retries, max_delay=max_retry_wait),
            allowed_hosts=allow_hosts,
            tool_results=tool_results,
            span_exporter=None,
            http_timeout=timeout,
            environ=os.environ,
            progress=progress,
        )
    fail: FailOn = "changed" if fail_on == "changed" else "never" if fail_on == "never" else "error"
    options: dict[str, Any] = {"fail_on": fail, "similarity_threshold": similarity_threshold}
    if as_json:
        _print_json(report_to_json(result, **options))
    else:
        _stdout().print(render_report(result, diffs=not no_diff, **options))
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False)
    if judge(result, fail, similarity_threshold).failed:
        sys.exit(1)
