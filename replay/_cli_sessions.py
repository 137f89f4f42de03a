"""``spanreel sessions``: the most recent sessions, one row each (the ``sessions`` view).

Finds the database like the other query commands (:mod:`spanreel.replay._cli`) and reads it
through :func:`spanreel.collector.run_query`, so it works while a collector is writing to it.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from spanreel._trace_sql import RECENT_SESSIONS_SQL, SESSIONS_BY_ID_SQL

from ._cli import _fmt_duration_ns, _fmt_start, _fmt_tokens, _json_option, _print_json, _stderr, _stdout
from ._cli_common import db_options, resolve_db, terminal_safe, user_errors
from ._cost import format_usd

__all__ = ["sessions_command"]


@click.command(
    "sessions",
    epilog="""\b
Examples:
  spanreel sessions
  spanreel sessions --limit 5 --json
  spanreel show --session ticket-42      # the session's traces as span trees
  spanreel replay --session ticket-42    # re-run its LLM calls
  spanreel sql "SELECT * FROM sessions WHERE user_id = 'alice' ORDER BY start_time DESC\"""",
)
@db_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many sessions.")
@_json_option
def sessions_command(db: str | None, config_path: str | None, limit: int, as_json: bool) -> None:
    """List recent sessions, newest first: session id, name, user, start (UTC), duration,
    traces, LLM calls, errors, tokens in/out, cost (USD, when recorded).

    A session is every span carrying the same `session.id` (set by spanreel.session(), by
    baggage from an upstream service, or by another instrumentation's session attribute), over
    all its traces. With --json: a list of objects with the columns of the `sessions` view
    (docs/schema.md).
    """
    from spanreel.collector import run_query

    path = resolve_db(db, config_path)
    with user_errors():
        ids = [str(row[0]) for row in run_query(RECENT_SESSIONS_SQL, path, params=[limit]).rows]
        result = run_query(SESSIONS_BY_ID_SQL, path, params=[ids]) if ids else None
    records: list[dict[str, Any]] = []
    if result is not None:
        columns = list(result.columns)
        records = [dict(zip(columns, row, strict=True)) for row in result.rows]
    if as_json:
        _print_json(records)
        return
    if not records:
        _stderr().print(f"no sessions in {path} (spans get one inside spanreel.session(...))")
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("session id", overflow="fold", min_width=12)
    table.add_column("name", overflow="fold")
    table.add_column("user", overflow="fold")
    table.add_column("start (UTC)", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("traces", justify="right")
    table.add_column("LLM calls", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("tokens in/out", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for rec in records:
        errors = int(rec.get("error_count") or 0)
        table.add_row(
            Text(terminal_safe(str(rec["session_id"])), style="bold"),
            Text(terminal_safe(str(rec.get("session_name") or ""))),
            Text(terminal_safe(str(rec.get("user_id") or ""))),
            _fmt_start(rec.get("start_time")),
            _fmt_duration_ns(rec.get("duration_ns")),
            str(rec.get("trace_count") or 0),
            str(rec.get("llm_calls") or 0),
            Text(str(errors), style="red" if errors else ""),
            _fmt_tokens(rec),
            format_usd(rec.get("cost_usd")) or "",
        )
    _stdout().print(table)
