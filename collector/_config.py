"""Collector settings: ``otel-config.yaml`` (OpenTelemetry Collector format) → :class:`CollectorConfig`.

Supported components (anything else is a :class:`~spanreel._config.ConfigError` naming the key):

- ``receivers.otlp`` (or ``otlp/<name>``): ``protocols.grpc.endpoint`` (default ``127.0.0.1:4317``),
  ``protocols.grpc.max_recv_msg_size_mib`` (default 64, checked after decompression),
  ``protocols.http.endpoint`` (default ``127.0.0.1:4318``), ``protocols.http.max_request_body_size``
  (bytes, default 64 MiB, checked after decompression), ``protocols.http.read_timeout`` (the
  whole request body must arrive within it, else 408; default ``30s``, ``0s``: no limit). A
  missing protocol is not served.
  Per protocol, optionally ``tls.cert_file`` / ``tls.key_file`` (PEM; ``client_ca_file`` for mutual
  TLS, ``min_version``) and
  ``auth.authenticator: bearertokenauth`` (see :mod:`spanreel.collector._security`).
- ``extensions.bearertokenauth`` (or ``bearertokenauth/<name>``): ``token``, ``scheme`` (default
  ``Bearer``); enabled by listing it in ``service.extensions``.
- ``exporters.duckdb`` (or ``duckdb/<name>``): ``path`` (the DuckDB file), ``query_endpoint`` (the
  read-only query API, default ``127.0.0.1:0``; loopback only unless ``auth`` is set; beyond
  loopback without ``tls`` it is a warning, see :func:`security_warnings`), ``auth.authenticator``
  (bearer token on the query API), ``tls`` (HTTPS on the query API, the receivers' keys:
  ``cert_file``, ``key_file``, ``client_ca_file``, ``min_version``), ``max_queue_bytes`` (bound of
  the in-memory queue, default 128 MiB), ``decode_workers`` (decoding processes, default one per CPU
  up to 4; 0 decodes in threads), ``ttl`` (retention, e.g. ``720h`` or ``30d``, with a unit;
  default, or ``0``: keep everything), ``metrics_log_interval`` (how often counters are logged,
  default ``60s``, at least ``1s``; ``0s`` turns it off), ``query_timeout`` (a query API / UI
  query running longer is interrupted, default ``30s``; ``0s``: no limit), ``query_max_rows`` (the
  most rows one query API answer holds, default 1,000,000, the answer then says ``truncated``; 0:
  no limit), ``query_max_bytes`` (the most bytes one query API answer holds, its JSON and the
  result read from DuckDB, default 128 MiB, then ``truncated`` too; 0: no limit).
- ``processors.batch`` (or ``batch/<name>``): accepted with the Collector's keys, no effect.
- ``exporters.otlp`` / ``exporters.otlphttp`` (or ``…/<name>``): forward received spans to another
  OTLP backend; keys as in the OTel Collector (see :mod:`spanreel.collector._forward_config`).
- ``service.pipelines.traces`` (and any ``traces/<name>`` pipelines): ``receivers`` / ``exporters``
  lists of the ids above; together they name one otlp receiver and one duckdb exporter, plus the
  otlp / otlphttp exporters to forward to.
- ``service.telemetry`` (the collector's own telemetry): ``logs.level`` (``debug``, ``info``
  (default), ``warn``, ``error``) sets the log level; its other keys (``metrics``, ``traces``,
  ``resource``…) are valid in the OpenTelemetry Collector but have no effect here: they are
  listed in :attr:`CollectorConfig.ignored_settings` (shown by ``--check-config``, logged at start).

Every defined component is checked for unknown keys, listed in a pipeline or not (as the
OpenTelemetry Collector does); its values are checked when a pipeline lists it.

See https://opentelemetry.io/docs/collector/configuration/ for the structure.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from spanreel._config import (
    ConfigError,
    check_db_file,
    check_keys,
    db_path_text,
    find_config,
    load_config,
    resolve_db_path,
    scalar,
)
from spanreel.collector._forward_config import (
    FORWARDER_TYPES,
    ForwarderConfig,
    check_forwarder_keys,
    check_wait,
    parse_forwarder,
)
from spanreel.collector._security import TLS_KEYS, TLSSettings, parse_auth, parse_extensions, parse_tls

__all__ = [
    "CollectorConfig",
    "load_collector_config",
    "parse_duration",
    "parse_endpoint",
    "parse_prune_age",
    "security_warnings",
]

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_QUERY_ENDPOINT = "127.0.0.1:0"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 64.0
_MIB = 1024 * 1024
DEFAULT_MAX_QUEUE_BYTES = 128 * _MIB
DEFAULT_METRICS_LOG_INTERVAL_S = 60.0
#: The shortest ``metrics_log_interval`` (besides 0, off): shorter ones only flood the log.
MIN_METRICS_LOG_INTERVAL_S = 1.0
DEFAULT_QUERY_TIMEOUT_S = 30.0
DEFAULT_HTTP_READ_TIMEOUT_S = 30.0
DEFAULT_QUERY_MAX_ROWS = 1_000_000
DEFAULT_QUERY_MAX_BYTES = 128 * _MIB

_RECEIVER_TYPES = frozenset({"otlp"})
_EXPORTER_TYPES = frozenset({"duckdb", *FORWARDER_TYPES})
_PROCESSOR_TYPES = frozenset({"batch"})  # accepted and ignored: spanreel batches in its writer
#: The batch processor's keys in the OpenTelemetry Collector (accepted, no effect: a misspelt one
#: is still an error there, so it is one here).
_BATCH_KEYS = (
    "timeout", "send_batch_size", "send_batch_max_size", "metadata_keys", "metadata_cardinality_limit",
)  # fmt: skip


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
    #: Seconds an OTLP/HTTP request's body may take to arrive, counted from its headers (0: no
    #: limit); a slower (or stalled) upload is answered 408 and its queue bytes released (OTel
    #: Collector key ``read_timeout``).
    http_read_timeout_s: float = DEFAULT_HTTP_READ_TIMEOUT_S
    #: Bound of the in-memory queue: decompressed bytes of the export requests accepted and not
    #: yet committed. Beyond it exports are refused with UNAVAILABLE / 503 (clients retry).
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    #: Worker processes that decode requests; ``None``: one per CPU (at most 4), 0: threads only.
    decode_workers: int | None = None
    #: Retention in seconds: spans whose end time is older are deleted (``None``: keep forever).
    ttl_s: float | None = None
    #: Seconds between two log lines with the counters (0: never).
    metrics_log_interval_s: float = DEFAULT_METRICS_LOG_INTERVAL_S
    #: Seconds after which a query of the query API (or the UI) is interrupted (0: never).
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    #: The most rows one query API answer holds (0: no limit): a result is built in memory, and
    #: an unbounded ``SELECT`` over millions of spans would take the collector's memory with it.
    query_max_rows: int = DEFAULT_QUERY_MAX_ROWS
    #: The most bytes one query API answer holds (0: no limit), as JSON and as the result read
    #: from DuckDB: rows limit the count, not the size (one 500 MB value took the collector from
    #: 150 MB to 1.6 GB).
    query_max_bytes: int = DEFAULT_QUERY_MAX_BYTES
    #: Expected ``authorization`` value (``"Bearer <token>"``) per listener; ``None``: no auth.
    grpc_auth: str | None = field(default=None, repr=False)
    http_auth: str | None = field(default=None, repr=False)
    query_auth: str | None = field(default=None, repr=False)
    #: TLS for the OTLP receivers and the query API (``None``: plaintext).
    grpc_tls: TLSSettings | None = None
    http_tls: TLSSettings | None = None
    query_tls: TLSSettings | None = None
    #: ``otlp`` / ``otlphttp`` exporters in the pipeline: where accepted spans are also forwarded.
    forwarders: tuple[ForwarderConfig, ...] = ()
    #: ``service.telemetry.logs.level`` as a :mod:`logging` level name (``DEBUG`` … ``ERROR``).
    log_level: str = "INFO"
    #: Config keys accepted as valid OpenTelemetry Collector settings that spanreel does not use.
    ignored_settings: tuple[str, ...] = ()

    @property
    def max_recv_msg_size(self) -> int:
        """The gRPC limit in bytes."""
        return int(self.max_recv_msg_size_mib * _MIB)


#: The host of an endpoint written ``:port`` (Go's syntax, as in the OpenTelemetry Collector).
ALL_INTERFACES = "0.0.0.0"


def parse_endpoint(value: str, key: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into ``(host, port)``; ``:port`` means every
    interface (host :data:`ALL_INTERFACES`), as in the OpenTelemetry Collector.

    Raises :class:`ConfigError` naming ``key`` when the value is not of that form.
    """
    text = value.strip()
    if "://" in text or "/" in text:
        raise ConfigError(
            f"{key}: expected host:port, got the URL {value!r} (a receiver listens on host:port: "
            "write it without scheme or path)"
        )
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    host = host or ALL_INTERFACES
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"{key}: expected host:port, got {value!r} (an empty host in brackets)")
    # ASCII digits only: int() also takes "4_317", "+4317" and other scripts' digits
    if not re.fullmatch(r"[0-9]{1,5}", port_text):
        raise ConfigError(f"{key}: port must be a number from 0 to 65535 in {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: port {port} out of range in {value!r}")
    return host, port


def _listeners(config: CollectorConfig, from_flags: Collection[str]) -> list[tuple[str, str]]:
    """``(setting name, endpoint)`` of each listener the collector serves: the command-line flag
    for the fields in ``from_flags`` (``grpc_endpoint`` …), else the config key."""
    return [
        ("--" + field_name.replace("_", "-") if field_name in from_flags else key, endpoint)
        for field_name, key, endpoint in (
            ("grpc_endpoint", "receivers.otlp.protocols.grpc.endpoint", config.grpc_endpoint),
            ("http_endpoint", "receivers.otlp.protocols.http.endpoint", config.http_endpoint),
            ("query_endpoint", "exporters.duckdb.query_endpoint", config.query_endpoint),
        )
        if endpoint is not None
    ]


def check_listen_addresses(config: CollectorConfig, from_flags: Collection[str] = ()) -> None:
    """Check that this machine can listen on the host of every endpoint the collector serves:
    the name resolves and a socket binds to it (on port 0, so a running collector holding the
    port does not fail the check). For ``--check-config``. Raises :class:`ConfigError` naming the
    setting: the command-line flag for the fields in ``from_flags`` (``grpc_endpoint`` …), else
    the config key."""
    for key, endpoint in _listeners(config, from_flags):
        host, _ = parse_endpoint(endpoint, key)
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as probe:
                probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"{key}: cannot listen on {host!r} ({endpoint}): {exc}") from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")
_DURATION_UNIT_S = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0, "w": 604800.0,
}  # fmt: skip


def parse_duration(value: Any, key: str) -> float:
    """A duration in seconds from the OTel Collector's Go syntax (``90s``, ``1h30m``, ``720h``) plus
    ``d`` (24 h) and ``w`` (7 d); a bare number is seconds. Raises :class:`ConfigError` naming ``key``."""
    value = scalar(value)
    if isinstance(value, bool):
        raise ConfigError(
            f"{key} must be a duration such as 30d, 12h or 90s, got the boolean {str(value).lower()} "
            "(YAML reads unquoted true/false/yes/no/on/off as booleans)"
        )
    if isinstance(value, int | float):
        if not 0 <= value < math.inf:
            raise ConfigError(f"{key} must be a finite, non-negative number of seconds, got {value!r}")
        return float(value)
    text = str(value).strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]
        pos = match.end()
    if not text or pos != len(text) or not math.isfinite(total):
        raise ConfigError(f"{key} must be a duration such as 30d, 12h or 90s, got {value!r}")
    return total


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
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _byte_count(value: Any, key: str) -> int:
    """A size in bytes: a positive whole number (``0.5`` used to pass and become 0 bytes)."""
    number = _positive_number(value, key)
    if not number.is_integer():
        raise ConfigError(f"{key} is a number of bytes: a whole number, got {scalar(value)!r}")
    return int(number)


#: gRPC keeps a message's length in a signed 32-bit int: 2 GiB - 1 byte is the largest limit.
_GRPC_MAX_MESSAGE_BYTES: Final = 2**31 - 1


def _grpc_message_limit_mib(value: Any, key: str) -> float:
    mib = _positive_number(value, key)
    if int(mib * _MIB) < 1 or int(mib * _MIB) > _GRPC_MAX_MESSAGE_BYTES:
        raise ConfigError(
            f"{key} must be from 1 byte to 2048 MiB less one byte (gRPC's largest message), got {mib:g}"
        )
    return mib


def _endpoint(section: dict[str, Any], key: str, default: str) -> str:
    value = section.get("endpoint", default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}.endpoint must be a host:port string, got {value!r}")
    parse_endpoint(value, f"{key}.endpoint")
    return value


_GRPC_KEYS = ("endpoint", "auth", "tls", "max_recv_msg_size_mib")
_HTTP_KEYS = ("endpoint", "auth", "tls", "max_request_body_size", "read_timeout")
_DUCKDB_KEYS = (
    "path", "query_endpoint", "auth", "tls", "max_queue_bytes", "decode_workers", "ttl",
    "metrics_log_interval", "query_timeout", "query_max_rows", "query_max_bytes",
)  # fmt: skip
_TOP_KEYS = ("receivers", "processors", "exporters", "extensions", "service")


def _check_listener_keys(section: dict[str, Any], allowed: Collection[str], key: str) -> None:
    """No unknown key in a receiver protocol or the duckdb exporter, nor in its ``auth`` / ``tls``."""
    check_keys(section, allowed, key)
    if "auth" in allowed:
        check_keys(_mapping(section.get("auth"), f"{key}.auth"), ("authenticator",), f"{key}.auth")
    if "tls" in allowed:
        check_keys(_mapping(section.get("tls"), f"{key}.tls"), TLS_KEYS, f"{key}.tls")


def _check_structure(component_key: str, used: bool, check: Callable[..., None], *args: Any) -> None:
    """Run ``check(*args)`` (a structural check of the component at ``component_key``); for a component
    no pipeline lists, say so in the error: it is checked all the same, as in the OpenTelemetry
    Collector (an unknown key in an unused component used to pass silently)."""
    try:
        check(*args)
    except ConfigError as exc:
        if used:
            raise
        raise ConfigError(
            f"{exc} ({component_key} is in no pipeline, but every defined component is checked, "
            "as in the OpenTelemetry Collector)"
        ) from None


def _check_receiver_keys(rid: str, section: dict[str, Any]) -> None:
    check_keys(section, ("protocols",), f"receivers.{rid}")
    protocols = _mapping(section.get("protocols"), f"receivers.{rid}.protocols")
    for proto in protocols:
        if proto not in ("grpc", "http"):
            raise ConfigError(f"receivers.{rid}.protocols.{proto}: unknown protocol (grpc, http)")
        key = f"receivers.{rid}.protocols.{proto}"
        allowed = _GRPC_KEYS if proto == "grpc" else _HTTP_KEYS
        _check_listener_keys(_mapping(protocols[proto], key), allowed, key)


def _parse_receivers(
    receivers: dict[str, Any], used: list[str], base_dir: Path | None, authenticators: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rid, raw in receivers.items():
        section = _mapping(raw, f"receivers.{rid}")
        _check_structure(f"receivers.{rid}", rid in used, _check_receiver_keys, rid, section)
        protocols = _mapping(section.get("protocols"), f"receivers.{rid}.protocols")
        if rid not in used:
            continue
        if "grpc" in protocols:
            key = f"receivers.{rid}.protocols.grpc"
            grpc = _mapping(protocols["grpc"], key)
            check_keys(grpc, _GRPC_KEYS, key)
            out["grpc_endpoint"] = _endpoint(grpc, key, DEFAULT_GRPC_ENDPOINT)
            out["grpc_auth"] = parse_auth(grpc, key, authenticators)
            out["grpc_tls"] = parse_tls(grpc, key, base_dir)
            if "max_recv_msg_size_mib" in grpc:
                out["max_recv_msg_size_mib"] = _grpc_message_limit_mib(
                    grpc["max_recv_msg_size_mib"], f"{key}.max_recv_msg_size_mib"
                )
        if "http" in protocols:
            key = f"receivers.{rid}.protocols.http"
            http = _mapping(protocols["http"], key)
            check_keys(http, _HTTP_KEYS, key)
            out["http_endpoint"] = _endpoint(http, key, DEFAULT_HTTP_ENDPOINT)
            out["http_auth"] = parse_auth(http, key, authenticators)
            out["http_tls"] = parse_tls(http, key, base_dir)
            if "max_request_body_size" in http:
                out["max_request_body_size"] = _byte_count(
                    http["max_request_body_size"], f"{key}.max_request_body_size"
                )
            if "read_timeout" in http:
                out["http_read_timeout_s"] = parse_duration(http["read_timeout"], f"{key}.read_timeout")
        if not protocols:
            raise ConfigError(f"receivers.{rid}.protocols: enable at least one of grpc, http")
    return out


def _parse_duckdb(
    section: dict[str, Any], key: str, authenticators: dict[str, str], base_dir: Path | None
) -> dict[str, Any]:
    check_keys(section, _DUCKDB_KEYS, key)
    out: dict[str, Any] = {
        "query_auth": parse_auth(section, key, authenticators),
        "query_tls": parse_tls(section, key, base_dir),
    }
    if "max_queue_bytes" in section:
        out["max_queue_bytes"] = _byte_count(section["max_queue_bytes"], f"{key}.max_queue_bytes")
    if "decode_workers" in section:
        workers = scalar(section["decode_workers"])
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64:
            raise ConfigError(f"{key}.decode_workers must be an integer from 0 to 64, got {workers!r}")
        out["decode_workers"] = workers
    if "ttl" in section:
        out["ttl_s"] = _ttl(section["ttl"], f"{key}.ttl")
    if "metrics_log_interval" in section:
        interval = parse_duration(section["metrics_log_interval"], f"{key}.metrics_log_interval")
        if 0 < interval < MIN_METRICS_LOG_INTERVAL_S:  # 1ns logged the counters in a busy loop
            raise ConfigError(
                f"{key}.metrics_log_interval must be 0s (off) or at least "
                f"{MIN_METRICS_LOG_INTERVAL_S:g}s, got {scalar(section['metrics_log_interval'])!r}"
            )
        out["metrics_log_interval_s"] = interval
    if "query_timeout" in section:
        timeout = parse_duration(section["query_timeout"], f"{key}.query_timeout")
        # beyond it every query failed with a traceback in its timer thread, and ran unbounded
        out["query_timeout_s"] = check_wait(timeout, f"{key}.query_timeout", "0s: no limit")
    if "query_max_rows" in section:
        rows = scalar(section["query_max_rows"])
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ConfigError(f"{key}.query_max_rows must be a whole number ≥ 0 (0: no limit), got {rows!r}")
        out["query_max_rows"] = rows
    if "query_max_bytes" in section:
        size = scalar(section["query_max_bytes"])
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(
                f"{key}.query_max_bytes must be a whole number of bytes ≥ 0 (0: no limit), got {size!r}"
            )
        out["query_max_bytes"] = size
    return out


def _ttl(value: Any, key: str) -> float | None:
    """``exporters.duckdb.ttl`` in seconds; ``None`` (keep everything) for null, empty, ``0`` or
    ``0s``. A boolean is refused (``ttl: false`` equalled 0 and silently kept everything; ``true``
    is no duration either), and so is a bare number other than 0: retention deletes data, and
    ``ttl: 30`` is 30 seconds here but 30 nanoseconds in the OpenTelemetry Collector, never the
    30 days meant. Raises :class:`ConfigError` naming ``key``."""
    typed = scalar(value)
    if typed is None or typed == "":
        return None
    if isinstance(typed, bool):
        raise ConfigError(
            f"{key}: expected a duration like 30d, got the boolean {str(typed).lower()} (YAML reads "
            "unquoted true/false/yes/no/on/off as booleans); to keep everything leave ttl out or set 0"
        )
    if isinstance(typed, int | float) and typed != 0:
        raise _bare_number(typed, key)
    return parse_duration(typed, key) or None


def _bare_number(value: float, key: str) -> ConfigError:
    return ConfigError(
        f"{key}: expected a duration with a unit like 30d or 720h, got the bare number {value!r} "
        "(retention deletes data: say which unit is meant)"
    )


def parse_prune_age(value: Any, key: str) -> float:
    """The age beyond which a prune deletes traces (``POST /api/prune``'s ``older_than``), in
    seconds: a duration with a unit, as ``ttl``; a bare number, 0 included (which would delete
    everything), is refused with ``ttl``'s message. Raises :class:`ConfigError` naming ``key``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _bare_number(value, key)
    return parse_duration(value, key)


def _parse_exporters(
    exporters: dict[str, Any], used: list[str], base_dir: Path | None, authenticators: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eid, raw in exporters.items():
        section = _mapping(raw, f"exporters.{eid}")
        if _component_type(eid) in FORWARDER_TYPES:
            _check_structure(f"exporters.{eid}", eid in used, check_forwarder_keys, eid, section)
        else:
            keys = (section, _DUCKDB_KEYS, f"exporters.{eid}")
            _check_structure(f"exporters.{eid}", eid in used, _check_listener_keys, *keys)
        if eid not in used:
            continue
        if _component_type(eid) in FORWARDER_TYPES:
            out.setdefault("forwarders", []).append(
                parse_forwarder(eid, section, parse_duration=parse_duration, base_dir=base_dir)
            )
            continue
        if _component_type(eid) == "duckdb":
            out.update(_parse_duckdb(section, f"exporters.{eid}", authenticators, base_dir))
        if "query_endpoint" in section:
            value = section["query_endpoint"]
            key = f"exporters.{eid}.query_endpoint"
            if not isinstance(value, str):
                raise ConfigError(f"{key} must be a host:port string, got {value!r}")
            parse_endpoint(value, key)
            out["query_endpoint"] = value
        path = db_path_text(section.get("path"), f"exporters.{eid}.path")
        if path is not None:
            p = Path(os.path.expanduser(path))
            out["config_db_path"] = p if p.is_absolute() or base_dir is None else base_dir / p
            out["config_db_key"] = f"exporters.{eid}.path"
    return out


def _validate_query_endpoint(value: str, key: str, authenticated: bool) -> None:
    host, _ = parse_endpoint(value, key)
    if not authenticated and not _is_loopback(host):
        raise ConfigError(
            f"{key}: without auth (exporters.duckdb.auth.authenticator) the query API must bind a "
            f"loopback address, got {host!r}"
        )


def security_warnings(config: CollectorConfig) -> tuple[str, ...]:
    """What is allowed but exposes secrets, for ``--check-config`` and the start-up log: the query
    API on an address beyond loopback (only allowed with ``auth``) without ``tls``, where its
    bearer token and every query result (prompts, responses) cross the network in plaintext.

    A warning, not an error: TLS is often terminated in front of the collector (a reverse proxy,
    a service mesh sidecar), which the collector cannot see, and the OTLP receivers, here as in
    the OpenTelemetry Collector, may also listen in plaintext."""
    host, _ = parse_endpoint(config.query_endpoint, "exporters.duckdb.query_endpoint")
    if config.query_tls is not None or _is_loopback(host):
        return ()
    return (
        f"the query API listens on {config.query_endpoint}, beyond loopback, without TLS: its bearer "
        "token and every query result cross the network in plaintext; set exporters.duckdb.tls "
        "(cert_file, key_file), or keep it on loopback behind a TLS-terminating proxy",
    )


def config_from_mapping(
    data: dict[str, Any], base_dir: Path | None = None
) -> tuple[dict[str, Any], Path | None]:
    """Validate a loaded config mapping; return ``(CollectorConfig keyword arguments, configured db path)``;
    with a db path, the arguments hold ``config_db_key`` too (the key it came from).

    Raises :class:`ConfigError` naming the offending key.
    """
    for name in data:
        if name not in _TOP_KEYS:
            raise ConfigError(f"{name}: unknown top-level key (supported: {', '.join(_TOP_KEYS)})")
    receivers = _mapping(data.get("receivers"), "receivers")
    exporters = _mapping(data.get("exporters"), "exporters")
    processors = _mapping(data.get("processors"), "processors")
    for pid, section in processors.items():
        if _component_type(pid) not in _PROCESSOR_TYPES:
            raise ConfigError(
                f"processors.{pid}: unknown processor type {_component_type(pid)!r} (supported: batch)"
            )
        check_keys(_mapping(section, f"processors.{pid}"), _BATCH_KEYS, f"processors.{pid}")
    for rid in receivers:
        if _component_type(rid) not in _RECEIVER_TYPES:
            raise ConfigError(
                f"receivers.{rid}: unknown receiver type {_component_type(rid)!r} (supported: otlp)"
            )
    for eid in exporters:
        etype = _component_type(eid)
        if etype not in _EXPORTER_TYPES:
            raise ConfigError(
                f"exporters.{eid}: unknown exporter type {etype!r} (supported: duckdb, otlp, otlphttp)"
            )
    service = _mapping(data.get("service"), "service")
    check_keys(service, ("extensions", "pipelines", "telemetry"), "service")
    enabled_extensions = service.get("extensions") or []
    if not isinstance(enabled_extensions, list) or not all(isinstance(x, str) for x in enabled_extensions):
        raise ConfigError("service.extensions must be a list of extension ids")
    authenticators = parse_extensions(
        _mapping(data.get("extensions"), "extensions"), enabled_extensions, base_dir
    )
    pipelines = _mapping(service.get("pipelines"), "service.pipelines")
    for name in pipelines:
        if _component_type(name) != "traces":
            raise ConfigError(f"service.pipelines.{name}: spanreel only collects traces")
    if not pipelines:
        raise ConfigError("service.pipelines.traces is missing: the collector needs a traces pipeline")
    # Every traces pipeline (``traces``, ``traces/<name>``) is read: together they name one otlp
    # receiver and one duckdb exporter, and any otlp / otlphttp exporters to forward to.
    lists: dict[str, list[str]] = {"receivers": [], "processors": [], "exporters": []}
    for name, value in pipelines.items():
        pipeline = _mapping(value, f"service.pipelines.{name}")
        check_keys(pipeline, ("receivers", "processors", "exporters"), f"service.pipelines.{name}")
        for kind, defined in (("receivers", receivers), ("processors", processors), ("exporters", exporters)):
            key = f"service.pipelines.{name}.{kind}"
            ids = pipeline.get(kind) or []
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ConfigError(f"{key} must be a list of component ids")
            for cid in ids:
                if cid not in defined:
                    raise ConfigError(f"{key} refers to {cid!r}, which is not defined under {kind}")
                if cid not in lists[kind]:
                    lists[kind].append(cid)
            if not ids and kind != "processors":
                raise ConfigError(f"{key} is empty: add " + ("otlp" if kind == "receivers" else "duckdb"))
    storage = [e for e in lists["exporters"] if _component_type(e) == "duckdb"]
    if len(lists["receivers"]) > 1 or len(storage) != 1:
        raise ConfigError(
            "service.pipelines: one otlp receiver and one duckdb exporter are supported "
            "(plus any otlp / otlphttp exporters to forward to)"
        )
    kwargs: dict[str, Any] = {"grpc_endpoint": None, "http_endpoint": None}
    kwargs.update(_parse_telemetry(_mapping(service.get("telemetry"), "service.telemetry")))
    kwargs.update(_parse_receivers(receivers, lists["receivers"], base_dir, authenticators))
    exp = _parse_exporters(exporters, lists["exporters"], base_dir, authenticators)
    db_path = exp.pop("config_db_path", None)
    exp["forwarders"] = tuple(exp.get("forwarders", ()))
    kwargs.update(exp)
    return kwargs, db_path


#: ``service.telemetry.logs.level`` (the OpenTelemetry Collector's zap levels) → logging level name.
_LOG_LEVELS: Final = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


def _parse_telemetry(telemetry: dict[str, Any]) -> dict[str, Any]:
    logs = _mapping(telemetry.get("logs"), "service.telemetry.logs")
    level = logs.get("level", "info")
    if not isinstance(level, str) or level.lower() not in _LOG_LEVELS:
        choices = ", ".join(_LOG_LEVELS)
        raise ConfigError(f"service.telemetry.logs.level must be one of {choices}, got {level!r}")
    ignored = [f"service.telemetry.{key}" for key in telemetry if key != "logs"]
    ignored += [f"service.telemetry.logs.{key}" for key in logs if key != "level"]
    return {"log_level": _LOG_LEVELS[level.lower()], "ignored_settings": tuple(ignored)}


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
    configured_db: Path | None = None
    if cfg_file is not None:
        kwargs, configured_db = config_from_mapping(load_config(cfg_file), cfg_file.parent)
    db_key = kwargs.pop("config_db_key", "exporters.duckdb.path")
    db_path = resolve_db_path(db, str(cfg_file) if cfg_file is not None else None)
    if db:
        db_source = "--db"
    elif os.environ.get("SPANREEL_DB"):
        db_source = "SPANREEL_DB"
    elif configured_db is not None:
        db_source = db_key
    else:
        db_source = "the default database path"
    check_db_file(db_path, db_source)
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
    _validate_query_endpoint(
        config.query_endpoint, "exporters.duckdb.query_endpoint", authenticated=config.query_auth is not None
    )
    if config.grpc_endpoint is None and config.http_endpoint is None:
        raise ConfigError("receivers.otlp.protocols: neither grpc nor http is enabled")
    _check_distinct_ports(config, overrides)
    return config


#: What ``localhost`` binds: the IPv4 and IPv6 loopback addresses (gRPC binds both).
_LOCALHOST_ADDRESSES: Final = frozenset({"127.0.0.1", "::1"})


_OVERLAP_NOTE: Final = "the hosts overlap: localhost is 127.0.0.1 and ::1, 0.0.0.0 and :: are every interface"


def _bound_addresses(host: str) -> frozenset[str] | None:
    """The addresses a listener on ``host`` takes, for the clash check: ``None`` for every
    interface (``0.0.0.0``, ``::``, an empty host), the loopback pair for ``localhost``, the
    normalised address for an IP literal (``0:0::1`` is ``::1``), else the lower-cased name."""
    name = host.strip().lower().rstrip(".")
    if name in ("", "localhost"):
        return None if not name else _LOCALHOST_ADDRESSES
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return frozenset({name})
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return None
    return frozenset({str(address)})


def _check_distinct_ports(config: CollectorConfig, from_flags: Collection[str]) -> None:
    """Raise :class:`ConfigError` when two of the collector's listeners would take the same port
    on overlapping hosts (the second could not bind): equal ports, and the same address once
    ``localhost`` is read as loopback and IP literals are normalised, or one of them listening on
    every interface (``0.0.0.0`` / ``::`` / ``:port`` overlap any host). Port 0 never clashes."""
    taken: dict[int, list[tuple[str, str, frozenset[str] | None]]] = {}
    for name, endpoint in _listeners(config, from_flags):
        host, port = parse_endpoint(endpoint, name)
        if port == 0:  # any free port: never a clash
            continue
        addresses = _bound_addresses(host)
        for other_name, other_endpoint, other_addresses in taken.get(port, []):
            if addresses is None or other_addresses is None or addresses & other_addresses:
                why = "" if addresses == other_addresses else f" ({_OVERLAP_NOTE})"
                raise ConfigError(
                    f"{name} ({endpoint}) and {other_name} ({other_endpoint}) both listen on port "
                    f"{port}{why}: give each its own port (OTLP's defaults: 4317 gRPC, 4318 HTTP; "
                    "0 picks a free one)"
                )
        taken.setdefault(port, []).append((name, endpoint, addresses))
