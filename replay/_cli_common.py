"""What the replay package's commands share: choosing the database and the spans to work on.

``spanreel sql`` / ``traces`` take the database options; ``show``, ``replay``,
``serve-recorded`` and ``export`` also take a source: a TRACE_ID (full id or unique prefix of at
least 8 hex characters), ``--session ID`` (the session's spans: ``load_session``) or ``--from-file PATH``
(an OTLP JSON file). The database is found by ``--db``, ``SPANREEL_DB``, ``--config`` /
``./otel-config.yaml``, then the default path (:func:`spanreel._config.resolve_db_path`). The
expected failures become one-line :class:`click.ClickException` errors (exit code 1), a wrong
choice of source a :class:`click.UsageError` (exit code 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.segment import Segment

if TYPE_CHECKING:
    from ._load import SpanRecord

__all__ = [
    "SafeConsole",
    "db_options",
    "load_source",
    "one_source",
    "resolve_db",
    "source_options",
    "terminal_safe",
    "user_errors",
]

F = TypeVar("F", bound=Callable[..., Any])


def db_options(func: F) -> F:
    """``--config PATH`` (``config_path``) and ``--db PATH`` / ``SPANREEL_DB`` (``db``)."""
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


def _strip_session_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--session``'s value without leading and trailing whitespace: the collector stores
    ``session_id`` stripped (collector/_normalise.py ``as_text``), so a padded id is found."""
    return None if value is None else value.strip()


def source_options(func: F) -> F:
    """``--from-file PATH`` (``from_file``, a :class:`~pathlib.Path`) and ``--session ID``
    (``session_id``); the command takes the optional TRACE_ID argument itself."""
    func = click.option(
        "--from-file",
        "from_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        metavar="PATH",
        help="Read the spans from an OTLP JSON file (as exported by `spanreel export --format "
        "otlp-json`, the OpenTelemetry Collector's file exporter, Jaeger, Tempo …) instead of the database.",
    )(func)
    func = click.option(
        "--session",
        "session_id",
        default=None,
        metavar="ID",
        callback=_strip_session_id,
        help="The spans with this session.id (and the parent spans around them), trace by trace in "
        "time order; a trace where it is the only session is taken whole. Leading and trailing "
        "whitespace is ignored, as the collector strips it from the stored id.",
    )(func)
    return func


def resolve_db(db: str | None, config_path: str | None) -> Path:
    """The database file chosen by the options (:class:`click.ClickException` for a bad config)."""
    from spanreel._config import ConfigError, resolve_db_path

    try:
        return resolve_db_path(db, config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _expected_errors() -> tuple[type[Exception], ...]:
    from spanreel.collector import NoDatabaseError, QueryError

    from ._export import ExportError
    from ._load import TraceFileError, TraceLookupError

    return NoDatabaseError, QueryError, TraceLookupError, TraceFileError, ExportError


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the expected failures (no database, bad SQL, unknown trace, unreadable trace file,
    export errors) into one-line click errors (no traceback); others propagate."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, _expected_errors()):  # imported only on failure: they are heavy
            raise click.ClickException(str(exc)) from exc
        raise


def one_source(**given: Any) -> None:
    """Check that exactly one of the ``given`` sources (name → value or ``None``) was chosen;
    :class:`click.UsageError` naming them otherwise."""
    chosen = [name for name, value in given.items() if value is not None]
    if len(chosen) != 1:
        names = ", ".join(given)
        raise click.UsageError(
            f"give exactly one source: {names}" + (f" (got {', '.join(chosen)})" if chosen else "")
        )


def load_source(
    trace_id: str | None,
    session_id: str | None,
    from_file: Path | None,
    db: str | None,
    config_path: str | None,
) -> tuple[list[SpanRecord], str]:
    """The spans of the one chosen source (TRACE_ID, ``--session`` or ``--from-file``) and a
    short description of it for messages (``trace 4bf9…``, ``session 'ticket-42'``, the file)."""
    from ._load import load_session, load_trace, load_trace_file

    one_source(TRACE_ID=trace_id, **{"--session": session_id, "--from-file": from_file})
    with user_errors():
        if from_file is not None:
            return load_trace_file(from_file), str(from_file)
        path = resolve_db(db, config_path)
        if session_id is not None:
            return load_session(session_id, path), f"session {session_id!r}"
        assert trace_id is not None
        spans = load_trace(trace_id, path)
        return spans, f"trace {spans[0].trace_id}"


#: C0 control characters but tab and newline, DEL and the C1 controls → visible ``\xNN`` escapes.
_CONTROL_ESCAPES: dict[int, str] = {
    code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if code not in (0x09, 0x0A)
}


def terminal_safe(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN``: span data comes from any OTLP sender,
    and an escape sequence in a span name must not clear the screen or retitle the window."""
    return text.translate(_CONTROL_ESCAPES)


class SafeConsole(Console):
    """A rich :class:`~rich.console.Console` that prints text through :func:`terminal_safe`
    (rich's own control output — styles, cursor moves — is left as is)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )
