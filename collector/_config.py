"""Collector settings: ``otel-config.yaml`` (OpenTelemetry Collector format) → :class:`CollectorConfig`.

Supported components (anything else is a :class:`~spanreel._config.ConfigError` naming the key):

- ``receivers.otlp`` (or ``otlp/<name>``): ``protocols.grpc.endpoint`` (default ``127.0.0.1:4317``),
  ``protocols.grpc.max_recv_msg_size_mib`` (default 64, checked after decompression),
  ``protocols.http.endpoint`` (default ``127.0.0.1:4318``), ``protocols.http.max_request_body_size``
  (bytes, default 64 MiB, checked after decompression). A missing protocol is not served.
- ``exporters.duckdb`` (or ``duckdb/<name>``): ``path`` (the DuckDB file) and ``query_endpoint``
  (the loopback read-only query API, default ``127.0.0.1:0``).
- ``exporters.otlp`` / ``exporters.otlphttp``: forwarding, arrives in a later release (rejected now).
- ``service.pipelines.traces``: ``receivers`` / ``exporters`` lists of the ids above.

See https://opentelemetry.io/docs/collector/configuration/ for the structure.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spanreel._config import ConfigError, find_config, load_config, resolve_db_path

__all__ = ["CollectorConfig", "load_collector_config", "parse_endpoint"]

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_QUERY_ENDPOINT = "127.0.0.1:0"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 64.0
_MIB = 1024 * 1024

_RECEIVER_TYPES = frozenset({"otlp"})
_EXPORTER_TYPES = frozenset({"duckdb"})
_LATER_EXPORTER_TYPES = frozenset({"otlp", "otlphttp"})
_PROCESSOR_TYPES = frozenset({"batch"})  # accepted and ignored: spanreel batches in its writer


@dataclass(frozen=True)
class CollectorConfig:
    """Typed collector settings.

    Endpoints are ``host:port`` strings (IPv6 as ``[::1]:4317``); port 0 picks a free port.
    ``None`` for ``grpc_endpoint`` / ``http_endpoint`` means that receiver is disabled.
    Sizes are limits on the decompressed request body.
    """

    db_path: Path
    grpc_endpoint: str | None = DEFAULT_GRPC_ENDPOINT
    http_endpoint: str | None = DEFAULT_HTTP_ENDPOINT
    query_endpoint: str = DEFAULT_QUERY_ENDPOINT
    #: gRPC message limit in MiB (OTel Collector key ``max_recv_msg_size_mib``).
    max_recv_msg_size_mib: float = DEFAULT_MAX_RECV_MSG_SIZE_MIB
    #: HTTP body limit in bytes (OTel Collector key ``max_request_body_size``).
    max_request_body_size: int = int(DEFAULT_MAX_RECV_MSG_SIZE_MIB * _MIB)
    #: Bound of the writer queue, bytes of decoded request payload waiting to be written.
    max_queue_bytes: int = 256 * _MIB

    @property
    def max_recv_msg_size(self) -> int:
        """The gRPC limit in bytes."""
        return int(self.max_recv_msg_size_mib * _MIB)


def parse_endpoint(value: str, key: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into ``(host, port)``.

    Raises :class:`ConfigError` naming ``key`` when the value is not of that form.
    """
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{key}: port must be a number in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: port {port} out of range in {value!r}")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def _component_type(component_id: str) -> str:
    return str(component_id).split("/", 1)[0]


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _endpoint(section: dict[str, Any], key: str, default: str) -> str:
    value = section.get("endpoint", default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}.endpoint must be a host:port string, got {value!r}")
    parse_endpoint(value, f"{key}.endpoint")
    return value


def _parse_receivers(receivers: dict[str, Any], used: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rid, raw in receivers.items():
        section = _mapping(raw, f"receivers.{rid}")
        protocols = _mapping(section.get("protocols"), f"receivers.{rid}.protocols")
        for proto in protocols:
            if proto not in ("grpc", "http"):
                raise ConfigError(f"receivers.{rid}.protocols.{proto}: unknown protocol (grpc, http)")
        if rid not in used:
            continue
        if "grpc" in protocols:
            key = f"receivers.{rid}.protocols.grpc"
            grpc = _mapping(protocols["grpc"], key)
            out["grpc_endpoint"] = _endpoint(grpc, key, DEFAULT_GRPC_ENDPOINT)
            if "max_recv_msg_size_mib" in grpc:
                out["max_recv_msg_size_mib"] = _positive_number(
                    grpc["max_recv_msg_size_mib"], f"{key}.max_recv_msg_size_mib"
                )
        if "http" in protocols:
            key = f"receivers.{rid}.protocols.http"
            http = _mapping(protocols["http"], key)
            out["http_endpoint"] = _endpoint(http, key, DEFAULT_HTTP_ENDPOINT)
            if "max_request_body_size" in http:
                out["max_request_body_size"] = int(
                    _positive_number(http["max_request_body_size"], f"{key}.max_request_body_size")
                )
        if not protocols:
            raise ConfigError(f"receivers.{rid}.protocols: enable at least one of grpc, http")
    return out


def _parse_exporters(exporters: dict[str, Any], used: list[str], base_dir: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eid, raw in exporters.items():
        section = _mapping(raw, f"exporters.{eid}")
        if eid not in used:
            continue
        if "query_endpoint" in section:
            value = section["query_endpoint"]
            key = f"exporters.{eid}.query_endpoint"
            if not isinstance(value, str):
                raise ConfigError(f"{key} must be a host:port string, got {value!r}")
            parse_endpoint(value, key)
            out["query_endpoint"] = value
        if section.get("path"):
            p = Path(os.path.expanduser(str(section["path"])))
            out["config_db_path"] = p if p.is_absolute() or base_dir is None else base_dir / p
    return out


def _validate_query_endpoint(value: str, key: str) -> None:
    host, _ = parse_endpoint(value, key)
    if not _is_loopback(host):
        raise ConfigError(
            f"{key}: the query API has no authentication and must bind a loopback address, got {host!r}"
        )


def config_from_mapping(
    data: dict[str, Any], base_dir: Path | None = None
) -> tuple[dict[str, Any], Path | None]:
    """Validate a loaded config mapping; return ``(CollectorConfig keyword arguments, configured db path)``.

    Raises :class:`ConfigError` naming the offending key.
    """
    receivers = _mapping(data.get("receivers"), "receivers")
    exporters = _mapping(data.get("exporters"), "exporters")
    processors = _mapping(data.get("processors"), "processors")
    for pid in processors:
        if _component_type(pid) not in _PROCESSOR_TYPES:
            raise ConfigError(
                f"processors.{pid}: unknown processor type {_component_type(pid)!r} (supported: batch)"
            )
    for rid in receivers:
        if _component_type(rid) not in _RECEIVER_TYPES:
            raise ConfigError(
                f"receivers.{rid}: unknown receiver type {_component_type(rid)!r} (supported: otlp)"
            )
    for eid in exporters:
        etype = _component_type(eid)
        if etype in _LATER_EXPORTER_TYPES:
            raise ConfigError(
                f"exporters.{eid}: forwarding exporters ({etype}) arrive in a later release of spanreel; "
                "remove it for now"
            )
        if etype not in _EXPORTER_TYPES:
            raise ConfigError(f"exporters.{eid}: unknown exporter type {etype!r} (supported: duckdb)")
    service = _mapping(data.get("service"), "service")
    pipelines = _mapping(service.get("pipelines"), "service.pipelines")
    for name in pipelines:
        if _component_type(name) != "traces":
            raise ConfigError(f"service.pipelines.{name}: spanreel only collects traces")
    if "traces" not in pipelines:
        raise ConfigError("service.pipelines.traces is missing: the collector needs a traces pipeline")
    pipeline = _mapping(pipelines["traces"], "service.pipelines.traces")
    lists: dict[str, list[str]] = {}
    for kind, defined in (("receivers", receivers), ("processors", processors), ("exporters", exporters)):
        key = f"service.pipelines.traces.{kind}"
        ids = pipeline.get(kind) or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConfigError(f"{key} must be a list of component ids")
        for cid in ids:
            if cid not in defined:
                raise ConfigError(f"{key} refers to {cid!r}, which is not defined under {kind}")
        lists[kind] = ids
    if not lists["receivers"]:
        raise ConfigError("service.pipelines.traces.receivers is empty: add otlp")
    if not lists["exporters"]:
        raise ConfigError("service.pipelines.traces.exporters is empty: add duckdb")
    if len(lists["receivers"]) > 1 or len(lists["exporters"]) > 1:
        raise ConfigError("service.pipelines.traces: one otlp receiver and one duckdb exporter are supported")
    kwargs: dict[str, Any] = {"grpc_endpoint": None, "http_endpoint": None}
    kwargs.update(_parse_receivers(receivers, lists["receivers"]))
    exp = _parse_exporters(exporters, lists["exporters"], base_dir)
    db_path = exp.pop("config_db_path", None)
    kwargs.update(exp)
    return kwargs, db_path


def load_collector_config(
    config_path: str | os.PathLike[str] | None = None,
    *,
    db: str | os.PathLike[str] | None = None,
    grpc_endpoint: str | None = None,
    http_endpoint: str | None = None,
    query_endpoint: str | None = None,
) -> CollectorConfig:
    """Build the collector's settings: config file (``config_path``, else ``./otel-config.yaml`` if it
    exists, else built-in defaults) overridden by the CLI options.

    The DuckDB path follows :func:`spanreel._config.resolve_db_path` (``--db`` > ``SPANREEL_DB`` >
    ``exporters.duckdb.path`` > default). Raises :class:`ConfigError` for a missing file, bad YAML or
    an invalid structure (the message names the key).
    """
    cfg_file = find_config(config_path)
    kwargs: dict[str, Any] = {}
    if cfg_file is not None:
        kwargs, _ = config_from_mapping(load_config(cfg_file), cfg_file.parent)
    db_path = resolve_db_path(db, str(cfg_file) if cfg_file is not None else None)
    config = CollectorConfig(db_path=db_path, **kwargs)
    overrides: dict[str, Any] = {}
    for key, value in (
        ("grpc_endpoint", grpc_endpoint),
        ("http_endpoint", http_endpoint),
        ("query_endpoint", query_endpoint),
    ):
        if value is not None:
            parse_endpoint(value, f"--{key.replace('_', '-')}")
            overrides[key] = value
    config = replace(config, **overrides)
    _validate_query_endpoint(config.query_endpoint, "exporters.duckdb.query_endpoint")
    if config.grpc_endpoint is None and config.http_endpoint is None:
        raise ConfigError("receivers.otlp.protocols: neither grpc nor http is enabled")
    return config
