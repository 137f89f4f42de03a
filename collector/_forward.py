"""Forward accepted exports to an existing OTLP backend (``otlp`` / ``otlphttp`` exporters).

Each accepted export request — after its spans are committed locally — is handed to
:meth:`Forwarders.submit`, which only appends it to one bounded queue per forwarder and returns:
forwarding never runs on the receive path, never delays an acknowledgement and never touches
local storage, so a slow or down upstream can only fill (and then overflow) its forward queue.

Per forwarder, ``sending_queue.num_consumers`` threads take exports from the queue and send them:

- the original request bytes where possible (protobuf in, protobuf out); OTLP/JSON requests are
  re-encoded to protobuf for gRPC (and for otlphttp unless ``encoding: json``), protobuf to JSON
  for ``encoding: json``; the spans the receiver rejected as invalid (partial success) are left
  out, so the upstream gets what was stored locally;
- ``headers`` as HTTP headers / gRPC metadata, ``compression: gzip`` (HTTP ``Content-Encoding``,
  gRPC message compression), ``timeout`` per attempt;
- retries as the OTLP specification says (opentelemetry-proto ``docs/specification.md``
  "Failures"): gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS,
  and RESOURCE_EXHAUSTED only with ``google.rpc.RetryInfo``; HTTP 429, 502, 503, 504 and
  connection errors. Exponential backoff (:func:`backoff_delay`) with jitter, never shorter than
  the server's ``RetryInfo.retry_delay`` / ``Retry-After``; an export is given up after
  ``max_elapsed_time``. Other errors are permanent: the export is dropped and counted.

Queue full: the **oldest** queued export is dropped (``dropped_*`` counters, a warning at most
every 10 s). The local database already has every span; the upstream gets the freshest data.
On shutdown the queue is drained for at most ``drain_timeout_s``; what is left (queued, waiting
to retry, or still being sent) is counted as failed and logged in one line.

otlphttp honours the standard proxy variables (``HTTPS_PROXY``, ``NO_PROXY``) like the OTel
Collector does. Sending happens with OpenTelemetry instrumentation suppressed, so a collector that is itself
instrumented (``SPANREEL_ENABLED=1``) does not trace — and forward — its own forwarding.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import grpc
import httpx
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanreel import __version__
from spanreel._retry_after import parse_retry_after
from spanreel.collector._decode import drop_invalid_spans, parse_json_request
from spanreel.collector._forward_config import ForwarderConfig, RetrySettings

__all__ = [
    "ForwardStats",
    "Forwarder",
    "Forwarders",
    "Outcome",
    "Sender",
    "backoff_delay",
    "json_to_protobuf",
    "parse_retry_after",
    "protobuf_to_json",
    "valid_spans_only",
]

logger = logging.getLogger("spanreel.collector.forward")

_EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_USER_AGENT: Final = f"spanreel-collector/{__version__}"
#: Seconds a sending thread may still take after the drain deadline before it is abandoned.
_JOIN_GRACE_S: Final = 1.0
#: Seconds between two "queue full" warnings of one forwarder.
_DROP_LOG_INTERVAL_S: Final = 10.0

_RETRYABLE_GRPC: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRYABLE_HTTP: Final = frozenset({429, 502, 503, 504})


# -- pure helpers ------------------------------------------------------------------------------


def backoff_delay(
    retry: int, policy: RetrySettings, *, jitter: float = 0.5, server_delay_s: float | None = None
) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry).

    ``initial_interval × multiplier^retry`` capped at ``max_interval``, randomised by
    ``± randomization_factor`` (``jitter`` in [0, 1): 0.5 is the midpoint, no change), and never
    less than the server's requested delay (``RetryInfo`` / ``Retry-After``), itself capped at
    :data:`MAX_SERVER_DELAY_S` (a year-long ``Retry-After`` must not overflow the wait).
    """
    try:
        base = min(policy.initial_interval_s * policy.multiplier**retry, policy.max_interval_s)
    except OverflowError:  # ~1,750 retries at 1.5: max_elapsed_time 0 retries for ever
        base = policy.max_interval_s if policy.initial_interval_s > 0 else 0.0
    delay = base * (1 + policy.randomization_factor * (2 * jitter - 1))
    return max(delay, min(server_delay_s or 0.0, MAX_SERVER_DELAY_S))


#: The longest delay a server's ``RetryInfo`` / ``Retry-After`` may impose on one retry (1 day).
MAX_SERVER_DELAY_S = 86_400.0


def _retry_info_delay(error: grpc.RpcError) -> float | None:
    """``google.rpc.RetryInfo.retry_delay`` of a failed call, from ``grpc-status-details-bin``
    or, as the Python exporters send it, ``google.rpc.retryinfo-bin``."""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        status = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    for key, value in getattr(error, "trailing_metadata", lambda: None)() or ():
        if key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
            with contextlib.suppress(Exception):
                return float(
                    error_details_pb2.RetryInfo.FromString(value).retry_delay.ToTimedelta().total_seconds()
                )
    return None


_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId")


def _walk_ids(doc: Any, convert: Callable[[str], str]) -> None:
    """Convert every span / link id of an OTLP JSON document in place."""
    for rs in doc.get("resourceSpans", ()) if isinstance(doc, dict) else ():
        for ss in rs.get("scopeSpans", ()) if isinstance(rs, dict) else ():
            for span in ss.get("spans", ()) if isinstance(ss, dict) else ():
                if not isinstance(span, dict):
                    continue
                for obj in (span, *[lk for lk in span.get("links", ()) if isinstance(lk, dict)]):
                    for key in _ID_KEYS:
                        if isinstance(obj.get(key), str):
                            obj[key] = convert(obj[key])


def json_to_protobuf(payload: bytes) -> bytes:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids) → protobuf bytes, read exactly as the
    receiver reads it (:func:`~spanreel.collector._decode.parse_json_request`: proto field names
    too, and without the spans whose ids are not hex, which the receiver rejected).

    Raises ``ValueError`` when the payload is not valid OTLP/JSON.
    """
    request, _ = parse_json_request(payload)
    return bytes(request.SerializeToString())


def valid_spans_only(payload: bytes, *, json_encoded: bool) -> bytes:
    """``payload`` as protobuf without the spans the receiver rejected as invalid (bad ids, end
    before start …), so that what is forwarded is what was stored and acknowledged.

    Raises ``ValueError`` when the payload is not a valid request.
    """
    if json_encoded:
        request, _ = parse_json_request(payload)
    else:
        request = ExportTraceServiceRequest.FromString(payload)
    drop_invalid_spans(request)
    return bytes(request.SerializeToString())


def protobuf_to_json(payload: bytes) -> bytes:
    """A protobuf ``ExportTraceServiceRequest`` → OTLP/JSON bytes (hex ids, integer enums)."""
    request = ExportTraceServiceRequest.FromString(payload)
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    _walk_ids(doc, lambda b64_id: base64.b64decode(b64_id).hex())
    return json.dumps(doc, separators=(",", ":")).encode()


# -- outcome of one attempt --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Result of one send attempt."""

    kind: Literal["ok", "retry", "fail"]
    message: str = ""
    #: the server's requested delay before the next attempt, seconds
    retry_after_s: float | None = None
    #: spans the upstream rejected in an OK answer (OTLP partial success)
    rejected_spans: int = 0


class Sender(Protocol):
    """Sends one encoded export request upstream (one attempt, no retry)."""

    def send(self, body: bytes) -> Outcome: ...

    def close(self) -> None: ...


class _GrpcSender:
    def __init__(self, config: ForwarderConfig) -> None:
        options = [("grpc.enable_retries", 0), ("grpc.primary_user_agent", _USER_AGENT)]
        if config.tls.insecure:
            self._channel = grpc.insecure_channel(config.target, options=options)
        else:
            tls = config.tls
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls.ca_file.read_bytes() if tls.ca_file else None,
                private_key=tls.key_file.read_bytes() if tls.key_file else None,
                certificate_chain=tls.cert_file.read_bytes() if tls.cert_file else None,
            )
            self._channel = grpc.secure_channel(config.target, credentials, options=options)
        self._export = self._channel.unary_unary(
            _EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        self._metadata = config.headers
        self._timeout = config.timeout_s
        self._compression = (
            grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        )

    def send(self, body: bytes) -> Outcome:
        try:
            response = self._export(
                body, timeout=self._timeout, metadata=self._metadata, compression=self._compression
            )
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = error.details() if hasattr(error, "details") else str(error)
            message = f"gRPC {code.name}: {details}"
            delay = _retry_info_delay(error)
            if code in _RETRYABLE_GRPC or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                return Outcome("retry", message, delay)
            return Outcome("fail", message)
        partial = response.partial_success
        return Outcome("ok", partial.error_message, rejected_spans=partial.rejected_spans)

    def close(self) -> None:
        self._channel.close()


class _HttpSender:
    def __init__(self, config: ForwarderConfig) -> None:
        tls = config.tls
        verify: ssl.SSLContext | bool = True
        if tls.insecure_skip_verify or tls.ca_file or tls.cert_file:
            verify = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.insecure_skip_verify:
                verify.check_hostname = False
                verify.verify_mode = ssl.CERT_NONE
            if tls.cert_file and tls.key_file:  # a client certificate, also without verification
                verify.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        self._json = config.encoding == "json"
        self._gzip = config.compression == "gzip"
        headers = {"User-Agent": _USER_AGENT, **dict(config.headers)}
        headers["Content-Type"] = _JSON if self._json else _PROTOBUF
        if self._gzip:
            headers["Content-Encoding"] = "gzip"
        self._url = config.target
        self._client = httpx.Client(
            headers=headers, timeout=config.timeout_s, verify=verify, follow_redirects=False
        )

    def send(self, body: bytes) -> Outcome:
        content = gzip.compress(body, compresslevel=1) if self._gzip else body
        try:
            response = self._client.post(self._url, content=content)
        except httpx.HTTPError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return self._partial_success(response)
        message = f"HTTP {status}: {response.text[:200]}"
        if status in _RETRYABLE_HTTP:
            return Outcome("retry", message, parse_retry_after(response.headers.get("Retry-After")))
        return Outcome("fail", message)

    def _partial_success(self, response: httpx.Response) -> Outcome:
        answer = ExportTraceServiceResponse()
        with contextlib.suppress(Exception):
            if response.headers.get("Content-Type", "").startswith(_JSON):
                json_format.Parse(response.content or b"{}", answer, ignore_unknown_fields=True)
            else:
                answer.ParseFromString(response.content)
        partial = answer.partial_success
        return Outcome("ok", partial.error_message, rejected_spans=partial.rejected_spans)

    def close(self) -> None:
        self._client.close()


# -- the queue ---------------------------------------------------------------------------------


@dataclass(eq=False)  # compared (and hashed) by identity: a set holds the ones in flight
class _Export:
    payload: bytes
    json_encoded: bool
    spans: int
    weight: int
    #: the receiver rejected some spans of the request: leave them out upstream too
    has_invalid: bool = False


@dataclass
class ForwardStats:
    """Counters of one forwarder (monotonic except the ``queue_*`` gauges)."""

    sent_exports: int = 0
    sent_spans: int = 0
    #: spans the upstream accepted the request of but rejected (partial success)
    rejected_spans: int = 0
    #: exports given up: permanent error, retries exhausted, or unsent at shutdown
    failed_exports: int = 0
    failed_spans: int = 0
    #: exports dropped because the queue was full (oldest first)
    dropped_exports: int = 0
    dropped_spans: int = 0
    retries: int = 0
    queue_exports: int = 0
    queue_size: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Queue:
    """A bounded FIFO that drops the oldest entries to make room (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[_Export] = deque()
        self._size = 0
        self._cond = threading.Condition()

    def put(self, item: _Export) -> list[_Export]:
        """Append ``item``; return the exports dropped to make room (possibly ``item`` itself when
        it alone is larger than the queue)."""
        dropped: list[_Export] = []
        with self._cond:
            if item.weight > self.capacity:
                return [item]
            while self._items and self._size + item.weight > self.capacity:
                old = self._items.popleft()
                self._size -= old.weight
                dropped.append(old)
            self._items.append(item)
            self._size += item.weight
            self._cond.notify()
        return dropped

    def get(self, stopping: threading.Event) -> _Export | None:
        """The oldest export; blocks until there is one. ``None`` once ``stopping`` is set and the
        queue is empty."""
        with self._cond:
            while not self._items:
                if stopping.is_set():
                    return None
                self._cond.wait(0.5)
            item = self._items.popleft()
            self._size -= item.weight
            return item

    def put_back(self, item: _Export) -> None:
        """Return an export taken by :meth:`get` to the head of the queue (it may exceed the
        capacity by that one export)."""
        with self._cond:
            self._items.appendleft(item)
            self._size += item.weight

    def drain(self) -> list[_Export]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._size = 0
            return items

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return self._size


# -- one forwarder -----------------------------------------------------------------------------


class Forwarder:
    """One ``otlp`` / ``otlphttp`` exporter: a bounded queue and its sending threads."""

    def __init__(self, config: ForwarderConfig, *, sender: Sender | None = None) -> None:
        self.config = config
        queue = config.queue
        # sending_queue.enabled: false → at most one waiting export per consumer, newest kept
        self._sizer = queue.sizer if queue.enabled else "requests"
        self._queue = _Queue(queue.queue_size if queue.enabled else queue.num_consumers)
        self._sender: Sender | None = sender
        self._stats = ForwardStats()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._threads: list[threading.Thread] = []
        self._last_drop_log = 0.0
        self._drops_since_log = (0, 0)
        #: exports a sending thread has taken and not yet settled (sent or failed)
        self._inflight: set[_Export] = set()

    # public -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the connection (lazily: no network I/O here) and start the sending threads."""
        if self._sender is None:
            self._sender = (
                _GrpcSender(self.config) if self.config.protocol == "grpc" else _HttpSender(self.config)
            )
        for i in range(self.config.queue.num_consumers):
            thread = threading.Thread(
                target=self._run, name=f"spanreel-forward-{self.config.name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, payload: bytes, *, json_encoded: bool, spans: int, has_invalid: bool = False) -> None:
        """Queue one accepted export request (its decompressed body; ``spans`` valid spans in it,
        ``has_invalid`` when the receiver rejected others). Never blocks, never raises."""
        sizer = self._sizer
        weight = spans if sizer == "items" else len(payload) if sizer == "bytes" else 1
        dropped = self._queue.put(_Export(payload, json_encoded, spans, max(weight, 1), has_invalid))
        if dropped:
            self._count_drops(dropped)

    def stats(self) -> ForwardStats:
        """A snapshot of the counters."""
        with self._lock:
            snapshot = ForwardStats(**self._stats.as_dict())
        snapshot.queue_exports = len(self._queue)
        snapshot.queue_size = self._queue.size
        return snapshot

    def begin_stop(self, drain_timeout_s: float) -> None:
        """Stop taking new work after ``drain_timeout_s`` seconds of draining the queue."""
        self._deadline = time.monotonic() + drain_timeout_s
        self._stopping.set()
        self._queue.wake_all()

    def finish_stop(self) -> None:
        """Wait for the threads (bounded by the drain deadline plus one attempt), drop what is
        left, close the connection."""
        # A thread still in a send after the deadline is abandoned (daemon): closing the sender
        # below cancels its request, and it counts the export as failed.
        for thread in self._threads:
            thread.join(max(self._deadline + _JOIN_GRACE_S - time.monotonic(), 0))
        left = self._queue.drain()
        with self._lock:
            left += self._inflight  # still being sent: abandoned, counted here and not by the thread
            self._inflight.clear()
            self._stats.failed_exports += len(left)
            self._stats.failed_spans += sum(e.spans for e in left)
        self._log_drops(force=True)
        if left:
            logger.warning(
                "forwarder %s: %d export(s) (%d spans) not forwarded at shutdown (they are stored locally)",
                self.config.name,
                len(left),
                sum(e.spans for e in left),
            )
        if self._sender is not None:
            self._sender.close()

    # internals --------------------------------------------------------------------------------

    def _count_drops(self, dropped: Sequence[_Export]) -> None:
        spans = sum(e.spans for e in dropped)
        with self._lock:
            self._stats.dropped_exports += len(dropped)
            self._stats.dropped_spans += spans
            exports_since, spans_since = self._drops_since_log
            self._drops_since_log = (exports_since + len(dropped), spans_since + spans)
        self._log_drops()

    def _log_drops(self, *, force: bool = False) -> None:
        """Warn about the exports dropped since the last warning: at most every
        :data:`_DROP_LOG_INTERVAL_S` (checked on each drop and after each export sent or
        failed, so drops followed by none are still reported), and at shutdown (``force``)."""
        now = time.monotonic()
        with self._lock:
            exports_since, spans_since = self._drops_since_log
            if not exports_since or (not force and now - self._last_drop_log < _DROP_LOG_INTERVAL_S):
                return
            self._last_drop_log = now
            self._drops_since_log = (0, 0)
        queue = self.config.queue
        room = (
            f"sending_queue.queue_size {queue.queue_size} {queue.sizer}"
            if queue.enabled
            else f"sending_queue disabled: room for {queue.num_consumers} waiting request(s), "
            "one per consumer"
        )
        logger.warning(
            "forwarder %s: queue full (%s), dropped the oldest %d export(s) (%d spans) since the "
            "last warning; they are stored locally; is the upstream %s reachable?",
            self.config.name,
            room,
            exports_since,
            spans_since,
            self.config.target,
        )

    def _give_back(self, export: _Export) -> None:
        """Put an unsent export back at the head of the queue (no longer in flight)."""
        with self._lock:
            if not self._settle(export):
                return
        self._queue.put_back(export)

    def _settle(self, export: _Export) -> bool:
        """Whether ``export`` is still this thread's to count (``finish_stop`` has not counted it
        as abandoned); it is no longer in flight after this. Call with ``_lock`` held."""
        if export not in self._inflight:
            return False
        self._inflight.discard(export)
        return True

    def _past_deadline(self) -> bool:
        return self._stopping.is_set() and time.monotonic() >= self._deadline

    def _run(self) -> None:
        while True:
            export = self._queue.get(self._stopping)
            if export is None:
                return
            with self._lock:
                self._inflight.add(export)
            if self._past_deadline():
                # Stop taking work: finish_stop() counts what is left, in one summary line.
                self._give_back(export)
                return
            try:
                self._deliver(export)
            except Exception:  # a bug must not kill the thread: the queue would stop moving
                logger.exception("forwarder %s: unexpected error while forwarding", self.config.name)
                self._fail(export, "unexpected error")
            self._log_drops()

    def _body(self, export: _Export) -> bytes:
        wants_json = self.config.protocol == "http" and self.config.encoding == "json"
        if export.has_invalid:
            valid = valid_spans_only(export.payload, json_encoded=export.json_encoded)
            return protobuf_to_json(valid) if wants_json else valid
        if export.json_encoded == wants_json:
            return export.payload  # the original request bytes
        return protobuf_to_json(export.payload) if wants_json else json_to_protobuf(export.payload)

    def _deliver(self, export: _Export) -> None:
        assert self._sender is not None
        try:
            body = self._body(export)
        except (ValueError, json_format.Error) as exc:
            self._fail(export, f"cannot re-encode the request: {exc}")
            return
        policy = self.config.retry
        started = time.monotonic()
        retry = 0
        while True:
            with suppress_instrumentation():
                outcome = self._sender.send(body)
            if outcome.kind == "ok":
                with self._lock:
                    if not self._settle(export):
                        return  # abandoned at shutdown, and counted then
                    self._stats.sent_exports += 1
                    self._stats.sent_spans += export.spans - outcome.rejected_spans
                    self._stats.rejected_spans += outcome.rejected_spans
                if outcome.rejected_spans:
                    logger.warning(
                        "forwarder %s: upstream rejected %d span(s): %s",
                        self.config.name,
                        outcome.rejected_spans,
                        outcome.message,
                    )
                return
            if outcome.kind == "fail" or not policy.enabled:
                self._fail(export, outcome.message)
                return
            delay = backoff_delay(retry, policy, jitter=random.random(), server_delay_s=outcome.retry_after_s)
            elapsed = time.monotonic() - started
            if policy.max_elapsed_time_s and elapsed + delay > policy.max_elapsed_time_s:
                self._fail(export, f"{outcome.message} (gave up after {elapsed:.1f} s of retries)")
                return
            if self._stopping.is_set():
                delay = min(delay, max(self._deadline - time.monotonic(), 0))
            with self._lock:
                self._stats.retries += 1
            logger.info(
                "forwarder %s: %s; retry %d in %.2f s", self.config.name, outcome.message, retry + 1, delay
            )
            wake_at = time.monotonic() + delay
            if not self._stopping.is_set():
                self._stopping.wait(delay)  # returns early when the collector starts stopping
            rest = wake_at - time.monotonic()
            if rest > 0:  # stopping: wait out the delay, but not past the drain deadline
                time.sleep(max(0.0, min(rest, self._deadline - time.monotonic())))
            if self._past_deadline():
                self._give_back(export)  # counted by finish_stop(), in its summary
                return
            retry += 1

    def _fail(self, export: _Export, reason: str) -> None:
        with self._lock:
            if not self._settle(export):
                return  # abandoned at shutdown, and counted then
            self._stats.failed_exports += 1
            self._stats.failed_spans += export.spans
        logger.warning(
            "forwarder %s: dropped an export of %d span(s) (stored locally): %s",
            self.config.name,
            export.spans,
            reason,
        )


# -- all forwarders ----------------------------------------------------------------------------


@dataclass
class Forwarders:
    """The configured forwarders of a collector (possibly none: then every call is a no-op)."""

    configs: Sequence[ForwarderConfig]
    drain_timeout_s: float = 5.0
    _forwarders: list[Forwarder] = field(default_factory=list, init=False)

    def __bool__(self) -> bool:
        return bool(self.configs)

    def start(self) -> None:
        """Start every forwarder's threads (no network I/O; connections are made on first send)."""
        self._forwarders = [Forwarder(config) for config in self.configs]
        for forwarder in self._forwarders:
            forwarder.start()

    def submit(self, payload: bytes, *, json_encoded: bool, spans: int, has_invalid: bool = False) -> None:
        """Hand one accepted export (decompressed request body, ``spans`` valid spans in it,
        ``has_invalid`` when the receiver rejected others: they are left out) to every forwarder.
        Thread-safe; never blocks, never raises."""
        if spans <= 0:
            return
        for forwarder in self._forwarders:
            try:
                forwarder.submit(payload, json_encoded=json_encoded, spans=spans, has_invalid=has_invalid)
            except Exception:  # forwarding must never break ingestion
                logger.exception("forwarder %s: cannot queue an export", forwarder.config.name)

    def stop(self) -> None:
        """Drain the queues for at most ``drain_timeout_s`` (all forwarders together), then stop.
        Blocking: call it from a thread when on an event loop."""
        for forwarder in self._forwarders:
            forwarder.begin_stop(self.drain_timeout_s)
        for forwarder in self._forwarders:
            forwarder.finish_stop()

    def stats(self) -> dict[str, dict[str, int]]:
        """``{forwarder name: counters}`` (see :class:`ForwardStats`)."""
        return {f.config.name: f.stats().as_dict() for f in self._forwarders}

    def __iter__(self) -> Iterator[Forwarder]:
        return iter(self._forwarders)
