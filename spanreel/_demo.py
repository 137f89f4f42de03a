"""``spanreel demo``: the whole loop — record, collect, query, replay — on one real conversation.

Steps (each is a real process or server, nothing is simulated inside spanreel itself):

1. start ``spanreel collector`` on the DB (or reuse one already running on it),
2. start the deterministic OpenAI-compatible :class:`spanreel.fakellm.FakeLLMServer`
   (skipped with ``--base-url``, which targets a real provider using ``OPENAI_API_KEY``),
3. run :mod:`spanreel._demo_app` — a multi-turn debate written with the plain ``openai`` SDK — in a
   child process whose only spanreel switch is ``SPANREEL_ENABLED=1``,
4. wait until the collector has committed the trace, then run ``spanreel show``, ``spanreel sql`` and
   ``spanreel replay --system …`` exactly as a user would, printing each command first,
5. stop the collector it started (SIGTERM: drain and exit 0) and print the next commands to try.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console

from spanreel._config import ConfigError, check_db_file, resolve_db_path

DEFAULT_EDIT = "You argue with one vivid, concrete example and end with a question to the other side."
_SPANREEL_ENV = ("SPANREEL_ENABLED",)


def _clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without spanreel's own switch, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _SPANREEL_ENV}
    env.update(extra)
    return env


#: ``python -P -m``: the current directory is not put on ``sys.path`` (Python ≥ 3.11), so a folder
#: named ``spanreel`` there (a clone, a data directory) cannot shadow the installed package.
_PYTHON_M: Final = (sys.executable, "-P", "-m")


def _spanreel_cmd(*args: str) -> list[str]:
    return [*_PYTHON_M, "spanreel", *args]


@contextmanager
def _collector(console: Console, db: Path) -> Iterator[dict[str, Any]]:
    """Yield the running collector's discovery info for ``db``, starting one if none runs."""
    from spanreel.collector import running_collector

    info = running_collector(db)
    if info is not None:
        console.print(f"Using the collector already running on {db} (pid {info.pid}).")
        yield {"grpc_endpoint": info.grpc_endpoint, "http_endpoint": info.http_endpoint}
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        folder = str(db.parent)
        raise click.ClickException(f"cannot create the database's folder {folder!r}: {exc.strerror}") from exc
    cmd = _spanreel_cmd(
        "collector", "--db", str(db),
        "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--query-endpoint", "127.0.0.1:0",
    )  # fmt: skip
    console.print(f"[dim]$ spanreel {shlex.join(cmd[len(_PYTHON_M) + 1 :])}[/dim]")
    proc = subprocess.Popen(
        cmd, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            info = running_collector(db)
            if info is not None and info.pid == proc.pid:
                break
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise click.ClickException(
                    f"the collector exited with code {proc.returncode}:\n{err.strip()}"
                )
            if time.monotonic() > deadline:
                raise click.ClickException("the collector did not start within 60 s")
            time.sleep(0.1)
        console.print(
            f"Collector up: OTLP gRPC {info.grpc_endpoint}, OTLP/HTTP {info.http_endpoint}, DB {db}"
        )
        yield {"grpc_endpoint": info.grpc_endpoint, "http_endpoint": info.http_endpoint}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            console.print(f"Collector stopped (exit code {code}).")


def _run_app(console: Console, env: dict[str, str]) -> dict[str, Any]:
    """Run the debate app; echo its output; return its ``SPANREEL_DEMO`` summary line."""
    proc = subprocess.Popen(
        [*_PYTHON_M, "spanreel._demo_app"], env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    summary: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("SPANREEL_DEMO "):
            summary = json.loads(line.split(" ", 1)[1])
        else:
            console.out(line.rstrip("\n"), highlight=False)
    if proc.wait() != 0 or summary is None:
        raise click.ClickException(f"the demo app failed (exit code {proc.returncode})")
    return summary


def _wait_for_trace(db: Path, trace_id: str, llm_calls: int, timeout: float = 30.0) -> None:
    """Poll the collector until ``llm_calls`` LLM spans of ``trace_id`` are committed."""
    from spanreel.collector import run_query

    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        res = run_query("SELECT count(*) FROM llm_calls WHERE trace_id = ?", db, [trace_id])
        stored = int(res.rows[0][0])
        roots = run_query(
            "SELECT count(*) FROM spans WHERE trace_id = ? AND parent_span_id IS NULL", db, [trace_id]
        )
        if stored >= llm_calls and int(roots.rows[0][0]) >= 1:
            return
        time.sleep(0.2)
    raise click.ClickException(
        f"only {stored} of {llm_calls} LLM spans of trace {trace_id} arrived in {timeout:.0f} s"
    )


def _show_cli(console: Console, title: str, args: list[str]) -> None:
    console.rule(f"[bold]{title}")
    console.print(f"[dim]$ spanreel {shlex.join(args)}[/dim]")
    proc = subprocess.run(_spanreel_cmd(*args), env=_clean_env(), text=True, capture_output=True)
    console.out(proc.stdout.rstrip("\n"), highlight=False)
    if proc.returncode != 0:
        console.print(f"[red]exit code {proc.returncode}[/red] {proc.stderr.strip()}")


@click.command("demo")
@click.option(
    "--db", "db_opt", type=click.Path(dir_okay=False), help="DuckDB file (default: as for every command)."
)
@click.option("--base-url", help="Use a real OpenAI-compatible provider instead of the local fake server "
              "(its key from OPENAI_API_KEY).")  # fmt: skip
@click.option("--model", default="gpt-4o-mini", show_default=True, help="Model for the two debaters.")
@click.option("--judge-model", default="gpt-4.1-nano", show_default=True, help="Model for the judge.")
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1, 10), help="Debate rounds.")
@click.option("--system", "system_edit", default=DEFAULT_EDIT, show_default=True,
              help="The edited system prompt used for the replay.")  # fmt: skip
def demo_command(
    db_opt: str | None, base_url: str | None, model: str, judge_model: str, rounds: int, system_edit: str
) -> None:
    """Run the whole spanreel loop on a real conversation, end to end.

    Starts a collector (or reuses the one running on the DB), starts a local deterministic
    OpenAI-compatible server, runs a debate (two debaters and a judge, streaming and
    non-streaming calls, one session) with the real `openai` SDK in a child process that only has
    SPANREEL_ENABLED=1, then shows the session tree, a SQL query, and a replay with an edited
    system prompt. With --base-url it talks to a real provider instead (costs real tokens).

    \b
    Examples:
      spanreel demo
      spanreel demo --db /tmp/demo.duckdb --rounds 1
      OPENAI_API_KEY=sk-... spanreel demo --base-url https://api.openai.com/v1
    """
    from spanreel.fakellm import FakeLLMServer

    if importlib.util.find_spec("openai") is None:  # the debate app is an openai SDK client
        raise click.ClickException(
            "spanreel demo runs its debate app with the openai SDK, which is not installed here: "
            'pip install openai (or, from a clone, pip install -e ".[test]"), then run it again'
        )
    console = Console(soft_wrap=True)
    try:
        db = resolve_db_path(db_opt)
        check_db_file(db, "--db" if db_opt else "the database path")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if base_url and not os.environ.get("OPENAI_API_KEY"):
        raise click.ClickException("--base-url needs OPENAI_API_KEY in the environment")

    fake = None if base_url else FakeLLMServer(port=0)
    if fake is not None:
        fake.start()
    llm_url = base_url or (fake.base_url if fake else "")
    try:
        with _collector(console, db) as endpoints:
            console.rule("[bold]1. Record: a debate, run with SPANREEL_ENABLED=1 (no code change)")
            console.print(f"LLM server: {llm_url}{'' if base_url else ' (spanreel fake-llm: deterministic)'}")
            app_env = _clean_env(
                SPANREEL_ENABLED="1",
                OTEL_SERVICE_NAME="debate-app",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{endpoints['http_endpoint']}",
                OPENAI_BASE_URL=llm_url,
                OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY", "sk-spanreel-demo")
                if base_url
                else "sk-spanreel-demo",
                SPANREEL_DEMO_MODEL=model,
                SPANREEL_DEMO_JUDGE_MODEL=judge_model,
                SPANREEL_DEMO_ROUNDS=str(rounds),
            )
            summary = _run_app(console, app_env)
            trace_id = str(summary["trace_id"])
            _wait_for_trace(db, trace_id, int(summary["llm_calls"]))
            _show_cli(console, "2. The session tree", ["show", trace_id, "--db", str(db)])
            sql = (
                "SELECT request_model, count(*) AS calls, sum(input_tokens) AS input_tokens, "
                "sum(output_tokens) AS output_tokens FROM llm_calls "
                f"WHERE trace_id = '{trace_id}' GROUP BY request_model ORDER BY request_model"
            )
            _show_cli(
                console, "3. SQL over the stored spans: tokens per model", ["sql", sql, "--db", str(db)]
            )
            replay_args = ["replay", trace_id, "--db", str(db), "--system", system_edit]
            if fake is not None:
                replay_args += ["--base-url", fake.base_url]
            _show_cli(console, "4. Replay with an edited system prompt", replay_args)
    finally:
        if fake is not None:
            fake.stop()

    console.rule("[bold]Next")
    console.print(f"Trace id: [bold]{trace_id}[/bold]   DB: {db}")
    db_flag = f" --db {shlex.quote(str(db))}" if db_opt else ""
    console.print(
        "Try:\n"
        f"  spanreel traces{db_flag}\n"
        f"  spanreel show {trace_id}{db_flag}\n"
        '  spanreel sql "SELECT name, request_model, output_tokens FROM llm_calls '
        f"WHERE trace_id = '{trace_id}'\"{db_flag}\n"
        "  spanreel fake-llm --port 8000          # in another terminal, then:\n"
        f"  spanreel replay {trace_id}{db_flag} --base-url http://127.0.0.1:8000/v1 --model gpt-4o\n"
        "  spanreel collector                      # and run your own app with SPANREEL_ENABLED=1"
    )
