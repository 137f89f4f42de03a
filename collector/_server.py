"""The collector process: OTLP receivers (gRPC + HTTP), the DuckDB writer and the query API, all
served from one asyncio loop.

Request path: receiver → authentication → admission into the bounded queue (bytes) → decode +
normalise + Arrow (:class:`~spanreel.collector._batch.DecodePool`: worker processes or a thread,
never on the loop) → writer → group commit → response. An export is acknowledged only after its
spans are committed.

OTLP behaviour (opentelemetry-proto ``docs/specification.md``):

- gRPC ``opentelemetry.proto.collector.trace.v1.TraceService/Export``; gzip via gRPC's own
  compression; over-size → ``RESOURCE_EXHAUSTED``; malformed → ``INVALID_ARGUMENT``; missing or
  wrong bearer token → ``UNAUTHENTICATED``; queue full or storage failure → ``UNAVAILABLE`` with
  ``google.rpc.RetryInfo`` (in ``grpc-status-details-bin`` and ``google.rpc.retryinfo-bin``).
- HTTP ``POST /v1/traces`` with ``application/x-protobuf`` or ``application/json`` (response in the
  same type), ``Content-Encoding: gzip`` (or ``deflate``; other encodings → 415); over-size
  (after decompression) → 413, other content types → 415, other methods → 405, malformed → 400,
  bad token → 401, queue full → 503 + ``Retry-After``, body not in within ``read_timeout`` → 408
  (connection closed); error bodies are a ``google.rpc.Status``.
- Invalid spans are dropped and reported as ``partial_success`` (``rejected_spans``,
  ``error_message``); the valid spans of the request are stored. A span whose GenAI columns
  cannot be derived is stored without them and named in ``error_message`` (``rejected_spans`` 0:
  a warning).

Query API (docs/internals.md §3): ``POST /api/query``, ``POST /api/prune``, ``GET /api/health``
(counters), and ``GET /healthz`` (liveness, never authenticated; also on the OTLP/HTTP port).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf import duration_pb2, json_format
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from spanreel import __version__
from spanreel._config import ConfigError
from spanreel.collector._batch import DecodePool, default_decode_workers
from spanreel.collector._client import OWNER_KEY_HEADER, CollectorInfo, remove_discovery, write_discovery
from spanreel.collector._config import CollectorConfig, parse_endpoint, parse_prune_age
from spanreel.collector._decode import DecodeError
from spanreel.collector._forward import Forwarders
from spanreel.collector._http_body import BodyDecoder, BodyTooLarge, MalformedBody, UnsupportedEncoding
from spanreel.collector._metrics import Counters, QueueBudget
from spanreel.collector._query import (
    CONVERT_ROWS,
    QueryError,
    execute_read_only,
    json_rows,
    read_only_table,
    rows_within,
)
from spanreel.collector._retention import Pruner, PruneResult, cutoff_ns
from spanreel.collector._security import (
    AUTHORIZATION,
    check_authorization,
    first_certificate_pem,
    server_ssl_context,
)
from spanreel.collector._ui import add_ui_routes, is_loopback_host, is_public_path
from spanreel.collector._writer import QueueFullError, SpanWriter, WriterClosedError, open_database

__all__ = ["Collector", "CollectorStartError", "prune_result_json"]

_log = logging.getLogger("spanreel.collector")
_T = TypeVar("_T")
#: Seconds between two log lines about failing writes (each failed request is counted).
_FAILURE_LOG_INTERVAL_S = 10.0

_TRACE_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
#: Suggested client back-off when the queue is full (seconds; well under the exporters' 10 s timeout).
RETRY_AFTER_S: Final = 1
#: At shutdown, requests in flight (an export being read, decoded or committed) get this long to
#: finish (seconds), then they are cut: their clients retry. Idle keep-alive connections are closed
#: at once and running queries interrupted, so a stop takes about this long at most, plus the
#: final commit of the queue and the forwarders' drain (5 s, alongside it).
SHUTDOWN_GRACE_S: Final = 3.0
#: How often running queries are interrupted again while the receivers stop (seconds): a query
#: that had not started executing when first interrupted is caught by the next round.
_INTERRUPT_INTERVAL_S: Final = 0.1
_READ_CHUNK: Final = 1 << 16
#: Arrow bytes converted to JSON per piece of a query answer, at most (at least one row).
_PIECE_BYTES: Final = 8 << 20
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="spanreel"'}
#: Retention runs every ttl/24, within these bounds (seconds).
_PRUNE_INTERVAL_BOUNDS_S: Final = (60.0, 3600.0)


class CollectorStartError(RuntimeError):
    """The collector could not start (database locked, port in use …); the message says why."""


@dataclass(frozen=True)
class _Ingested:
    rejected_spans: int
    error_message: str


class _Unavailable(Exception):
    """Spans could not be queued or stored now; the client should retry."""


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_socket(endpoint: str, what: str) -> socket.socket:
    host, port = parse_endpoint(endpoint, what)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise CollectorStartError(f"cannot listen for {what} on {endpoint}: {exc.strerror or exc}") from exc
    return sock


def _metadata_value(metadata: Sequence[tuple[str, Any]] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _iso_ns(unix_nano: int) -> str:
    seconds, frac = divmod(unix_nano, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


class Collector:
    """The spanreel collector, usable in-process::

        async with Collector(config) as collector:
            print(collector.info.grpc_endpoint, collector.info.query_url)

    :meth:`start` opens (and migrates) the database, binds every listener, then writes the
    discovery file ``<db_path>.collector.json``; :meth:`stop` stops the listeners, drains and commits
    the write queue, closes the database and removes the discovery file.
    Raises :class:`CollectorStartError` from :meth:`start`.
    """

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.db_path = Path(os.path.abspath(config.db_path))
        #: totals since start (see :meth:`stats`)
        self.counters = Counters()
        self._budget = QueueBudget(config.max_queue_bytes)
        self._info: CollectorInfo | None = None
        self._writer: SpanWriter | None = None
        #: otlp / otlphttp exporters: accepted exports are queued to them after their commit
        self._forwarders = Forwarders(config.forwarders)
        self._decode: DecodePool | None = None
        self._query_pool: ThreadPoolExecutor | None = None
        self._grpc_server: grpc.aio.Server | None = None
        self._runners: list[web.AppRunner] = []
        self._background: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        self._failure_logged = -_FAILURE_LOG_INTERVAL_S  # monotonic time of the last write-failure log
        self._stopped = asyncio.Event()
        #: cursors of the queries running now (query threads), interrupted by :meth:`stop`
        self._queries: set[duckdb.DuckDBPyConnection] = set()
        self._queries_lock = threading.Lock()
        self._stopping = False
        #: this run's secret, written only to the discovery file (0600): ``POST /api/prune`` wants
        #: it when the query API has no bearer token
        self._owner_key = secrets.token_urlsafe(32)

    @property
    def info(self) -> CollectorInfo:
        """Where the running collector listens (actual ports). Raises ``RuntimeError`` before start."""
        if self._info is None:
            raise RuntimeError("the collector is not running")
        return self._info

    async def __aenter__(self) -> Collector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> CollectorInfo:
        """Open the database and start all listeners; return the discovery info."""
        cfg = self.config
        try:
            con = open_database(self.db_path)
        except duckdb.Error as exc:
            raise CollectorStartError(f"cannot open the database {self.db_path}: {exc}") from exc
        except RuntimeError as exc:  # DatabaseLockedError, SchemaError
            raise CollectorStartError(str(exc)) from exc
        except OSError as exc:  # its folder cannot be created: a file in the way, no permission …
            raise CollectorStartError(
                f"cannot create the database {self.db_path}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from exc
        # The budget bounds request bytes; their Arrow form is somewhat larger: the writer's own
        # bound is a backstop that the budget keeps from being reached.
        db_path = self.db_path
        self._writer = SpanWriter(
            con, max_queue_bytes=4 * cfg.max_queue_bytes, reopen=lambda: open_database(db_path)
        )
        try:
            self._forwarders.start()  # sending threads only; connections are opened on first send
        except Exception as exc:
            self._writer.close()
            raise CollectorStartError(f"cannot start forwarding: {type(exc).__name__}: {exc}") from exc
        workers = cfg.decode_workers if cfg.decode_workers is not None else default_decode_workers()
        self._decode = DecodePool(workers)
        self._query_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spanreel-query")
        http_ssl = server_ssl_context(cfg.http_tls) if cfg.http_tls is not None else None
        query_ssl = server_ssl_context(cfg.query_tls) if cfg.query_tls is not None else None
        # the certificate the CLI pins (written to the discovery file; see _client)
        query_cert = first_certificate_pem(cfg.query_tls.cert_file) if cfg.query_tls is not None else None
        try:
            grpc_endpoint = await self._start_grpc() if cfg.grpc_endpoint else None
            http_endpoint = await self._start_site(
                self._otlp_app(), cfg.http_endpoint, "OTLP/HTTP", http_ssl, auto_decompress=False
            )
            query_endpoint = await self._start_site(
                self._query_app(), cfg.query_endpoint, "the query API", query_ssl
            )
        except BaseException:
            await self.stop()
            raise
        assert query_endpoint is not None
        self._info = CollectorInfo(
            pid=os.getpid(),
            query_url=f"{'https' if query_cert else 'http'}://{query_endpoint}",
            grpc_endpoint=grpc_endpoint,
            http_endpoint=http_endpoint,
            db_path=str(self.db_path),
            started_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            query_auth=cfg.query_auth is not None,
            query_tls_cert=query_cert,
            owner_key=self._owner_key,
        )
        try:
            write_discovery(self._info)
        except OSError as exc:
            await self.stop()
            raise CollectorStartError(
                f"cannot write the discovery file beside {self.db_path}: {exc.strerror or exc}"
            ) from exc
        if cfg.metrics_log_interval_s > 0:
            self._background.append(asyncio.create_task(self._log_counters(cfg.metrics_log_interval_s)))
        if cfg.ttl_s:
            self._background.append(asyncio.create_task(self._retention(cfg.ttl_s)))
        return self._info

    async def stop(self) -> None:
        """Stop accepting, finish in-flight exports, commit the queue, close the DB. Idempotent.

        Bounded: the listeners close at once (idle keep-alive connections too); requests in
        flight get :data:`SHUTDOWN_GRACE_S` seconds, then are cut (their clients retry); running
        queries are interrupted. Then the queue is committed (every acknowledged export was
        already) while the forwarders drain (at most 5 s), and the database is closed.
        """
        if self._stopped.is_set():
            return
        with self._queries_lock:
            self._stopping = True
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        receivers = [runner.cleanup() for runner in self._runners]
        if self._grpc_server is not None:
            receivers.append(self._grpc_server.stop(SHUTDOWN_GRACE_S))
        interrupting = asyncio.create_task(self._interrupt_queries())
        try:
            await asyncio.gather(*receivers)
        finally:
            interrupting.cancel()
        self._runners.clear()
        loop = asyncio.get_running_loop()
        closing: list[Awaitable[None]] = [
            loop.run_in_executor(None, self._forwarders.stop)  # bounded by its drain timeout
        ]
        # The query threads first, then the writer (_close_storage): closing the database under a
        # query thread still finishing is what that order avoids.
        closing.append(loop.run_in_executor(None, self._close_storage))
        await asyncio.gather(*closing)
        if self._decode is not None:
            await loop.run_in_executor(None, self._decode.shutdown)
        if self._info is not None:
            remove_discovery(self.db_path, self._info.pid)
            _log.info("final counters: %s", self._format_stats())
        self._stopped.set()

    async def _interrupt_queries(self) -> None:
        """Interrupt every running query, and again every :data:`_INTERRUPT_INTERVAL_S` until
        cancelled (a query about to start when interrupted would not notice)."""
        while True:
            with self._queries_lock:
                for cursor in self._queries:
                    cursor.interrupt()
            await asyncio.sleep(_INTERRUPT_INTERVAL_S)

    def _close_storage(self) -> None:
        """Wait for the query threads (their queries were interrupted), then commit the write
        queue and close the database. Blocking: runs on a thread."""
        if self._query_pool is not None:
            self._query_pool.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.close()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`stop` has finished."""
        await self._stopped.wait()

    def stats(self) -> dict[str, int]:
        """Counters since start-up plus the writer's totals and the queue's current depth:
        ``received_requests, received_spans, rejected_spans, refused_requests, malformed_requests,
        unauthenticated_requests, failed_requests, stored_spans, duplicate_spans, queued_requests,
        queued_bytes, max_queue_bytes``."""
        writer = self._writer
        return {
            **self.counters.as_dict(),
            "stored_spans": writer.stored_spans if writer else 0,
            "duplicate_spans": writer.duplicate_spans if writer else 0,
            "queued_requests": self._budget.requests,
            "queued_bytes": self._budget.bytes,
            "max_queue_bytes": self._budget.max_bytes,
        }

    def _format_stats(self) -> str:
        s = self.stats()
        return (
            f"received {s['received_spans']} spans in {s['received_requests']} requests, "
            f"stored {s['stored_spans']}, duplicates {s['duplicate_spans']}, rejected {s['rejected_spans']}; "
            f"refused {s['refused_requests']} requests (queue full), malformed {s['malformed_requests']}, "
            f"unauthenticated {s['unauthenticated_requests']}, failed {s['failed_requests']}; "
            f"queue {s['queued_requests']} requests, {s['queued_bytes']} bytes"
        )

    async def _log_counters(self, interval_s: float) -> None:
        last: dict[str, int] | None = None
        while True:
            await asyncio.sleep(interval_s)
            current = self.stats()
            if current != last:  # an idle collector does not fill the log
                _log.info("%s", self._format_stats())
                last = current

    async def prune(self, older_than_s: float, *, dry_run: bool = False) -> PruneResult:
        """Delete the traces that ended more than ``older_than_s`` seconds ago (see
        :mod:`spanreel.collector._retention`), on the writer thread, a chunk of traces at a time
        between two commits.

        Raises ``duckdb.Error``, or :class:`~spanreel.collector._writer.WriterClosedError` while stopping.
        """
        assert self._writer is not None
        pruner = Pruner(cutoff_ns(older_than_s), dry_run=dry_run)
        # A chunk of traces per step: the exports waiting are committed between two chunks.
        await asyncio.wrap_future(self._writer.run_in_steps(pruner.step))
        return pruner.result()

    async def _retention(self, ttl_s: float) -> None:
        low, high = _PRUNE_INTERVAL_BOUNDS_S
        interval = min(max(ttl_s / 24, low), high)
        while True:
            try:
                result = await self.prune(ttl_s)
                if result.traces:
                    _log.info(
                        "retention: deleted %d traces (%d spans) that ended before %s",
                        result.traces,
                        result.spans,
                        _iso_ns(result.cutoff_unix_nano),
                    )
            except (duckdb.Error, WriterClosedError) as exc:
                _log.warning("retention: pruning failed, will retry: %s", exc)
            await asyncio.sleep(interval)

    # -- shared ingest path ------------------------------------------------------------------

    def _queue_full(self) -> _Unavailable:
        self.counters.refused_requests += 1
        budget = self._budget
        return _Unavailable(
            f"queue full ({budget.bytes} bytes of exports waiting, max_queue_bytes {budget.max_bytes}); "
            "retry later"
        )

    async def _ingest(self, payload: bytes, json_encoded: bool) -> _Ingested:
        """Admit (queue budget), decode and store one export request. Raises DecodeError or
        _Unavailable."""
        size = len(payload)
        if not self._budget.try_acquire(size):
            raise self._queue_full()
        try:
            return await self._store_request(payload, json_encoded)
        finally:
            self._budget.release(size)

    async def _store_request(self, payload: bytes, json_encoded: bool) -> _Ingested:
        """Decode and store one export request already admitted to the queue budget."""
        assert self._writer is not None and self._decode is not None
        try:
            batch = await self._decode.prepare(payload, json_encoded)
        except DecodeError:
            self.counters.malformed_requests += 1
            raise
        counters = self.counters
        counters.received_requests += 1
        counters.received_spans += batch.table.num_rows + batch.rejected_spans
        counters.rejected_spans += batch.rejected_spans
        try:
            future = self._writer.submit(batch.table, batch.traces)
        except (QueueFullError, WriterClosedError) as exc:
            counters.refused_requests += 1
            raise _Unavailable(str(exc)) from exc
        try:
            await asyncio.wrap_future(future)
        except Exception as exc:  # disk full, I/O error …: the client keeps the data and retries
            counters.failed_requests += 1
            now = time.monotonic()
            if now - self._failure_logged >= _FAILURE_LOG_INTERVAL_S:  # not once per request
                self._failure_logged = now
                _log.error("storing spans failed (clients are told to retry): %s", exc)
            raise _Unavailable(f"storing spans failed: {exc}") from exc
        self._forwarders.submit(
            payload,
            json_encoded=json_encoded,
            spans=batch.table.num_rows,
            has_invalid=batch.rejected_spans > 0,
        )
        return _Ingested(batch.rejected_spans, batch.error_message)

    @staticmethod
    def _response(ingested: _Ingested) -> ExportTraceServiceResponse:
        response = ExportTraceServiceResponse()
        if ingested.rejected_spans or ingested.error_message:  # a message alone is a warning
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=ingested.rejected_spans, error_message=ingested.error_message
                )
            )
        return response

    # -- gRPC --------------------------------------------------------------------------------

    async def _start_grpc(self) -> str:
        cfg = self.config
        assert cfg.grpc_endpoint is not None
        limit = cfg.max_recv_msg_size
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a second collector must not share the port silently
            ]
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._grpc_export,
            request_deserializer=None,  # raw bytes: deserialised in the decode pool, not on the loop
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_TRACE_SERVICE, {"Export": handler}),)
        )
        host, port = parse_endpoint(cfg.grpc_endpoint, "receivers.otlp.protocols.grpc.endpoint")
        address = _host_port(host, port)
        try:
            if cfg.grpc_tls is not None:
                client_ca = cfg.grpc_tls.client_ca_file
                credentials = grpc.ssl_server_credentials(
                    [(cfg.grpc_tls.key_file.read_bytes(), cfg.grpc_tls.cert_file.read_bytes())],
                    root_certificates=client_ca.read_bytes() if client_ca is not None else None,
                    require_client_auth=client_ca is not None,
                )
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except (RuntimeError, OSError) as exc:
            raise CollectorStartError(f"cannot listen for OTLP/gRPC on {cfg.grpc_endpoint}: {exc}") from exc
        await server.start()
        self._grpc_server = server
        return _host_port(host, port)

    async def _grpc_export(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ExportTraceServiceResponse:
        expected = self.config.grpc_auth
        if expected is not None:
            received = _metadata_value(context.invocation_metadata(), AUTHORIZATION)
            if not check_authorization(received, expected):
                self.counters.unauthenticated_requests += 1
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing or invalid bearer token (authorization metadata)",
                )
        limit = self.config.max_recv_msg_size
        if len(request) > limit:
            self.counters.malformed_requests += 1
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request of {len(request)} bytes exceeds max_recv_msg_size_mib ({limit} bytes)",
            )
        try:
            ingested = await self._ingest(request, json_encoded=False)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except _Unavailable as exc:
            await context.abort_with_status(_unavailable_status(str(exc)))
        return self._response(ingested)

    # -- OTLP/HTTP ---------------------------------------------------------------------------

    def _otlp_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/traces", self._http_traces)
        # Also here: the OTLP/HTTP port is fixed (4318) where the query API's is often picked at
        # random, so orchestrators can probe it.
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _start_site(
        self,
        app: web.Application,
        endpoint: str | None,
        what: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        auto_decompress: bool = True,
    ) -> str | None:
        if endpoint is None:
            return None
        sock = _bind_socket(endpoint, what)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            auto_decompress=auto_decompress,
            shutdown_timeout=SHUTDOWN_GRACE_S,  # aiohttp's default waits up to 60 s per request
        )
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        host, _ = parse_endpoint(endpoint, what)
        return _host_port(host, sock.getsockname()[1])

    async def _http_traces(self, request: web.Request) -> web.StreamResponse:
        content_type = request.content_type
        json_encoded = content_type == _JSON
        if request.method != "POST":
            return _status_response(
                405, code_pb2.UNIMPLEMENTED, "use POST /v1/traces", json_encoded, headers={"Allow": "POST"}
            )
        if not check_authorization(request.headers.get(AUTHORIZATION), self.config.http_auth):
            self.counters.unauthenticated_requests += 1
            return _status_response(
                401,
                code_pb2.UNAUTHENTICATED,
                "missing or invalid bearer token (Authorization header)",
                json_encoded,
                headers=_WWW_AUTHENTICATE,
            )
        if content_type not in (_PROTOBUF, _JSON):
            return _status_response(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported content type {content_type!r}: use {_PROTOBUF} or {_JSON}",
                json_encoded=content_type != _PROTOBUF,
            )
        try:
            decoder = BodyDecoder(
                request.headers.get("Content-Encoding", ""), self.config.max_request_body_size
            )
        except UnsupportedEncoding as exc:
            self.counters.malformed_requests += 1
            return _status_response(415, code_pb2.INVALID_ARGUMENT, str(exc), json_encoded)
        budget = self._budget
        if not budget.try_acquire(0):  # answer before reading a body that could not be queued
            self.counters.refused_requests += 1
            return _http_unavailable("queue full; retry later", json_encoded)
        limit = self.config.max_request_body_size
        read_timeout = self.config.http_read_timeout_s
        body = bytearray()
        try:
            try:
                # The OTLP site does not let aiohttp undo Content-Encoding: the decoder does, chunk
                # by chunk, so the limit applies to the decompressed bytes as they are produced, and
                # they count against the queue budget as they arrive. A client that stops sending
                # would hold its connection and those bytes forever: the body has read_timeout.
                async with asyncio.timeout(read_timeout or None):
                    async for chunk in request.content.iter_chunked(_READ_CHUNK):
                        data = decoder.feed(chunk)
                        if not budget.try_grow(len(body), len(data)):
                            return _http_unavailable(str(self._queue_full()), json_encoded)
                        body += data
                data = decoder.finish()
                if not budget.try_grow(len(body), len(data)):
                    return _http_unavailable(str(self._queue_full()), json_encoded)
                body += data
            except TimeoutError:  # before OSError, its base class
                self.counters.malformed_requests += 1
                timed_out = _status_response(
                    408,
                    code_pb2.DEADLINE_EXCEEDED,
                    f"the request body did not arrive within receivers.otlp.protocols.http.read_timeout "
                    f"({read_timeout:g} s)",
                    json_encoded,
                )
                timed_out.force_close()  # the rest of a late body must not be read as a next request
                return timed_out
            except BodyTooLarge:
                self.counters.malformed_requests += 1
                return _status_response(
                    413,
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"request body exceeds max_request_body_size ({limit} bytes, after decompression)",
                    json_encoded,
                )
            except (MalformedBody, HttpProcessingError, web.RequestPayloadError, OSError) as exc:
                # e.g. a body sent with Content-Encoding: gzip that is not gzip, or a cut connection
                self.counters.malformed_requests += 1
                message = f"cannot read the request body: {exc}"
                return _status_response(400, code_pb2.INVALID_ARGUMENT, message, json_encoded)
            try:
                ingested = await self._store_request(bytes(body), json_encoded)
            except DecodeError as exc:
                return _status_response(400, code_pb2.INVALID_ARGUMENT, str(exc), json_encoded)
            except _Unavailable as exc:
                return _http_unavailable(str(exc), json_encoded)
        finally:
            budget.release(len(body))
        response = self._response(ingested)
        if json_encoded:
            return web.Response(
                body=json_format.MessageToJson(response, indent=None).encode(), content_type=_JSON
            )
        return web.Response(body=response.SerializeToString(), content_type=_PROTOBUF)

    # -- query API ---------------------------------------------------------------------------

    def _query_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[self._query_auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/api/query", self._api_query)
        app.router.add_post("/api/prune", self._api_prune)
        app.router.add_get("/api/health", self._api_health)
        add_ui_routes(  # the trace viewer: collector/_ui.py
            app, self._run_query, self._query_pool, authenticated=self.config.query_auth is not None
        )
        return app

    @web.middleware
    async def _query_auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        public = request.path == "/healthz" or is_public_path(request.path)  # the viewer's static page
        if public:
            return await handler(request)
        if self.config.query_auth is None and not is_loopback_host(request.host):
            # Without a token, a web page could reach this port through DNS rebinding.
            message = "without query auth, the query API only answers requests addressed to a loopback host"
            return web.json_response({"error": message}, status=403)
        if not check_authorization(request.headers.get(AUTHORIZATION), self.config.query_auth):
            self.counters.unauthenticated_requests += 1
            return web.json_response(
                {"error": "missing or invalid bearer token (Authorization: Bearer …)"},
                status=401,
                headers=_WWW_AUTHENTICATE,
            )
        if request.method == "POST" and request.content_type != "application/json":
            # A cross-site page can POST text/plain without asking; application/json needs CORS
            # approval, which this API never gives.
            return web.json_response(
                {"error": f"Content-Type must be application/json, got {request.content_type!r}"}, status=415
            )
        return await handler(request)

    def _storage_error(self) -> str | None:
        """Why spans cannot be stored now (a storage fault), else ``None``."""
        return self._writer.error if self._writer is not None else None

    async def _healthz(self, request: web.Request) -> web.Response:
        """``{"status": "ok"}``, or 503 ``{"status": "unavailable", "error": …}`` while the
        database cannot be written (a supervisor's liveness probe restarts the collector)."""
        error = self._storage_error()
        if error is not None:
            return web.json_response(
                {"status": "unavailable", "pid": os.getpid(), "error": error}, status=503
            )
        return web.json_response({"status": "ok", "pid": os.getpid()})

    async def _api_health(self, request: web.Request) -> web.Response:
        error = self._storage_error()
        return web.json_response(
            {
                "status": "ok" if error is None else "unavailable",
                **({} if error is None else {"error": error}),
                "version": __version__,
                "pid": os.getpid(),
                "db_path": str(self.db_path),
                "uptime_s": round(time.monotonic() - self._started, 3),
                **self.stats(),
                "forwarders": self._forwarders.stats(),
            }
        )

    async def _api_prune(self, request: web.Request) -> web.Response:
        if self.config.query_auth is None and not hmac.compare_digest(
            request.headers.get(OWNER_KEY_HEADER, "").encode(), self._owner_key.encode()
        ):
            # Without a token, anyone on the host reaches this port: pruning deletes data, so it
            # wants the key only the discovery file (0600) holds, as `spanreel prune` sends it.
            return web.json_response(
                {
                    "error": "pruning deletes data: without exporters.duckdb.auth only the user running "
                    f"the collector may prune (`spanreel prune` sends the {OWNER_KEY_HEADER} header "
                    "from <db>.collector.json, readable by that user only)"
                },
                status=403,
            )
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"body must be JSON: {exc}"}, status=400)
        if not isinstance(body, dict) or "older_than" not in body:
            return web.json_response(
                {"error": 'body must be {"older_than": "30d", "dry_run": false}'}, status=400
            )
        try:
            older_than_s = parse_prune_age(body["older_than"], "older_than")
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            result = await self.prune(older_than_s, dry_run=bool(body.get("dry_run", False)))
        except (duckdb.Error, WriterClosedError) as exc:
            return web.json_response({"error": f"pruning failed: {exc}"}, status=500)
        return web.json_response(prune_result_json(result))

    async def _api_query(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"body must be JSON: {exc}"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            return web.json_response({"error": 'body must be {"sql": "...", "params": [...]}'}, status=400)
        params = body.get("params") or []
        if not isinstance(params, list):
            return web.json_response({"error": "params must be a list"}, status=400)
        max_rows = body.get("max_rows")
        if max_rows is not None and (type(max_rows) is not int or max_rows < 1):
            return web.json_response({"error": "max_rows must be a positive integer"}, status=400)
        cap = self.config.query_max_rows
        if cap and (max_rows is None or max_rows > cap):
            max_rows = cap  # exporters.duckdb.query_max_rows: the answer says "truncated"
        loop = asyncio.get_running_loop()
        try:
            pieces = await loop.run_in_executor(
                self._query_pool, self._query_json, body["sql"], params, max_rows
            )
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        response.content_length = sum(len(piece) for piece in pieces)
        await response.prepare(request)
        for piece in pieces:  # a piece at a time: the receivers get their turns in between
            await response.write(piece)
        await response.write_eof()
        return response

    def _query_json(self, sql: str, params: list[Any], max_rows: int | None) -> list[bytes]:
        """The ``/api/query`` answer as UTF-8 JSON pieces of :data:`CONVERT_ROWS` rows, made on a
        query thread: a large result is converted, serialised and encoded in short steps, off the
        event loop that serves the OTLP receivers (one ``json.dumps`` of millions of rows held the
        GIL, and so the receivers, for seconds).

        The answer holds at most ``exporters.duckdb.query_max_bytes`` bytes: DuckDB's result is read
        up to that much Arrow data only, and the rows whose JSON would go past it are left out
        (``truncated``). ``query_timeout`` covers the conversion too, checked before each piece."""
        started = time.monotonic()
        max_bytes = self.config.query_max_bytes or None
        table, truncated = self._on_cursor(
            lambda cursor: read_only_table(cursor, sql, params, max_rows=max_rows, max_bytes=max_bytes)
        )
        head = f'{{"columns":{_dumps(table.column_names)},"rows":['.encode()
        pieces, size = [head], len(head) + len(b'],"truncated":false}')
        start = 0
        while start < table.num_rows:
            self._check_query_time(started)
            part = table.slice(start, CONVERT_ROWS)
            if part.nbytes > _PIECE_BYTES:  # large values: fewer rows a piece (its copies are smaller)
                part = part.slice(0, max(1, rows_within(part, _PIECE_BYTES)))
            rows = json_rows(part)
            text = _dumps(rows)[1:-1]
            piece = ("," + text if start else text).encode()
            if max_bytes is not None and size + len(piece) > max_bytes:
                for i, row in enumerate(rows):  # the rows of this piece that still fit
                    one = (("," if start or i else "") + _dumps(row)).encode()
                    if size + len(one) > max_bytes:
                        break
                    pieces.append(one)
                    size += len(one)
                truncated = True
                break
            pieces.append(piece)
            size += len(piece)
            start += part.num_rows
        pieces.append(f'],"truncated":{_dumps(truncated)}}}'.encode())
        return pieces

    def _check_query_time(self, started: float) -> None:
        """Raise :class:`QueryError` when the collector is stopping, or ``query_timeout`` has passed
        since ``started`` (the answer's conversion counts: it used to run on unbounded)."""
        timeout = self.config.query_timeout_s
        if self._stopping:
            raise QueryError("query interrupted: the collector is stopping")
        if timeout > 0 and time.monotonic() - started > timeout:
            raise QueryError(f"query interrupted after exporters.duckdb.query_timeout ({timeout:g} s)")

    def _run_query(self, sql: str, params: list[Any], max_rows: int | None = None) -> Any:
        """Run a read-only query on its own cursor (at most ``max_rows`` rows), interrupted after
        ``query_timeout_s``. Raises :class:`QueryError` (also for the timeout)."""
        return self._on_cursor(lambda cursor: execute_read_only(cursor, sql, params, max_rows=max_rows))

    def _on_cursor(self, run: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
        """``run(cursor)`` on a reader cursor of its own, interrupted after ``query_timeout_s``
        (and when the collector stops). Raises :class:`QueryError` (also for the timeout)."""
        assert self._writer is not None
        try:
            cursor = self._writer.cursor()
        except duckdb.Error as exc:  # the database was invalidated (a storage fault)
            raise QueryError(f"the database cannot be read now: {exc}") from exc
        with self._queries_lock:
            stopping = self._stopping
            if not stopping:
                self._queries.add(cursor)
        if stopping:
            cursor.close()
            raise QueryError("the collector is stopping")
        timeout = self.config.query_timeout_s
        timer = threading.Timer(timeout, cursor.interrupt) if timeout > 0 else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            return run(cursor)
        except QueryError as exc:
            if isinstance(exc.__cause__, duckdb.InterruptException):
                if self._stopping:
                    raise QueryError("query interrupted: the collector is stopping") from exc
                raise QueryError(
                    f"query interrupted after exporters.duckdb.query_timeout ({timeout:g} s)"
                ) from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with self._queries_lock:
                self._queries.discard(cursor)
            cursor.close()


def prune_result_json(result: PruneResult) -> dict[str, Any]:
    """A :class:`~spanreel.collector._retention.PruneResult` as the JSON of ``POST /api/prune`` and
    ``spanreel prune --json``: ``{"traces", "spans", "cutoff" (ISO-8601 UTC), "dry_run"}``."""
    return {
        "traces": result.traces,
        "spans": result.spans,
        "cutoff": _iso_ns(result.cutoff_unix_nano),
        "dry_run": result.dry_run,
    }


def _http_unavailable(message: str, json_encoded: bool) -> web.Response:
    return _status_response(
        503, code_pb2.UNAVAILABLE, message, json_encoded, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _status_response(
    http_status: int,
    code: int,
    message: str,
    json_encoded: bool,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OTLP/HTTP error: a ``google.rpc.Status`` body in the request's encoding."""
    status = status_pb2.Status(code=code, message=message)
    if json_encoded:
        return web.Response(
            status=http_status,
            body=json_format.MessageToJson(status, indent=None).encode(),
            content_type=_JSON,
            headers=headers,
        )
    return web.Response(
        status=http_status, body=status.SerializeToString(), content_type=_PROTOBUF, headers=headers
    )


def _unavailable_status(message: str) -> grpc.Status:
    """UNAVAILABLE with ``RetryInfo`` in both trailers the OTLP exporters read."""
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_S))
    detail = AnyProto()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    base = rpc_status.to_status(status)
    return _GrpcStatus(
        base.code,
        base.details,
        (*base.trailing_metadata, ("google.rpc.retryinfo-bin", retry.SerializeToString())),
    )


class _GrpcStatus(grpc.Status):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, bytes], ...]):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
