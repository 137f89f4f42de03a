"""Bearer-token authentication and TLS for the collector's listeners.

Configured the way the OpenTelemetry Collector does it
(https://github.com/open-telemetry/opentelemetry-collector/blob/main/config/configtls/README.md and
the ``bearertokenauth`` extension of opentelemetry-collector-contrib)::

    extensions:
      bearertokenauth:
        token: ${env:SPANREEL_TOKEN}      # or filename: token.txt; scheme defaults to "Bearer"
    receivers:
      otlp:
        protocols:
          grpc:
            auth: {authenticator: bearertokenauth}
            tls: {cert_file: server.crt, key_file: server.key}
    exporters:
      duckdb:
        auth: {authenticator: bearertokenauth}   # the query API
        tls: {cert_file: server.crt, key_file: server.key}   # HTTPS on it (the same keys)
    service:
      extensions: [bearertokenauth]

Requests must carry ``authorization: <scheme> <token>`` (gRPC metadata or HTTP header; the
scheme in any case, as HTTP defines it); anything else is refused with gRPC ``UNAUTHENTICATED`` /
HTTP 401. Tokens are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from spanreel._config import ConfigError, check_keys, config_file

__all__ = [
    "AUTHORIZATION",
    "TLS_KEYS",
    "TLSSettings",
    "check_authorization",
    "first_certificate_pem",
    "parse_auth",
    "parse_extensions",
    "parse_tls",
    "pinned_client_context",
    "server_ssl_context",
]

AUTHORIZATION: Final = "authorization"
_AUTHENTICATOR_TYPES: Final = frozenset({"bearertokenauth"})


@dataclass(frozen=True)
class TLSSettings:
    """A receiver's ``tls`` block, as the OTel Collector's: server certificate chain and private key
    (PEM files); ``client_ca_file``: clients must present a certificate signed by one of these CAs
    (mutual TLS; ``None``: no client certificate asked); ``min_version``: ``"1.2"`` or ``"1.3"``."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    min_version: str = "1.2"


def _credentials(value: str) -> str:
    """``<scheme> <token>`` with the scheme lower-cased and one space after it: the auth-scheme is
    case-insensitive and may be followed by several spaces (RFC 9110 §11.4, §11.1)."""
    scheme, _, token = value.partition(" ")
    return f"{scheme.lower()} {token.lstrip(' ')}"


def check_authorization(received: str | None, expected: str | None) -> bool:
    """True when no authentication is configured (``expected`` is ``None``) or ``received`` (the
    ``authorization`` header / metadata value) carries ``expected``'s scheme (in any case, as HTTP
    defines it: ``bearer`` = ``Bearer``) and token — compared in constant time."""
    if expected is None:
        return True
    if received is None:
        return False
    return hmac.compare_digest(
        _credentials(received).encode("utf-8", "surrogateescape"), _credentials(expected).encode("utf-8")
    )


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def parse_extensions(
    extensions: dict[str, Any], enabled: list[str], base_dir: Path | None = None
) -> dict[str, str]:
    """Validate ``extensions`` (only ``bearertokenauth[/name]``: ``token``, or ``filename``, a file
    holding it, read once at start and relative to ``base_dir``; ``scheme``); return
    ``{id: "<scheme> <token>"}`` for those listed in ``service.extensions`` (``enabled``). Raises
    :class:`ConfigError`."""
    out: dict[str, str] = {}
    for xid, raw in extensions.items():
        xtype = str(xid).split("/", 1)[0]
        if xtype not in _AUTHENTICATOR_TYPES:
            raise ConfigError(
                f"extensions.{xid}: unknown extension type {xtype!r} (supported: bearertokenauth)"
            )
        section = _mapping(raw, f"extensions.{xid}")
        for key in section:
            if key not in ("token", "filename", "scheme"):
                raise ConfigError(f"extensions.{xid}.{key}: unknown setting (token, filename, scheme)")
        token = section.get("token")
        if token is not None and not isinstance(token, str):
            # "token is empty" was the message; and YAML reads 0123 as 83, 1e3 as a float
            raise ConfigError(
                f"extensions.{xid}.token must be a string, got {type(token).__name__} {token!r}: "
                "quote it (YAML reads unquoted digits as a number, 0123 as 83)"
            )
        if "filename" in section and "token" in section:
            raise ConfigError(f"extensions.{xid}: set token or filename, not both")
        if "filename" in section:
            token = _read_token_file(section["filename"], f"extensions.{xid}.filename", base_dir)
        if not isinstance(token, str) or not token.strip():
            raise ConfigError(
                f"extensions.{xid}.token is empty: set it (e.g. token: ${{env:SPANREEL_TOKEN}}) "
                "and make sure the environment variable is set"
            )
        scheme = section.get("scheme", "Bearer")
        if not isinstance(scheme, str) or not scheme or " " in scheme:
            raise ConfigError(f"extensions.{xid}.scheme must be one word such as Bearer, got {scheme!r}")
        if xid in enabled:
            out[xid] = f"{scheme} {token.strip()}"
    for xid in enabled:
        if xid not in extensions:
            raise ConfigError(f"service.extensions refers to {xid!r}, which is not defined under extensions")
    return out


def _read_token_file(value: Any, key: str, base_dir: Path | None) -> str:
    path = config_file(value, key, base_dir)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read the token file {str(path)!r}: {exc}") from None
    if not token:
        raise ConfigError(f"{key}: the token file {str(path)!r} is empty")
    return token


def parse_auth(section: dict[str, Any], key: str, authenticators: dict[str, str]) -> str | None:
    """The expected ``authorization`` value for ``section.auth`` (``None`` when absent).

    Raises :class:`ConfigError` when the authenticator is unknown or not enabled.
    """
    if "auth" not in section:
        return None
    auth = _mapping(section["auth"], f"{key}.auth")
    check_keys(auth, ("authenticator",), f"{key}.auth")
    name = auth.get("authenticator")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.auth.authenticator must name an extension, e.g. bearertokenauth")
    if name not in authenticators:
        raise ConfigError(
            f"{key}.auth.authenticator refers to {name!r}: define it under extensions and list it "
            "in service.extensions"
        )
    return authenticators[name]


#: ``tls.min_version`` values → :class:`ssl.TLSVersion` (older versions are refused).
_TLS_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
#: The keys of a receiver's ``tls`` section.
TLS_KEYS: Final = ("cert_file", "key_file", "client_ca_file", "min_version")


def parse_tls(section: dict[str, Any], key: str, base_dir: Path | None) -> TLSSettings | None:
    """``section.tls`` → :class:`TLSSettings` (``None`` when absent); relative paths are taken from
    ``base_dir``. Raises :class:`ConfigError` for a missing key, an unreadable file or a TLS
    version this receiver cannot enforce (gRPC's library sets no minimum above 1.2)."""
    if "tls" not in section:
        return None
    tls = _mapping(section["tls"], f"{key}.tls")
    for name in tls:
        if name not in TLS_KEYS:
            raise ConfigError(f"{key}.tls.{name}: unsupported setting ({', '.join(TLS_KEYS)})")
    cert_file = config_file(tls.get("cert_file"), f"{key}.tls.cert_file", base_dir)
    key_file = config_file(tls.get("key_file"), f"{key}.tls.key_file", base_dir)
    client_ca = tls.get("client_ca_file")
    client_ca_key = f"{key}.tls.client_ca_file"
    client_ca_file = None if client_ca is None else config_file(client_ca, client_ca_key, base_dir)
    min_version = str(tls.get("min_version", "1.2"))
    if min_version not in _TLS_VERSIONS:
        raise ConfigError(f"{key}.tls.min_version must be 1.2 or 1.3, got {min_version!r}")
    if min_version != "1.2" and key.endswith(".grpc"):
        raise ConfigError(f"{key}.tls.min_version: the gRPC receiver can only enforce 1.2")
    settings = TLSSettings(cert_file, key_file, client_ca_file, min_version)
    try:
        server_ssl_context(settings)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{key}.tls: cannot load the certificate, key or client CA: {exc}") from exc
    return settings


def server_ssl_context(settings: TLSSettings) -> ssl.SSLContext:
    """A server context for ``settings`` (TLS ``min_version`` or later; with ``client_ca_file``,
    client certificates required and verified). Raises ``ssl.SSLError`` / ``OSError``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = _TLS_VERSIONS[settings.min_version]
    context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.client_ca_file is not None:
        context.load_verify_locations(cafile=settings.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


_PEM_CERTIFICATE: Final = re.compile(r"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----")


def first_certificate_pem(cert_file: Path) -> str:
    """The first certificate of a PEM file (the server's own, before its chain). Raises
    ``OSError``, or ``ValueError`` when the file holds no PEM certificate."""
    match = _PEM_CERTIFICATE.search(cert_file.read_text(encoding="ascii", errors="replace"))
    if match is None:
        raise ValueError(f"no PEM certificate in {cert_file}")
    return match.group(0) + "\n"


def pinned_client_context(
    certificate_pem: str, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """A client context that trusts exactly one server certificate, ``certificate_pem`` (pinning:
    no CA, not even the system's, vouches for another), whatever name it was issued for: the
    CLI reaches a collector on this machine at the address of its discovery file (``0.0.0.0``,
    ``127.0.0.1``), rarely the name on its certificate. With ``client_cert`` (PEM; the key in
    it or in ``client_key``) the client presents it (mutual TLS). Raises ``ssl.SSLError`` /
    ``OSError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # the certificate itself is pinned: nothing else verifies
    context.verify_mode = ssl.CERT_REQUIRED
    # the pinned certificate is the trust anchor even when a CA issued it (no chain to a root)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=certificate_pem)
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context
