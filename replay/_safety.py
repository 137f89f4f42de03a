"""What replay may contact, and how it retries (policy pure; DNS resolution at the edge).

Hosts: replay only sends to the URL recorded on each span or to ``--base-url`` (redirects are
not followed). A trace file can come from anyone, so before a request is sent its host is
checked: link-local addresses (IPv4 ``169.254.0.0/16`` — which holds the AWS/GCP/Azure/OpenStack
metadata endpoint ``169.254.169.254`` — and IPv6 ``fe80::/10``), other well-known cloud metadata
addresses (``fd00:ec2::254`` AWS IPv6, ``100.100.100.200`` Alibaba Cloud, ``168.63.129.16``
Azure wire server) and metadata host names (``metadata.google.internal``, ``metadata.goog``,
``metadata``, ``instance-data``) are refused — as a literal or as any address the name resolves
to — unless the host is explicitly allowed (``--allow-host``). IPv4-mapped IPv6 addresses are
checked as IPv4.

Retries: HTTP 429 and 5xx (and connection errors) are retried up to ``max_retries`` times. The
delay honours ``Retry-After`` (delta-seconds or an HTTP-date, RFC 9110 §10.2.3), else grows
exponentially from ``base_delay``; every delay is capped at ``max_delay`` seconds.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from spanreel._retry_after import parse_retry_after

__all__ = [
    "METADATA_HOSTNAMES",
    "RetryPolicy",
    "UnsafeHostError",
    "check_url",
    "forbidden_reason",
    "parse_retry_after",
]

#: Host names of cloud instance-metadata services.
METADATA_HOSTNAMES: frozenset[str] = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16", "169.254.169.254")
)
_LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")

Resolver = Callable[[str, int], Collection[str]]


class UnsafeHostError(ValueError):
    """The request would go to a link-local or cloud-metadata address; the message names it and
    how to allow it (``--allow-host``)."""


def _classify(address: str) -> tuple[str, str] | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return str(ip), "a cloud instance-metadata address"
    if (isinstance(ip, ipaddress.IPv4Address) and ip in _LINK_LOCAL_V4) or (
        isinstance(ip, ipaddress.IPv6Address) and ip in _LINK_LOCAL_V6
    ):
        return str(ip), "a link-local address"
    return None


def forbidden_reason(address: str) -> str | None:
    """Why an IP address is refused, e.g. ``"169.254.169.254 is a cloud instance-metadata
    address"`` (``None``: allowed, or not an IP address). Pure."""
    found = _classify(address)
    return None if found is None else f"{found[0]} is {found[1]}"


def _system_resolver(host: str, port: int) -> Collection[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return ()  # unresolvable: the request itself will fail with a clear connect error
    return {str(info[4][0]) for info in infos}


def check_url(url: str, allowed_hosts: Collection[str] = (), resolve: Resolver | None = None) -> None:
    """Raise :class:`UnsafeHostError` when ``url``'s host is a metadata name, or is / resolves to
    a refused address (module docstring), unless the host is in ``allowed_hosts``
    (case-insensitive host names or literal addresses). ``resolve``: ``(host, port) -> addresses``
    (default: the system resolver)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or host in {h.strip().strip("[]").rstrip(".").lower() for h in allowed_hosts}:
        return
    hint = f"(pass --allow-host {host} to allow it)"
    if host in METADATA_HOSTNAMES:
        raise UnsafeHostError(f"refusing to send to {host}: a cloud instance-metadata host name {hint}")
    reason = forbidden_reason(host)
    if reason is None:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        for address in sorted((resolve or _system_resolver)(host, port)):
            found = _classify(address)
            if found is not None:
                reason = f"it resolves to {found[0]}, {found[1]}"
                break
    if reason is not None:
        raise UnsafeHostError(f"refusing to send to {host}: {reason} {hint}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of HTTP 429 / 5xx answers and connection errors.

    ``max_retries``: extra attempts (0 disables retrying). ``base_delay``: seconds before the
    first retry without ``Retry-After``; doubled each time. ``max_delay``: cap in seconds on any
    single wait, also on a server's ``Retry-After``.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    @staticmethod
    def retryable_status(status: int) -> bool:
        return status == 429 or status >= 500

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        wait = retry_after if retry_after is not None else self.base_delay * 2 ** (retry_number - 1)
        return max(0.0, min(wait, self.max_delay))
