"""The offline commands: ``spanreel serve-recorded`` and ``spanreel export``.

Both take their spans from one source: a TRACE_ID (full id or unique prefix ≥ 8 hex chars),
``--session ID`` (the session's spans: ``load_session``) or ``--from-file F`` (an OTLP JSON file), and
``export`` also ``--where SQL``. The database is found like the other query commands (``--db``,
``SPANREEL_DB``, ``--config``, the default path) and read through the read-only query path, so
they work while a collector runs. User errors are one line on stderr with exit code 1.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from ._cli_common import db_options, load_source, one_source, resolve_db, source_options, user_errors

if TYPE_CHECKING:
    from ._serve import ServedRequest

__all__ = ["export_command", "serve_recorded_command"]


def _log_request(served: ServedRequest) -> None:
    where = f"{served.status} {served.method} {served.path}"
    if served.exchange is not None:
        click.echo(f"{where} <- {served.exchange.label}", err=True)
    elif served.closest is not None:
        click.echo(f"{where}: no recorded match; {served.closest.describe()}", err=True)
    else:
        click.echo(f"{where}: not served", err=True)


@click.command(
    "serve-recorded",
    epilog="""\b
Examples:
  spanreel serve-recorded 4bf92f35 --port 8000
  spanreel serve-recorded --session ticket-42
  spanreel serve-recorded --from-file tests/fixtures/debate.json
  OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=unused python my_app.py

\b
Matching: same API (…/chat/completions or …/messages) and the same JSON body, ignoring key
order, whitespace and the fields stream and stream_options (a streamed recording is served as
JSON and vice versa, following the request). Repeated identical requests get the recorded
answers in order, then the last one again. No match: HTTP 404 naming the closest recorded
request and how it differs.""",
)
@click.argument("trace_id", required=False)
@source_options
@db_options
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it on loopback)."
)
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one.",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not log each request on stderr.")
def serve_recorded_command(
    trace_id: str | None,
    db: str | None,
    config_path: str | None,
    session_id: str | None,
    from_file: Path | None,
    host: str,
    port: int,
    quiet: bool,
) -> None:
    """Answer OpenAI/Anthropic API requests with the responses recorded in a trace, offline.

    Give TRACE_ID, --session ID or --from-file PATH. Prints the base URLs to use on stdout
    (OPENAI_BASE_URL=… and ANTHROPIC_BASE_URL=…), then serves until Ctrl-C or SIGTERM. Each
    request is logged on stderr with the recorded call that answered it.
    """
    from ._recorded import exchanges_from_spans
    from ._serve import RecordedServer

    spans, what = load_source(trace_id, session_id, from_file, db, config_path)
    exchanges, unservable = exchanges_from_spans(spans)
    for call in unservable:
        click.echo(f"not servable: {call.span.name} (span {call.span.span_id}): {call.reason}", err=True)
    if not exchanges:
        raise click.ClickException(
            f"{what} has no servable LLM call ({len(unservable)} not servable, listed above)"
        )
    server = RecordedServer(exchanges, host=host, port=port, on_request=None if quiet else _log_request)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        click.echo(
            f"serving {len(exchanges)} recorded LLM call(s) from {what} at {server.base_url}", err=True
        )
        click.echo(f"OPENAI_BASE_URL={server.openai_base_url}")
        click.echo(f"ANTHROPIC_BASE_URL={server.anthropic_base_url}")
        click.echo("Press Ctrl-C to stop.", err=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        misses = len(server.unmatched)
        click.echo(f"stopped: {len(server.served)} request(s), {misses} without a recorded match", err=True)


# --------------------------------------------------------------------------- export


@click.command(
    "export",
    epilog="""\b
Examples:
  spanreel export 4bf92f35 --format openai-jsonl -o train.jsonl
  spanreel export --session ticket-42 --format otlp-json -o session.json
  spanreel export --where "request_model = 'gpt-4o-mini' AND status_code <> 'ERROR'" --format openai-jsonl
  spanreel export --where "start_time > TIMESTAMP '2026-11-01'" --format parquet -o spans.parquet
  spanreel export --where "trace_id IN (SELECT trace_id FROM traces WHERE llm_calls > 2)" \\
      --format parquet -o t.parquet

\b
--where is a DuckDB boolean expression over the columns of `spans` (times are UTC TIMESTAMP_NS;
subqueries may read llm_calls and traces); it selects spans, run through the read-only query path.
openai-jsonl writes one fine-tuning example per LLM call among them; parquet one row per span;
otlp-json the spans grouped by resource and scope, loadable with --from-file.""",
)
@click.argument("trace_id", required=False)
@source_options
@db_options
@click.option(
    "--where", "where", default=None, metavar="SQL", help="Select spans with a WHERE clause (see below)."
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["openai-jsonl", "parquet", "otlp-json"]),
    help="openai-jsonl: chat fine-tuning examples; parquet: span rows; otlp-json: OTLP/JSON traces.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Output file (default: stdout; required for parquet).",
)
def export_command(
    trace_id: str | None,
    db: str | None,
    config_path: str | None,
    session_id: str | None,
    from_file: Path | None,
    where: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export recorded spans as fine-tuning JSONL, Parquet or OTLP JSON.

    Give TRACE_ID, --session ID, --where SQL or --from-file PATH. A summary (and any LLM call left
    out of the JSONL, with the reason) goes to stderr.
    """
    from ._export import export_text, fetch_span_rows, write_parquet

    one_source(TRACE_ID=trace_id, **{"--session": session_id, "--where": where, "--from-file": from_file})
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a binary file: give -o FILE")
    with user_errors():
        if from_file is not None:
            from ._otlp_file import read_trace_file

            rows = read_trace_file(from_file)
        else:
            rows = fetch_span_rows(
                resolve_db(db, config_path), trace_id=trace_id, session_id=session_id, where=where
            )
        skipped: list[tuple[str, str]] = []
        if fmt == "parquet":
            assert output is not None
            count, unit = write_parquet(rows, output), "span row"
        else:
            text, count, skipped = export_text(rows, fmt)
            unit = "fine-tuning example" if fmt == "openai-jsonl" else "span"
            if output is None:
                click.echo(text, nl=False)
            else:
                try:
                    output.write_text(text, encoding="utf-8")
                except OSError as exc:
                    raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    for span_id, reason in skipped:
        click.echo(f"skipped LLM call (span {span_id}): {reason}", err=True)
    where_to = str(output) if output is not None else "stdout"
    summary = f"wrote {count} {unit}{'s' if count != 1 else ''} to {where_to}"
    if skipped:
        summary += f" ({len(skipped)} LLM call{'s' if len(skipped) != 1 else ''} skipped, listed above)"
    click.echo(summary, err=True)
