"""Settings of the forwarding exporters ``otlp`` (gRPC) and ``otlphttp`` (pure parsing, no I/O).

The keys are the OpenTelemetry Collector's (exporterhelper / configgrpc / confighttp,
https://github.com/open-telemetry/opentelemetry-collector/tree/main/exporter/otlpexporter and
…/otlphttpexporter) so a section can be copied from an existing collector config::

    exporters:
      otlphttp/upstream:
        endpoint: https://otel.example.com:4318      # traces go to <endpoint>/v1/traces
        headers: {x-api-key: "${env:UPSTREAM_KEY}"}
        compression: gzip                           # gzip (default) | none
        timeout: 10s
        retry_on_failure: {enabled: true, initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s}
        sending_queue: {enabled: true, queue_size: 1000}

Supported keys: ``endpoint`` (otlp: ``host:port``, ``http(s)://host:port``, or a gRPC naming-syntax
target passed to the channel as written: ``dns:///host:port``, ``dns://dns-server/host:port``,
``ipv4:addr:port[,addr:port…]``, ``ipv6:[addr]:port[,…]``, ``unix:path``, ``unix:///absolute_path``,
``unix-abstract:name``; TLS unless ``tls.insecure``, except that ``http://`` is plaintext and
``https://`` TLS); ``traces_endpoint`` (otlphttp: the full URL); ``headers`` (string values only: an
unquoted ``0123`` is the YAML number 83, and is refused rather than sent as ``83``);
``compression``; ``encoding`` (otlphttp: ``proto`` | ``json``); ``timeout``; ``tls.insecure``,
``tls.insecure_skip_verify`` (otlphttp, or a plaintext otlp), ``tls.ca_file``, ``tls.cert_file``,
``tls.key_file``; ``retry_on_failure.{enabled, initial_interval, max_interval, max_elapsed_time,
multiplier, randomization_factor}``; ``sending_queue.{enabled, queue_size, num_consumers, sizer}``
(``sizer``: ``requests`` (default), ``items`` = spans, or ``bytes``). Anything else is a
:class:`~spanreel._config.ConfigError` naming the key. Durations use the Collector's syntax
(``500ms``, ``5s``, ``1m``); ``max_elapsed_time: 0`` retries without a time limit.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from spanreel._config import ConfigError, check_keys, config_file, scalar

__all__ = [
    "FORWARDER_TYPES",
    "GRPC_NAMING_SCHEMES",
    "MAX_WAIT_S",
    "ClientTLS",
    "ForwarderConfig",
    "QueueSettings",
    "RetrySettings",
    "check_forwarder_keys",
    "check_wait",
    "parse_forwarder",
]

#: exporter type → wire protocol
FORWARDER_TYPES: Final[Mapping[str, Literal["grpc", "http"]]] = {"otlp": "grpc", "otlphttp": "http"}
#: OTLP/HTTP path of the traces signal, appended to ``endpoint``.
TRACES_PATH: Final = "/v1/traces"

Sizer = Literal["requests", "items", "bytes"]

#: The longest timeout or retry interval, in seconds (365 days): longer waits overflow the
#: platform's timers (``Event.wait`` / ``socket.settimeout`` raise ``OverflowError`` past about
#: 292 years), and a year is "never" in practice.
MAX_WAIT_S: Final = 365 * 86400.0


def check_wait(seconds: float, key: str, hint: str = "") -> float:
    """``seconds`` when at most :data:`MAX_WAIT_S`, else :class:`~spanreel._config.ConfigError`
    naming ``key`` (``hint``: what to write instead, e.g. ``0s: no limit``)."""
    if seconds > MAX_WAIT_S:
        raise ConfigError(f"{key} must be at most 365d{f' ({hint})' if hint else ''}, got {seconds:g} s")
    return seconds


@dataclass(frozen=True)
class RetrySettings:
    """``retry_on_failure``: exponential backoff, times in seconds (OTel Collector defaults)."""

    enabled: bool = True
    initial_interval_s: float = 5.0
    max_interval_s: float = 30.0
    #: give an export up after this long (0: never give up while the collector runs)
    max_elapsed_time_s: float = 300.0
    multiplier: float = 1.5
    randomization_factor: float = 0.5


@dataclass(frozen=True)
class QueueSettings:
    """``sending_queue``: the bounded in-memory queue between the receivers and the upstream.

    When full, the **oldest** queued export is dropped to make room (counted and logged): the
    local database already holds every span, so the upstream gets the most recent data first.
    ``enabled: false`` means a queue of one export per consumer (the newest waiting one wins).
    """

    enabled: bool = True
    #: capacity in units of ``sizer``
    queue_size: int = 1000
    #: threads sending concurrently
    num_consumers: int = 10
    sizer: Sizer = "requests"


@dataclass(frozen=True)
class ClientTLS:
    """``tls``: how the forwarder connects. Paths are absolute (resolved against the config file)."""

    #: gRPC only: plaintext instead of TLS (for otlphttp the URL scheme decides)
    insecure: bool = False
    #: do not verify the server's certificate (testing only)
    insecure_skip_verify: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class ForwarderConfig:
    """One forwarding exporter.

    ``target`` is ``host:port`` for gRPC and the full traces URL for HTTP. ``headers`` are sent
    with every export (gRPC metadata keys lower-cased). ``timeout_s`` bounds one attempt.
    """

    name: str
    protocol: Literal["grpc", "http"]
    target: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    compression: Literal["gzip", "none"] = "gzip"
    #: HTTP body encoding sent upstream (gRPC is always protobuf)
    encoding: Literal["proto", "json"] = "proto"
    timeout_s: float = 5.0
    tls: ClientTLS = ClientTLS()
    retry: RetrySettings = RetrySettings()
    queue: QueueSettings = QueueSettings()

    @property
    def plaintext(self) -> bool:
        """Whether the connection is unencrypted."""
        if self.protocol == "http":
            return self.target.startswith("http://")
        return self.tls.insecure


_TOP_KEYS: Final = {
    "grpc": frozenset(
        {"endpoint", "headers", "compression", "timeout", "tls", "retry_on_failure", "sending_queue"}
    ),
    "http": frozenset(
        {"endpoint", "traces_endpoint", "headers", "compression", "encoding", "timeout", "tls"}
        | {"retry_on_failure", "sending_queue"}
    ),
}
_TLS_KEYS: Final = frozenset({"insecure", "insecure_skip_verify", "ca_file", "cert_file", "key_file"})
_RETRY_KEYS: Final = frozenset(
    {"enabled", "initial_interval", "max_interval", "max_elapsed_time", "multiplier", "randomization_factor"}
)
_QUEUE_KEYS: Final = frozenset({"enabled", "queue_size", "num_consumers", "sizer"})


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def _bool(section: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = scalar(section.get(name, default))
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name} must be true or false, got {value!r}")
    return value


def _int(section: Mapping[str, Any], name: str, key: str, default: int, minimum: int = 1) -> int:
    value = scalar(section.get(name, default))
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}.{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def _number(section: Mapping[str, Any], name: str, key: str, default: float, minimum: float) -> float:
    value = scalar(section.get(name, default))
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{key}.{name} must be a number ≥ {minimum}, got {value!r}")
    return float(value)


#: An HTTP field name (RFC 9110 §5.1: a token).
_HTTP_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A gRPC metadata key (gRPC over HTTP/2 spec, lower case once the name is lower-cased).
_GRPC_NAME: Final = re.compile(r"[0-9a-z_.\-]+")
#: A header value both transports send: visible ASCII, spaces and (HTTP only) tabs inside.
_VALUE: Final = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")


def _headers(value: Any, key: str, grpc: bool) -> tuple[tuple[str, str], ...]:
    """The ``headers`` of an exporter. Raises :class:`ConfigError` for a name or value the
    transport would refuse when sending (they used to pass ``--check-config`` and then fail every
    export, or the start-up)."""
    headers = _mapping(value, key)
    out: list[tuple[str, str]] = []
    for name, raw in headers.items():
        if not isinstance(name, str) or not _HTTP_NAME.fullmatch(name):
            raise ConfigError(f"{key}: invalid header name {name!r} (letters, digits and !#$%&'*+-.^_`|~)")
        if grpc and (not _GRPC_NAME.fullmatch(name.lower()) or name.lower().startswith("grpc-")):
            raise ConfigError(
                f"{key}: invalid gRPC metadata key {name!r} (letters, digits, '_', '.', '-'; "
                "not starting with grpc-)"
            )
        if grpc and name.lower().endswith("-bin"):
            raise ConfigError(f"{key}: binary metadata ({name!r}: a -bin key) is not supported")
        if not isinstance(raw, str):
            # YAML 1.1 types unquoted scalars: 0123 is 83, 1_000 is 1000, 1:30 is 90 (base 60),
            # yes is true; sending str() of that sent another tenant or org id upstream
            kind = "nothing" if raw is None else f"the {type(raw).__name__} {raw!r}"
            raise ConfigError(
                f"{key}.{name} must be a string, got {kind}: quote the value (YAML reads unquoted "
                "digits, 1_000, 1:30 or yes as a number or boolean, 0123 as 83)"
            )
        text = raw
        if text and (not _VALUE.fullmatch(text) or (grpc and "\t" in text)):
            raise ConfigError(
                f"{key}.{name}: a header value must be printable ASCII on one line "
                "(no accented letters, control characters, or spaces at either end)"
            )
        out.append((name.lower() if grpc else name, text))
    return tuple(out)


#: A port number as written in an endpoint: ASCII digits only (``str.isdigit`` and ``int`` also
#: take other scripts' digits, and ``int`` takes ``4_317`` and ``+4317``: gRPC refused those).
_PORT: Final = re.compile(r"[0-9]{1,5}")


#: gRPC name-resolution schemes that grpcio (gRPC C-core) resolves (grpc/doc/naming.md): an
#: ``otlp`` endpoint written with one is given to the channel as it is, as the OpenTelemetry
#: Collector does (``dns:///otel-gateway-headless:4317`` for client-side load balancing).
GRPC_NAMING_SCHEMES: Final = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")
_GRPC_FORMS: Final = (
    "host:port, http(s)://host:port, dns:[//authority/]host:port, ipv4:address:port[,…], "
    "ipv6:[address]:port[,…], unix:path, unix:///absolute_path or unix-abstract:name"
)


def _host_port_ok(text: str, ipv: int | None = None) -> bool:
    """Whether ``text`` is ``host:port`` (``[v6]:port``) with a port from 1 to 65535; with ``ipv``
    (4 or 6), the host must be an IP address of that version."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        return False
    if ipv is None:
        return True
    if ipv == 6:
        if not (host.startswith("[") and host.endswith("]")):
            return False
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).version == ipv
    except ValueError:
        return False


def _naming_target_ok(scheme: str, rest: str) -> bool:
    """Whether ``rest`` (what follows ``scheme:``) is a target of that gRPC naming scheme. A port
    is required where the scheme has one: gRPC's default (443, or 80 for plaintext in some
    implementations) is never OTLP's 4317, and a plain endpoint needs one too."""
    if scheme == "dns":
        if rest.startswith("//"):  # dns://[dns server]/host:port
            _, sep, rest = rest[2:].partition("/")
            if not sep:
                return False
        return _host_port_ok(rest)
    if scheme in ("ipv4", "ipv6"):
        return all(_host_port_ok(part, 4 if scheme == "ipv4" else 6) for part in rest.split(","))
    if scheme == "unix" and rest.startswith("//"):  # unix://absolute_path: no authority
        return rest.startswith("///") and len(rest) > 3
    return bool(rest)


def _grpc_target(endpoint: str, key: str) -> tuple[str, bool | None]:
    """The channel target and, for an ``http://`` / ``https://`` endpoint, whether it asks for
    plaintext (``None``: ``tls.insecure`` decides, as in the Collector). ``host:port`` and gRPC
    naming-syntax targets (:data:`GRPC_NAMING_SCHEMES`) are kept as written."""
    text = endpoint.strip()
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in GRPC_NAMING_SCHEMES:
        if not _naming_target_ok(scheme.lower(), rest):
            raise ConfigError(f"{key}: expected {_GRPC_FORMS}, got {endpoint!r}")
        return text, None
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"{key}: expected {_GRPC_FORMS}, got {endpoint!r}")
        plaintext = parts.scheme == "http"
        port = parts.port or (80 if plaintext else 443)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{port}", plaintext
    if not _host_port_ok(text):
        raise ConfigError(f"{key}: expected host:port, got {endpoint!r}")
    return text, None


def _http_url(value: str, key: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: expected an http:// or https:// URL, got {value!r}")
    return value.strip()


def _choice(section: Mapping[str, Any], name: str, key: str, choices: tuple[str, ...], default: str) -> str:
    value = section.get(name, default)
    if value not in choices:
        raise ConfigError(f"{key}.{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _compression(value: Any, key: str) -> Literal["gzip", "none"]:
    if value in ("", None, "none"):  # the OpenTelemetry Collector's spellings of "no compression"
        return "none"
    if value != "gzip":
        raise ConfigError(
            f"{key} must be gzip or none, got {value!r} (the OpenTelemetry Collector's zstd, snappy, "
            "zlib, deflate and lz4 are not supported)"
        )
    return "gzip"


def check_forwarder_keys(component_id: str, section: Any) -> None:
    """Check the structure of one ``exporters.<component_id>`` section of type ``otlp`` or
    ``otlphttp``: mappings where mappings belong, no unknown key at any level (``tls``,
    ``retry_on_failure``, ``sending_queue``, ``headers`` included). Values are not checked: this
    is what an exporter no pipeline lists gets (the OpenTelemetry Collector refuses an unknown key
    in any defined component). Raises :class:`~spanreel._config.ConfigError` naming the key."""
    key = f"exporters.{component_id}"
    section = _mapping(section, key)
    check_keys(section, _TOP_KEYS[FORWARDER_TYPES[component_id.split("/", 1)[0]]], key)
    _mapping(section.get("headers"), f"{key}.headers")
    nested = (("tls", _TLS_KEYS), ("retry_on_failure", _RETRY_KEYS), ("sending_queue", _QUEUE_KEYS))
    for name, allowed in nested:
        check_keys(_mapping(section.get(name), f"{key}.{name}"), allowed, f"{key}.{name}")


def parse_forwarder(
    component_id: str,
    section: Mapping[str, Any],
    *,
    parse_duration: Callable[[Any, str], float],
    base_dir: Path | None = None,
) -> ForwarderConfig:
    """Validate one ``exporters.<component_id>`` section of type ``otlp`` or ``otlphttp``.

    ``parse_duration(value, key) -> seconds`` reads the Collector's duration syntax (the caller
    passes :func:`spanreel.collector._config.parse_duration`). Relative certificate paths are
    resolved against ``base_dir`` (the config file's folder). Raises
    :class:`~spanreel._config.ConfigError` naming the offending key.
    """
    key = f"exporters.{component_id}"
    exporter_type = component_id.split("/", 1)[0]
    protocol = FORWARDER_TYPES[exporter_type]
    grpc = protocol == "grpc"
    check_forwarder_keys(component_id, section)
    section = _mapping(section, key)

    tls_section = _mapping(section.get("tls"), f"{key}.tls")
    check_keys(tls_section, _TLS_KEYS, f"{key}.tls")
    files = {
        name: config_file(tls_section[name], f"{key}.tls.{name}", base_dir)
        for name in ("ca_file", "cert_file", "key_file")
        if tls_section.get(name) not in (None, "")
    }
    if ("cert_file" in files) != ("key_file" in files):
        raise ConfigError(f"{key}.tls: cert_file and key_file go together (client certificate)")
    insecure = _bool(tls_section, "insecure", f"{key}.tls", False)

    endpoint = section.get("endpoint")
    if grpc:
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ConfigError(f"{key}.endpoint is required (host:port of the upstream OTLP/gRPC receiver)")
        target, scheme_plaintext = _grpc_target(endpoint, f"{key}.endpoint")
        if scheme_plaintext is not None:
            insecure = scheme_plaintext
        if not insecure and _bool(tls_section, "insecure_skip_verify", f"{key}.tls", False):
            # grpcio cannot connect over TLS without verifying the server: refuse rather than ignore
            raise ConfigError(
                f"{key}.tls.insecure_skip_verify is not supported for otlp (gRPC): give the upstream's "
                "CA certificate with tls.ca_file, or use tls.insecure: true for plaintext"
            )
    else:
        traces_endpoint = section.get("traces_endpoint")
        if isinstance(traces_endpoint, str) and traces_endpoint.strip():
            target = _http_url(traces_endpoint, f"{key}.traces_endpoint")
        elif isinstance(endpoint, str) and endpoint.strip():
            target = _http_url(endpoint, f"{key}.endpoint").rstrip("/") + TRACES_PATH
        else:
            raise ConfigError(f"{key}.endpoint is required (base URL of the upstream OTLP/HTTP receiver)")
    tls = ClientTLS(
        insecure=insecure,
        insecure_skip_verify=_bool(tls_section, "insecure_skip_verify", f"{key}.tls", False),
        **files,
    )

    retry_section = _mapping(section.get("retry_on_failure"), f"{key}.retry_on_failure")
    check_keys(retry_section, _RETRY_KEYS, f"{key}.retry_on_failure")
    rkey = f"{key}.retry_on_failure"
    defaults = RetrySettings()

    def duration(name: str, default: float) -> float:
        if name not in retry_section:
            return default
        seconds = parse_duration(retry_section[name], f"{rkey}.{name}")
        return seconds if name == "max_elapsed_time" else check_wait(seconds, f"{rkey}.{name}")

    retry = RetrySettings(
        enabled=_bool(retry_section, "enabled", rkey, True),
        initial_interval_s=duration("initial_interval", defaults.initial_interval_s),
        max_interval_s=duration("max_interval", defaults.max_interval_s),
        max_elapsed_time_s=duration("max_elapsed_time", defaults.max_elapsed_time_s),
        multiplier=_number(retry_section, "multiplier", rkey, defaults.multiplier, 1.0),
        randomization_factor=_number(
            retry_section, "randomization_factor", rkey, defaults.randomization_factor, 0
        ),
    )
    if retry.randomization_factor > 1:
        raise ConfigError(
            f"{rkey}.randomization_factor must be between 0 and 1, got {retry.randomization_factor}"
        )
    if retry.initial_interval_s <= 0 or retry.max_interval_s < retry.initial_interval_s:
        raise ConfigError(f"{rkey}: need 0 < initial_interval ≤ max_interval")

    queue_section = _mapping(section.get("sending_queue"), f"{key}.sending_queue")
    check_keys(queue_section, _QUEUE_KEYS, f"{key}.sending_queue")
    qkey = f"{key}.sending_queue"
    queue = QueueSettings(
        enabled=_bool(queue_section, "enabled", qkey, True),
        queue_size=_int(queue_section, "queue_size", qkey, QueueSettings.queue_size),
        num_consumers=_int(queue_section, "num_consumers", qkey, QueueSettings.num_consumers),
        sizer=_choice(queue_section, "sizer", qkey, ("requests", "items", "bytes"), "requests"),  # type: ignore[arg-type]
    )
    if queue.num_consumers > 64:
        raise ConfigError(f"{qkey}.num_consumers must be at most 64, got {queue.num_consumers}")

    timeout = (
        parse_duration(section["timeout"], f"{key}.timeout")
        if "timeout" in section
        else (5.0 if grpc else 30.0)
    )
    if timeout <= 0:
        raise ConfigError(f"{key}.timeout must be positive")
    check_wait(timeout, f"{key}.timeout")
    return ForwarderConfig(
        name=component_id,
        protocol=protocol,
        target=target,
        headers=_headers(section.get("headers"), f"{key}.headers", grpc),
        compression=_compression(section.get("compression", "gzip"), f"{key}.compression"),
        encoding="proto" if grpc else _choice(section, "encoding", key, ("proto", "json"), "proto"),  # type: ignore[arg-type]
        timeout_s=timeout,
        tls=tls,
        retry=retry,
        queue=queue,
    )
