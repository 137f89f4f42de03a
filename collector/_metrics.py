"""The collector's counters and its in-memory queue bound (single-threaded: the event loop owns them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Counters", "QueueBudget"]


@dataclass
class Counters:
    """Totals since start-up (exposed by ``GET /api/health`` and logged periodically)."""

    #: export requests decoded (gRPC + HTTP)
    received_requests: int = 0
    #: spans in decoded requests, valid and invalid
    received_spans: int = 0
    #: invalid spans refused through OTLP partial success
    rejected_spans: int = 0
    #: requests refused because the queue was full (UNAVAILABLE / 503; clients retry them)
    refused_requests: int = 0
    #: requests that could not be decoded or were over the size limit (400/413, INVALID_ARGUMENT…)
    malformed_requests: int = 0
    #: requests without the configured bearer token (401 / UNAUTHENTICATED)
    unauthenticated_requests: int = 0
    #: requests whose spans could not be committed (UNAVAILABLE / 503)
    failed_requests: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


class QueueBudget:
    """Bytes of export requests accepted and not yet committed, bounded by ``max_bytes``.

    A request is admitted when the queue is empty (so one large request is never refused
    forever) or when it fits under the bound; otherwise the receiver answers UNAVAILABLE / 503.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        #: bytes currently admitted
        self.bytes = 0
        #: requests currently admitted
        self.requests = 0

    @property
    def full(self) -> bool:
        """True when no request other than an empty one would be admitted."""
        return self.requests > 0 and self.bytes >= self.max_bytes

    def try_acquire(self, nbytes: int) -> bool:
        """Admit a request of ``nbytes`` if it fits; return whether it was admitted."""
        if self.requests and self.bytes + nbytes > self.max_bytes:
            return False
        self.bytes += nbytes
        self.requests += 1
        return True

    def release(self, nbytes: int) -> None:
        """Give back what :meth:`try_acquire` took once the request is answered."""
        self.bytes -= nbytes
        self.requests -= 1
