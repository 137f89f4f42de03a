"""``spanreel collector`` (run the OTLP collector in the foreground until SIGINT / SIGTERM, or
validate its config) and ``spanreel prune`` (retention on demand)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from spanreel._config import ConfigError, find_config, resolve_db_path
from spanreel.collector._config import (
    CollectorConfig,
    check_listen_addresses,
    load_collector_config,
    parse_duration,
    security_warnings,
)
from spanreel.collector._forward_config import ForwarderConfig
from spanreel.collector._security import TLSSettings

__all__ = ["collector_command", "handle_stop_signals", "prune_command"]

_MIB = 1024 * 1024


def _setup_logging(level: str = "INFO") -> None:
    """Counters, retention and shutdown lines go to stderr, one line each, with a UTC time stamp;
    ``level``: a :mod:`logging` level name (``service.telemetry.logs.level``)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s spanreel collector: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger = logging.getLogger("spanreel.collector")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _describe_config(config: CollectorConfig, source: str) -> str:
    """The effective settings, one per line, for ``--check-config``."""

    def listener(endpoint: str | None, tls: TLSSettings | None, auth: str | None) -> str:
        if endpoint is None:
            return "disabled"
        client_certificates = tls is not None and tls.client_ca_file is not None
        extras = [
            x
            for x, on in (
                (f"TLS {tls.min_version}+" if tls else "", tls is not None),
                ("client certificates", client_certificates),
                ("bearer token", auth is not None),
            )
            if on
        ]
        return endpoint + (f" ({', '.join(extras)})" if extras else "")

    read_timeout = config.http_read_timeout_s
    body_read = f"within {_duration_text(read_timeout)} (else 408)" if read_timeout else "no time limit"
    workers = "one per CPU (max 4)" if config.decode_workers is None else str(config.decode_workers)
    answer_rows = f"{config.query_max_rows:,} rows" if config.query_max_rows else "any rows"
    answer_bytes = f"{config.query_max_bytes / _MIB:g} MiB" if config.query_max_bytes else "any size"
    lines = [
        f"configuration OK: {source}",
        f"  OTLP/gRPC       {listener(config.grpc_endpoint, config.grpc_tls, config.grpc_auth)}",
        f"  OTLP/HTTP       {listener(config.http_endpoint, config.http_tls, config.http_auth)}",
        f"  query API       {listener(config.query_endpoint, config.query_tls, config.query_auth)}",
        f"  database        {config.db_path}",
        f"  size limits     gRPC {config.max_recv_msg_size_mib:g} MiB, "
        f"HTTP {config.max_request_body_size} bytes (after decompression)",
        f"  queue           {config.max_queue_bytes / _MIB:g} MiB; decode workers: {workers}",
        f"  retention       {_duration_text(config.ttl_s) if config.ttl_s else 'keep everything'}",
        f"  query timeout   {_duration_text(config.query_timeout_s) if config.query_timeout_s else 'none'}",
        f"  query answers   at most {answer_rows}, {answer_bytes} (past a limit: cut, truncated)",
        f"  HTTP body read  {body_read}",
    ]
    lines.append(f"  log level       {config.log_level.lower()}")
    if config.ignored_settings:
        lines.append(f"  ignored         {', '.join(config.ignored_settings)} (no effect in spanreel)")
    for forwarder in config.forwarders:
        lines.append(f"  forward         {_describe_forwarder(forwarder)}")
    if not config.forwarders:
        lines.append("  forward         nowhere (no otlp / otlphttp exporter in the pipeline)")
    lines.extend(f"  WARNING         {warning}" for warning in security_warnings(config))
    return "\n".join(lines)


def _describe_forwarder(forwarder: ForwarderConfig) -> str:
    """One forwarding exporter for ``--check-config``: where, how, retry and queue (no header values)."""
    protocol = "OTLP/gRPC" if forwarder.protocol == "grpc" else f"OTLP/HTTP {forwarder.encoding}"
    security = "plaintext" if forwarder.plaintext else "TLS"
    retry = forwarder.retry
    retrying = (
        f"retry up to {_duration_text(retry.max_elapsed_time_s) if retry.max_elapsed_time_s else 'forever'}"
        if retry.enabled
        else "no retry"
    )
    queue = forwarder.queue
    headers = f", headers {', '.join(name for name, _ in forwarder.headers)}" if forwarder.headers else ""
    return (
        f"{forwarder.name}: {protocol} {forwarder.target} ({security}, {forwarder.compression}{headers}); "
        f"{retrying}; queue {queue.queue_size} {queue.sizer}, {queue.num_consumers} senders"
    )


def handle_stop_signals(stop: asyncio.Event, prog: str, db_path: str) -> None:
    """On the running loop, make the first SIGINT / SIGTERM set ``stop`` (a clean drain) and a
    second one end the process at once: one line on stderr, the discovery file of ``db_path``
    removed, exit code 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). Every
    acknowledged export is already committed; queued ones are retried by their clients."""
    from spanreel.collector._client import remove_discovery

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            stop.set()
            return
        code = 128 + signum
        sys.stderr.write(
            f"{prog}: {signal.Signals(signum).name} again: exiting now (code {code}) without finishing "
            "the shutdown; acknowledged spans are committed, unacknowledged exports are retried by "
            "their clients\n"
        )
        sys.stderr.flush()
        with contextlib.suppress(OSError):
            remove_discovery(db_path, os.getpid())
        os._exit(code)  # not sys.exit: the threads still draining must not hold the process

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def _serve(config: CollectorConfig) -> None:
    from spanreel.collector._server import Collector
    from spanreel.collector._writer import keep_files_private

    _setup_logging(config.log_level)
    readable = keep_files_private(config.db_path)  # the database, its WAL, the discovery file: 0600
    if readable:
        logging.getLogger("spanreel.collector").warning("%s", readable)
    if config.ignored_settings:
        logging.getLogger("spanreel.collector").warning(
            "ignored (valid for the OpenTelemetry Collector, no effect here): %s",
            ", ".join(config.ignored_settings),
        )
    for warning in security_warnings(config):
        logging.getLogger("spanreel.collector").warning("WARNING: %s", warning)
    collector = Collector(config)
    info = await collector.start()
    stop = asyncio.Event()
    handle_stop_signals(stop, "spanreel collector", info.db_path)
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
    click.echo(
        "spanreel collector: stopping, committing queued spans… (Ctrl-C again to exit at once)", err=True
    )
    await collector.stop()
    click.echo("spanreel collector: stopped", err=True)


def _config_error(error: ConfigError, source: Path | None) -> str:
    """The one-line message of a configuration error: ``configuration error in <file>: <key>: …``
    (the file left out when there is none, when the message already names it, or when the error
    is about a command-line option or an environment variable: ``--db: …``, ``SPANREEL_DB: …``)."""
    message = str(error)
    if source is None or str(source) in message or message.startswith(("--", "SPANREEL_")):
        return f"configuration error: {message}"
    return f"configuration error in {source}: {message}"


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
@click.option(
    "--check-config",
    is_flag=True,
    help="Validate the configuration (file, options, TLS files, listen addresses), print the "
    "effective settings and "
    "exit: 0 when valid, 1 with the offending key otherwise.",
)
def collector_command(
    config_path: str | None,
    db: str | None,
    grpc_endpoint: str | None,
    http_endpoint: str | None,
    query_endpoint: str | None,
    check_config: bool,
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
      OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318   (http/protobuf, the default)
      OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc
    Stop with Ctrl-C or SIGTERM: it stops listening, gives exports in flight 3 s, commits every
    queued span, removes the discovery file and exits 0, in seconds; a second Ctrl-C / SIGTERM
    exits at once (code 130 / 143). Counters (received, stored, duplicates, rejected, refused, queue
    depth) are logged to stderr every minute while they change and served at /api/health.

    \b
    Optional, in otel-config.yaml (OpenTelemetry Collector keys):
      receivers.otlp.protocols.{grpc,http}.tls.cert_file / key_file    TLS (also
      exporters.duckdb.tls.cert_file / key_file                        on the query API)
      receivers.otlp.protocols.{grpc,http}.auth.authenticator          bearer token (with
      exporters.duckdb.auth.authenticator                              extensions.bearertokenauth)
      receivers.otlp.protocols.http.read_timeout   a request body must arrive within it (30s), else 408
      exporters.duckdb.max_queue_bytes    queue bound; beyond it UNAVAILABLE / 503 + Retry-After
      exporters.duckdb.ttl                retention, e.g. 30d (see also `spanreel prune`)
      exporters.duckdb.query_timeout      query API / UI queries interrupted after it (30s)
      exporters.duckdb.query_max_rows / query_max_bytes   the most one answer holds (1000000,
                                          128 MiB); a larger one is cut and says truncated
      exporters.otlp / exporters.otlphttp  forward received spans to another OTLP backend too
                                          (endpoint, headers, compression, tls, retry_on_failure,
                                          sending_queue); list them in the traces pipeline
    """
    from spanreel.collector._server import CollectorStartError

    source: Path | None = None
    try:
        source = find_config(config_path)
        config = load_collector_config(
            source,
            db=db,
            grpc_endpoint=grpc_endpoint,
            http_endpoint=http_endpoint,
            query_endpoint=query_endpoint,
        )
    except ConfigError as exc:
        raise click.ClickException(_config_error(exc, source)) from exc
    if check_config:
        try:
            flags = {
                name
                for name, value in (
                    ("grpc_endpoint", grpc_endpoint),
                    ("http_endpoint", http_endpoint),
                    ("query_endpoint", query_endpoint),
                )
                if value is not None
            }
            check_listen_addresses(config, flags)
        except ConfigError as exc:
            raise click.ClickException(_config_error(exc, source)) from exc
        click.echo(_describe_config(config, str(source) if source else "built-in defaults (no config file)"))
        return
    try:
        asyncio.run(_serve(config))
    except (CollectorStartError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:  # Ctrl-C during start-up, before the signal handlers are in place
        sys.exit(130)


@click.command(
    "prune",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Delete traces that ended longer ago than this: 30d, 12h, 90m, 1w …",
)
@click.option(
    "--db", type=click.Path(dir_okay=False), help="The DuckDB file [default: as `spanreel collector`]."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Collector config, read for exporters.duckdb.path [default: ./otel-config.yaml if present].",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print {traces, spans, cutoff, dry_run} as JSON.")
def prune_command(
    older_than: str, db: str | None, config_path: str | None, dry_run: bool, as_json: bool
) -> None:
    """Delete old traces from the spanreel database.

    \b
    Whole traces are deleted (spans and the per-trace index together), oldest first, a few
    thousand per transaction: a trace goes when its last span ended before now - DURATION.
    While a collector runs on the database the request goes through its API, and it keeps
    committing exports between those transactions; otherwise the file is opened directly. The
    API wants SPANREEL_TOKEN when it requires a token, else the key in <db>.collector.json
    (readable by the user running the collector only), which this command sends.

    \b
    Examples:
      spanreel prune --older-than 30d --dry-run
      spanreel prune --older-than 720h --db ./traces.duckdb
    Automatic retention: exporters.duckdb.ttl in otel-config.yaml.
    """
    from spanreel.collector._client import call_api, running_collector
    from spanreel.collector._query import QueryError

    try:
        older_than_s = parse_duration(older_than, "--older-than")
        db_path = resolve_db_path(db, config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    info = running_collector(db_path)
    if info is not None:
        try:
            body = {"older_than": older_than, "dry_run": dry_run}  # the duration with its unit
            result = call_api(info, "/api/prune", body, as_owner=True)
        except QueryError as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        result = _prune_file(Path(db_path), older_than_s, dry_run)
    if as_json:
        click.echo(json.dumps(result))
        return
    verb = "would delete" if result["dry_run"] else "deleted"
    click.echo(
        f"{verb} {result['traces']} traces ({result['spans']} spans) that ended before {result['cutoff']}"
    )


def _prune_file(db_path: Path, older_than_s: float, dry_run: bool) -> dict[str, object]:
    import duckdb

    from spanreel.collector._retention import cutoff_ns, prune
    from spanreel.collector._schema import NotSpanreelDatabaseError
    from spanreel.collector._server import prune_result_json
    from spanreel.collector._writer import open_database

    if not db_path.exists():
        raise click.ClickException(f"no spanreel database at {db_path}: pass --db PATH")
    try:
        con = open_database(db_path, allow_empty=False)
    except NotSpanreelDatabaseError as exc:  # another application's file: left untouched
        raise click.ClickException(str(exc)) from exc
    except (duckdb.Error, RuntimeError) as exc:  # DatabaseLockedError, SchemaError
        raise click.ClickException(
            f"cannot prune {db_path}: {exc}. If a spanreel collector holds it, it must be running and "
            "answering on its query API (see <db>.collector.json)"
        ) from exc
    try:
        return prune_result_json(prune(con, cutoff_ns(older_than_s), dry_run=dry_run))
    except duckdb.Error as exc:
        raise click.ClickException(f"pruning {db_path} failed: {exc}") from exc
    finally:
        con.close()
