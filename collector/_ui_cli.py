"""``spanreel ui``: open the trace viewer of the collector serving a database.

The viewer is served by the collector (:mod:`spanreel.collector._ui`). If a collector already
serves the database, ``spanreel ui`` prints its viewer URL, opens it in a browser and returns. If
none does, it starts one in the foreground (same settings as ``spanreel collector``: config file,
OTLP receivers and all), prints the URL, opens it, and serves until Ctrl-C / SIGTERM.

When the query API requires a bearer token (``exporters.duckdb.auth``), the token travels in the
URL fragment (``/ui/#token=…``): fragments are never sent to the server, and the page moves the
token into ``sessionStorage`` and out of the address bar. For a collector started elsewhere the
token is read from ``SPANREEL_TOKEN`` (as for the other commands).
"""

from __future__ import annotations

import asyncio
import os
import sys
import webbrowser
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import click

from spanreel._config import ConfigError, resolve_db_path
from spanreel.collector._cli import handle_stop_signals
from spanreel.collector._client import TOKEN_ENV, CollectorInfo, running_collector
from spanreel.collector._config import CollectorConfig, load_collector_config, security_warnings
from spanreel.collector._ui import UI_PATH

__all__ = ["can_open_browser", "ui_command", "viewer_url"]


def viewer_url(query_url: str, token: str | None = None) -> str:
    """The page's URL on a query API base URL, with ``#token=…`` when a token is given."""
    url = query_url.rstrip("/") + UI_PATH
    return f"{url}#token={quote(token, safe='')}" if token else url


def can_open_browser(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a graphical browser can be expected: ``$BROWSER`` is set, or macOS / Windows, or a
    display (``$DISPLAY`` / ``$WAYLAND_DISPLAY``) elsewhere. Without one, Python's ``webbrowser``
    could start a text-mode browser in this terminal, so the URL is only printed."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if env.get("BROWSER"):
        return True
    if plat == "darwin" or plat.startswith("win"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _token_of(authorization: str | None) -> str | None:
    """``"Bearer abc"`` (the configured ``authorization`` value) → ``"abc"``."""
    if not authorization:
        return None
    return authorization.split(" ", 1)[1] if " " in authorization else authorization


def _show(url: str, open_browser: bool) -> None:
    """Print the URL (always: it is the one thing that works everywhere), then try a browser."""
    click.echo(url)
    if not open_browser:
        return
    if not can_open_browser():
        click.echo("spanreel ui: no browser available here; open the URL above in yours.", err=True)
        return
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo("spanreel ui: could not start a browser; open the URL above.", err=True)


def _running(info: CollectorInfo, open_browser: bool) -> None:
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if info.query_auth and token is None:
        click.echo(
            f"spanreel ui: the collector (pid {info.pid}) requires a token; set {TOKEN_ENV} so it is "
            "passed to the page, or paste it into the page when asked.",
            err=True,
        )
    _show(viewer_url(info.query_url, token if info.query_auth else None), open_browser)


async def _serve(config: CollectorConfig, open_browser: bool) -> None:
    from spanreel.collector._server import Collector
    from spanreel.collector._writer import keep_files_private

    for warning in security_warnings(config):
        click.echo(f"spanreel ui: WARNING: {warning}", err=True)
    readable = keep_files_private(config.db_path)  # the database, its WAL, the discovery file: 0600
    if readable:
        click.echo(f"spanreel ui: warning: {readable}", err=True)
    collector = Collector(config)
    info = await collector.start()
    stop = asyncio.Event()
    handle_stop_signals(stop, "spanreel ui", info.db_path)
    loop = asyncio.get_running_loop()
    receivers = [f"OTLP/gRPC {info.grpc_endpoint}"] if info.grpc_endpoint else []
    if info.http_endpoint:
        receivers.append(f"OTLP/HTTP http://{info.http_endpoint}/v1/traces")
    click.echo(
        f"spanreel ui: no collector was serving {info.db_path}; started one (pid {info.pid}).\n"
        f"  receiving {', '.join(receivers)}\n"
        "  stop with Ctrl-C (queued spans are committed first)",
        err=True,
    )
    # the blocking browser start runs off the loop, which is already serving the page
    await loop.run_in_executor(
        None, _show, viewer_url(info.query_url, _token_of(config.query_auth)), open_browser
    )
    await stop.wait()
    click.echo("spanreel ui: stopping the collector… (Ctrl-C again to exit at once)", err=True)
    await collector.stop()
    click.echo("spanreel ui: collector stopped", err=True)


@click.command("ui", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="The DuckDB file [default: SPANREEL_DB, else the config's exporters.duckdb.path, else the default].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Collector config (OpenTelemetry Collector format) [default: ./otel-config.yaml if present].",
)
@click.option("--no-browser", is_flag=True, help="Only print the URL; do not start a browser.")
def ui_command(db: str | None, config_path: str | None, no_browser: bool) -> None:
    """Open the trace viewer in a browser.

    \b
    The viewer lists traces (filters: service, model, session, status, time, text in messages),
    shows a trace as a timeline with each LLM call's conversation, a session's traces in order,
    and a replay beside its original with the changed words highlighted.

    \b
    It is served by the collector, on the loopback address of its query API:
      - a collector already serves the database: its viewer URL is printed and opened;
      - none does: one is started here, in the foreground (OTLP receivers included, as
        `spanreel collector` with the same --db/--config), until Ctrl-C.
    The URL is always printed; no browser is started when there is no display (e.g. over SSH)
    or with --no-browser. If the query API requires a bearer token, the URL carries it in its
    #fragment (set SPANREEL_TOKEN for a collector started elsewhere).
    """
    from spanreel.collector._server import CollectorStartError

    try:
        db_path: Path = resolve_db_path(db, config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    info = running_collector(db_path)
    if info is not None:
        _running(info, not no_browser)
        return
    try:
        config = load_collector_config(config_path, db=db)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    try:
        asyncio.run(_serve(config, not no_browser))
    except CollectorStartError as exc:
        raise click.ClickException(
            f"{exc}\n(no collector serves {db_path}, and starting one failed; is `spanreel collector` "
            "running on another database? Stop it, or pass --db / --config to match it)"
        ) from exc
    except KeyboardInterrupt:  # Ctrl-C during start-up, before the signal handlers are in place
        sys.exit(130)
