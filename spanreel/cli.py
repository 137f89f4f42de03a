"""The ``spanreel`` command line (click). Sub-commands live beside the code they drive and are
imported only when invoked, so ``spanreel --help`` stays fast."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

from spanreel import __version__

#: sub-command name -> (module, attribute, one-line help shown by ``spanreel --help``)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("spanreel._demo", "demo_command", "Run the whole loop: record a debate, query it, replay it."),
    "collector": (
        "spanreel.collector._cli",
        "collector_command",
        "Receive OTLP traces and store them in DuckDB.",
    ),
    "prune": ("spanreel.collector._cli", "prune_command", "Delete traces older than a duration."),
    "sql": ("spanreel.replay._cli", "sql_command", "Run a read-only SQL query over the stored spans."),
    "traces": ("spanreel.replay._cli", "traces_command", "List recent traces."),
    "sessions": ("spanreel.replay._cli_sessions", "sessions_command", "List recent sessions."),
    "show": ("spanreel.replay._cli", "show_command", "Show one trace as a span tree."),
    "ui": ("spanreel.collector._ui_cli", "ui_command", "Open the trace viewer in a browser."),
    "replay": ("spanreel.replay._cli", "replay_command", "Re-run a recorded trace's LLM calls and compare."),
    "serve-recorded": (
        "spanreel.replay._cli_offline",
        "serve_recorded_command",
        "Answer OpenAI/Anthropic requests with recorded responses, offline.",
    ),
    "export": (
        "spanreel.replay._cli_offline",
        "export_command",
        "Export spans as fine-tuning JSONL, Parquet or OTLP JSON.",
    ),
    "fake-llm": (
        "spanreel.fakellm",
        "fake_llm_command",
        "Serve the deterministic fake LLM (OpenAI, Anthropic, Gemini, Azure paths) for tests and demos.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@contextmanager
def _spanreel_warnings() -> Iterator[None]:
    """For one command: spanreel's own warnings (e.g. an outdated database file) as one
    ``spanreel: warning: …`` line on stderr, each text once, not Python's ``file:line: Category``
    with the source line; other libraries' warnings are shown as Python shows them."""
    with warnings.catch_warnings():
        shown = warnings.showwarning
        warnings.filterwarnings("once", module=r"spanreel(\.|$)")

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if category.__module__.split(".")[0] == "spanreel":
                click.echo(f"spanreel: warning: {message}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spanreel")
@click.pass_context
def main(ctx: click.Context) -> None:
    """spanreel — record, query and replay LLM conversations with OpenTelemetry.

    \b
    Record:  SPANREEL_ENABLED=1 python your_app.py   (no code change)
    Collect: spanreel collector                      (OTLP gRPC :4317, HTTP :4318 -> DuckDB)
    Query:   spanreel traces | sessions | show TRACE_ID | sql "SELECT ..."
    Replay:  spanreel replay TRACE_ID [--model M] [--base-url URL]

    Try `spanreel demo` to see the whole loop on a local fake LLM server.
    """
    ctx.with_resource(_spanreel_warnings())


def run(args: list[str] | None = None) -> Any:
    """Entry point for ``python -m spanreel``."""
    return main.main(args=args, prog_name="spanreel")
