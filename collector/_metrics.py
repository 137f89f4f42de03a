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

    A request is admitted when nothing is held (so one large request is never refused forever)
    or when it fits under the bound; otherwise the receiver answers UNAVAILABLE / 503. A body
    being read counts as it arrives (:meth:`try_grow`), so concurrent uploads cannot pile up
    unbounded before they are queued.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        #: bytes currently admitted
        self.bytes = 0
        #: requests currently admitted
        self.requests = 0

    def try_acquire(self, nbytes: int) -> bool:
        """Admit a request of ``nbytes`` if it fits; return whether it was admitted."""
        if self.bytes and self.bytes + nbytes > self.max_bytes:
            return False
        self.bytes += nbytes
        self.requests += 1
        return True

    def try_grow(self, held: int, nbytes: int) -> bool:
        """Add ``nbytes`` to an admitted request that holds ``held`` bytes (its body is being read);
        refused when other requests hold bytes and it does not fit. Release the total once."""
        if self.bytes - held and self.bytes + nbytes > self.max_bytes:
            return False
        self.bytes += nbytes
        return True

    def release(self, nbytes: int) -> None:
        """Give back what :meth:`try_acquire` took once the request is answered."""
        self.bytes -= nbytes
        self.requests -= 1
