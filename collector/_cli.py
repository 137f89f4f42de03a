"""``spanreel collector``: run the OTLP collector in the foreground until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from spanreel._config import ConfigError
from spanreel.collector._config import CollectorConfig, load_collector_config

__all__ = ["collector_command"]


async def _serve(config: CollectorConfig) -> None:
    from spanreel.collector._server import Collector

    collector = Collector(config)
    info = await collector.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    receivers = []
    if info.grpc_endpoint:
        receivers.append(f"OTLP/gRPC {info.grpc_endpoint}")
    if info.http_endpoint:
        receivers.append(f"OTLP/HTTP http://{info.http_endpoint}/v1/traces")
    click.echo(
        f"spanreel collector (pid {info.pid}) listening: {', '.join(receivers)}; "
        f"query API {info.query_url}\n"
        f"  storing spans in {info.db_path}\n"
        "  stop with Ctrl-C or SIGTERM (queued spans are committed first)",
        err=True,
    )
    await stop.wait()
    click.echo("spanreel collector: stopping, committing queued spans…", err=True)
    await collector.stop()
    click.echo("spanreel collector: stopped", err=True)


@click.command(
    "collector",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Collector config in the OpenTelemetry Collector format [default: ./otel-config.yaml if present].",
)
@click.option("--db", type=click.Path(dir_okay=False), help="DuckDB file to write (created if missing).")
@click.option(
    "--grpc-endpoint", metavar="HOST:PORT", help="OTLP/gRPC listen address [default: 127.0.0.1:4317]."
)
@click.option(
    "--http-endpoint", metavar="HOST:PORT", help="OTLP/HTTP listen address [default: 127.0.0.1:4318]."
)
@click.option(
    "--query-endpoint",
    metavar="HOST:PORT",
    help="Loopback address of the read-only query API [default: 127.0.0.1:0, a free port].",
)
def collector_command(
    config_path: str | None,
    db: str | None,
    grpc_endpoint: str | None,
    http_endpoint: str | None,
    query_endpoint: str | None,
) -> None:
    """Receive OTLP traces and store them in DuckDB.

    \b
    Listens for OpenTelemetry exporters on
      OTLP/gRPC  127.0.0.1:4317  (TraceService/Export, gzip supported)
      OTLP/HTTP  127.0.0.1:4318  (POST /v1/traces, protobuf or JSON, gzip supported)
    and serves a read-only SQL API on a loopback port, used by `spanreel sql`, `traces`, `show`
    and `replay` while the collector holds the database. It announces itself in
    <db>.collector.json (actual ports included).

    \b
    Database path, first match wins:
      1. --db PATH
      2. the SPANREEL_DB environment variable
      3. exporters.duckdb.path in the config file
      4. ~/.local/share/spanreel/spanreel.duckdb ($XDG_DATA_HOME respected)

    \b
    Point an app at it with the standard variables, e.g.
      OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317
    Stop with Ctrl-C or SIGTERM: it stops listening, commits every queued span, removes the
    discovery file and exits 0.
    """
    from spanreel.collector._server import CollectorStartError

    try:
        config = load_collector_config(
            config_path,
            db=db,
            grpc_endpoint=grpc_endpoint,
            http_endpoint=http_endpoint,
            query_endpoint=query_endpoint,
        )
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    try:
        asyncio.run(_serve(config))
    except (CollectorStartError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
