"""The query and replay commands: ``spanreel sql``, ``traces``, ``show`` and ``replay``.

All four find the database the same way (``--db``, ``SPANREEL_DB``, ``--config`` /
``./otel-config.yaml``, the default path; see :mod:`spanreel._config`) and read it through
:func:`spanreel.collector.run_query`, so they work while a collector is writing to it.
With ``--json`` only machine-readable JSON goes to stdout; notes and warnings go to stderr.
User errors (unknown trace, no database, bad SQL) are one-line messages with exit code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["replay_command", "show_command", "sql_command", "traces_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _db_options(func: F) -> F:
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Collector config file (otel-config.yaml) whose exporters.duckdb.path names the database.",
    )(func)
    func = click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=None,
        envvar="SPANREEL_DB",
        show_envvar=True,
        help="DuckDB file to read (default: from --config, else ~/.local/share/spanreel/spanreel.duckdb).",
    )(func)
    return func


def _json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (only JSON) on stdout.")(func)


def _resolve_db(db: str | None, config_path: str | None) -> Path:
    from spanreel._config import ConfigError, resolve_db_path

    try:
        return resolve_db_path(db, config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the expected failures into one-line click errors (no traceback)."""
    from spanreel.collector import NoDatabaseError, QueryError

    from ._load import TraceLookupError

    try:
        yield
    except (NoDatabaseError, QueryError, TraceLookupError) as exc:
        raise click.ClickException(str(exc)) from exc


#: Width used when stdout is not a terminal (pipes, files): tables keep their natural width
#: instead of being squeezed to 80 columns.
_PIPE_WIDTH = 240


def _stdout() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


# --------------------------------------------------------------------------- sql


@click.command(
    "sql",
    epilog="""\b
Examples:
  spanreel sql "SELECT name, count(*) FROM spans GROUP BY name ORDER BY 2 DESC"
  spanreel sql "SELECT request_model, sum(output_tokens) FROM llm_calls GROUP BY 1" --json
  spanreel sql "SELECT * FROM traces ORDER BY start_time DESC LIMIT 5" --db ./spanreel.duckdb

Tables and views: spans, llm_calls, traces, trace_index (docs/internals.md §2).""",
)
@click.argument("query")
@_db_options
@_json_option
def sql_command(query: str, db: str | None, config_path: str | None, as_json: bool) -> None:
    """Run a read-only SQL QUERY over the stored spans (DuckDB SQL).

    Prints a table, or with --json {"columns": [...], "rows": [[...], ...]}.
    Only read-only statements are allowed.
    """
    from spanreel.collector import run_query

    path = _resolve_db(db, config_path)
    with _user_errors():
        result = run_query(query, path)
    if as_json:
        _print_json({"columns": list(result.columns), "rows": [list(r) for r in result.rows]})
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


def _natural_width(columns: list[str], cells: list[list[Text]], cap: int = 40) -> int:
    """Width a plain table would need, each column capped at ``cap`` characters."""
    total = 1
    for i, col in enumerate(columns):
        longest = max([len(col), *(min(cap, cell.cell_len) for row in cells for cell in row[i : i + 1])])
        total += longest + 3
    return total


# --------------------------------------------------------------------------- traces

_TRACES_SQL = """
SELECT trace_id, root_name, service_name, start_time, duration_ns, span_count, llm_calls,
       input_tokens, output_tokens, session_id
FROM traces
ORDER BY start_time DESC
LIMIT ?
"""


def _fmt_duration_ns(value: Any) -> str:
    if value is None:
        return ""
    ms = int(value) / 1e6
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


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
  spanreel show $(spanreel traces --limit 1 --json | jq -r '.[0].trace_id')""",
)
@_db_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many traces.")
@_json_option
def traces_command(db: str | None, config_path: str | None, limit: int, as_json: bool) -> None:
    """List recent traces, newest first: id, root span, service, start (UTC), duration,
    span count, LLM calls, tokens in/out.

    With --json: a list of objects with the columns of the `traces` view.
    """
    from spanreel.collector import run_query

    path = _resolve_db(db, config_path)
    with _user_errors():
        result = run_query(_TRACES_SQL, path, params=[limit])
    columns = list(result.columns)
    records = [dict(zip(columns, row, strict=True)) for row in result.rows]
    if as_json:
        _print_json(records)
        return
    if not records:
        _stderr().print(f"no traces in {path}")
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
    for rec in records:
        tokens = ""
        if rec.get("input_tokens") is not None or rec.get("output_tokens") is not None:
            tokens = f"{rec.get('input_tokens') or 0}/{rec.get('output_tokens') or 0}"
        table.add_row(
            Text(str(rec["trace_id"]), style="bold"),
            Text(str(rec.get("root_name") or "")),
            Text(str(rec.get("service_name") or "")),
            _fmt_start(rec.get("start_time")),
            _fmt_duration_ns(rec.get("duration_ns")),
            str(rec.get("span_count") or 0),
            str(rec.get("llm_calls") or 0),
            tokens,
        )
    _stdout().print(table)


# --------------------------------------------------------------------------- show


@click.command(
    "show",
    epilog="""\b
Examples:
  spanreel show 4bf92f3577b34da6a3ce929d0e0e4736
  spanreel show 4bf92f35            # a unique prefix of at least 8 hex characters
  spanreel show 4bf92f35 --json     # nested JSON with every attribute""",
)
@click.argument("trace_id")
@_db_options
@_json_option
def show_command(trace_id: str, db: str | None, config_path: str | None, as_json: bool) -> None:
    """Show one trace as a span tree: name, duration, model, tokens in→out, status.

    TRACE_ID is the 32-hex-character trace id or a unique prefix of at least 8 characters.
    Spans whose parent was not recorded are shown under a placeholder, never dropped.
    """
    from ._load import load_trace
    from ._render import render_tree, trace_to_json
    from ._tree import build_tree

    path = _resolve_db(db, config_path)
    with _user_errors():
        spans = load_trace(trace_id, path)
    roots = build_tree(spans)
    if as_json:
        _print_json(trace_to_json(spans[0].trace_id, roots))
        return
    _stdout().print(render_tree(spans[0].trace_id, roots))


# --------------------------------------------------------------------------- replay


@click.command(
    "replay",
    epilog="""\b
Examples:
  spanreel replay 4bf92f35
  spanreel replay 4bf92f35 --base-url http://127.0.0.1:8000/v1
  spanreel replay 4bf92f35 --model gpt-4.1 --system "Answer in one sentence."
  spanreel replay 4bf92f35 --json | jq .totals

\b
Credentials come from the environment only (OPENAI_API_KEY, ANTHROPIC_API_KEY, …),
never from the trace. The replay is recorded as a new trace (service spanreel-replay)
linked to the original, exported to the collector running on the same database
(else to OTEL_EXPORTER_OTLP_ENDPOINT).""",
)
@click.argument("trace_id")
@_db_options
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Send the requests here instead of the recorded host; its path is a mount prefix "
    "(recorded https://api.openai.com/v1/chat/completions + http://127.0.0.1:8000/v1 "
    "→ http://127.0.0.1:8000/v1/chat/completions).",
)
@click.option("--model", default=None, metavar="M", help="Replace the request body's model.")
@click.option(
    "--system",
    default=None,
    metavar="TEXT",
    help="Replace the system prompt (the system message's content; one is inserted if absent).",
)
@click.option("--timeout", default=120.0, show_default=True, type=float, help="Seconds per request.")
@_json_option
def replay_command(
    trace_id: str,
    db: str | None,
    config_path: str | None,
    base_url: str | None,
    model: str | None,
    system: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Re-send the recorded LLM requests of TRACE_ID and compare each with the original.

    Every LLM call recorded with its request (content capture on) is sent again, verbatim
    unless edited with --model / --system, in the original order. The report pairs each
    original call with its replay: output text side by side, tokens, latency, finish reason,
    status. Exit code 0 when every replayed call succeeded, 1 otherwise.
    """
    from ._execute import replay_trace
    from ._plan import rewrite_url
    from ._report import render_report, report_to_json

    if base_url is not None:
        try:
            rewrite_url("http://localhost/", base_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--base-url") from exc
    path = _resolve_db(db, config_path)
    with _user_errors():
        result = replay_trace(
            trace_id, path, base_url=base_url, model=model, system=system, http_timeout=timeout
        )
    err = _stderr()
    if as_json:
        _print_json(report_to_json(result))
    else:
        _stdout().print(render_report(result))
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False)
    if not result.ok:
        sys.exit(1)
