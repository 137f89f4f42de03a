"""The collector process: OTLP receivers (gRPC + HTTP), the DuckDB writer and the query API, all
served from one asyncio loop.

Request path: receiver → decode + normalise + Arrow (thread pool, never on the loop) → writer
queue → group commit → response (an export is acknowledged only after its spans are committed).

OTLP behaviour (opentelemetry-proto ``docs/specification.md``):

- gRPC ``opentelemetry.proto.collector.trace.v1.TraceService/Export``; gzip via gRPC's own
  compression; over-size → ``RESOURCE_EXHAUSTED``; malformed → ``INVALID_ARGUMENT``; queue full or
  storage failure → ``UNAVAILABLE`` with ``google.rpc.RetryInfo`` (in ``grpc-status-details-bin``
  and ``google.rpc.retryinfo-bin``).
- HTTP ``POST /v1/traces`` with ``application/x-protobuf`` or ``application/json`` (response in the
  same type), ``Content-Encoding: gzip``; over-size (after decompression) → 413, other content
  types → 415, other methods → 405, malformed → 400, queue full → 503 + ``Retry-After``; error
  bodies are a ``google.rpc.Status``.
- Invalid spans are dropped and reported as ``partial_success`` (``rejected_spans``,
  ``error_message``); the valid spans of the request are stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import grpc
import pyarrow as pa
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
from spanreel.collector._client import CollectorInfo, remove_discovery, write_discovery
from spanreel.collector._config import CollectorConfig, parse_endpoint
from spanreel.collector._decode import DecodeError, decode_request
from spanreel.collector._normalise import normalise_rows
from spanreel.collector._query import QueryError, execute_read_only
from spanreel.collector._schema import rows_to_arrow
from spanreel.collector._writer import QueueFullError, SpanWriter, WriterClosedError, open_database

__all__ = ["Collector", "CollectorStartError"]

_TRACE_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
#: Suggested client back-off when the queue is full (seconds; well under the exporters' 10 s timeout).
RETRY_AFTER_S: Final = 1
_GRPC_GRACE_S: Final = 5.0
_READ_CHUNK: Final = 1 << 16


class CollectorStartError(RuntimeError):
    """The collector could not start (database locked, port in use …); the message says why."""


@dataclass(frozen=True)
class _Ingested:
    rejected_spans: int
    error_message: str


class _Unavailable(Exception):
    """Spans could not be queued or stored now; the client should retry."""


def _prepare(payload: bytes, json_encoded: bool) -> tuple[pa.Table, int, str]:
    """Decode, normalise and convert one request (runs in the decode thread pool)."""
    result = decode_request(payload, json_encoded=json_encoded)
    table = rows_to_arrow(normalise_rows(result.rows))
    return table, result.rejected_spans, result.error_message


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
        self._info: CollectorInfo | None = None
        self._writer: SpanWriter | None = None
        self._decode_pool: ThreadPoolExecutor | None = None
        self._query_pool: ThreadPoolExecutor | None = None
        self._grpc_server: grpc.aio.Server | None = None
        self._runners: list[web.AppRunner] = []
        self._stopped = asyncio.Event()

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
        self._writer = SpanWriter(con, max_queue_bytes=cfg.max_queue_bytes)
        self._decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spanreel-decode")
        self._query_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spanreel-query")
        try:
            grpc_endpoint = await self._start_grpc() if cfg.grpc_endpoint else None
            http_endpoint = await self._start_site(self._otlp_app(), cfg.http_endpoint, "OTLP/HTTP")
            query_endpoint = await self._start_site(self._query_app(), cfg.query_endpoint, "the query API")
        except BaseException:
            await self.stop()
            raise
        assert query_endpoint is not None
        self._info = CollectorInfo(
            pid=os.getpid(),
            query_url=f"http://{query_endpoint}",
            grpc_endpoint=grpc_endpoint,
            http_endpoint=http_endpoint,
            db_path=str(self.db_path),
            started_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        write_discovery(self._info)
        return self._info

    async def stop(self) -> None:
        """Stop accepting, finish in-flight exports, commit the queue, close the DB. Idempotent."""
        if self._stopped.is_set():
            return
        if self._grpc_server is not None:
            await self._grpc_server.stop(_GRPC_GRACE_S)
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        for pool in (self._decode_pool, self._query_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self._info is not None:
            remove_discovery(self.db_path, self._info.pid)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`stop` has finished."""
        await self._stopped.wait()

    # -- shared ingest path ------------------------------------------------------------------

    async def _ingest(self, payload: bytes, json_encoded: bool) -> _Ingested:
        """Decode and store one export request. Raises DecodeError or _Unavailable."""
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        table, rejected, message = await loop.run_in_executor(
            self._decode_pool, _prepare, payload, json_encoded
        )
        try:
            future = self._writer.submit(table)
        except (QueueFullError, WriterClosedError) as exc:
            raise _Unavailable(str(exc)) from exc
        try:
            await asyncio.wrap_future(future)
        except Exception as exc:  # disk full, I/O error …: the client keeps the data and retries
            raise _Unavailable(f"storing spans failed: {exc}") from exc
        return _Ingested(rejected, message)

    @staticmethod
    def _response(ingested: _Ingested) -> ExportTraceServiceResponse:
        response = ExportTraceServiceResponse()
        if ingested.rejected_spans:
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
        host, _ = parse_endpoint(cfg.grpc_endpoint, "receivers.otlp.protocols.grpc.endpoint")
        try:
            port = server.add_insecure_port(cfg.grpc_endpoint)
        except RuntimeError as exc:
            raise CollectorStartError(f"cannot listen for OTLP/gRPC on {cfg.grpc_endpoint}: {exc}") from exc
        await server.start()
        self._grpc_server = server
        return _host_port(host, port)

    async def _grpc_export(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ExportTraceServiceResponse:
        limit = self.config.max_recv_msg_size
        if len(request) > limit:
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
        return app

    async def _start_site(self, app: web.Application, endpoint: str | None, what: str) -> str | None:
        if endpoint is None:
            return None
        sock = _bind_socket(endpoint, what)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, sock).start()
        host, _ = parse_endpoint(endpoint, what)
        return _host_port(host, sock.getsockname()[1])

    async def _http_traces(self, request: web.Request) -> web.StreamResponse:
        content_type = request.content_type
        json_encoded = content_type == _JSON
        if request.method != "POST":
            return _status_response(
                405, code_pb2.UNIMPLEMENTED, "use POST /v1/traces", json_encoded, headers={"Allow": "POST"}
            )
        if content_type not in (_PROTOBUF, _JSON):
            return _status_response(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported content type {content_type!r}: use {_PROTOBUF} or {_JSON}",
                json_encoded=content_type != _PROTOBUF,
            )
        limit = self.config.max_request_body_size
        body = bytearray()
        try:
            # aiohttp has already undone Content-Encoding (gzip, deflate): the limit applies after it.
            async for chunk in request.content.iter_chunked(_READ_CHUNK):
                body += chunk
                if len(body) > limit:
                    return _status_response(
                        413,
                        code_pb2.RESOURCE_EXHAUSTED,
                        f"request body exceeds max_request_body_size ({limit} bytes, after decompression)",
                        json_encoded,
                    )
        except (HttpProcessingError, web.RequestPayloadError, OSError, ValueError) as exc:
            # e.g. a body sent with Content-Encoding: gzip that is not gzip
            message = f"cannot read the request body: {exc}"
            return _status_response(400, code_pb2.INVALID_ARGUMENT, message, json_encoded)
        try:
            ingested = await self._ingest(bytes(body), json_encoded)
        except DecodeError as exc:
            return _status_response(400, code_pb2.INVALID_ARGUMENT, str(exc), json_encoded)
        except _Unavailable as exc:
            return _status_response(
                503, code_pb2.UNAVAILABLE, str(exc), json_encoded, headers={"Retry-After": str(RETRY_AFTER_S)}
            )
        response = self._response(ingested)
        if json_encoded:
            return web.Response(
                body=json_format.MessageToJson(response, indent=None).encode(), content_type=_JSON
            )
        return web.Response(body=response.SerializeToString(), content_type=_PROTOBUF)

    # -- query API ---------------------------------------------------------------------------

    def _query_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/api/query", self._api_query)
        app.router.add_get("/api/health", self._api_health)
        return app

    async def _api_health(self, request: web.Request) -> web.Response:
        writer = self._writer
        return web.json_response(
            {
                "status": "ok",
                "version": __version__,
                "pid": os.getpid(),
                "db_path": str(self.db_path),
                "stored_spans": writer.stored_spans if writer else 0,
                "duplicate_spans": writer.duplicate_spans if writer else 0,
                "queued_bytes": writer.queued_bytes if writer else 0,
            }
        )

    async def _api_query(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"body must be JSON: {exc}"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            return web.json_response({"error": 'body must be {"sql": "...", "params": [...]}'}, status=400)
        params = body.get("params") or []
        if not isinstance(params, list):
            return web.json_response({"error": "params must be a list"}, status=400)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._query_pool, self._run_query, body["sql"], params)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"columns": result.columns, "rows": result.rows}, dumps=_dumps)

    def _run_query(self, sql: str, params: list[Any]) -> Any:
        assert self._writer is not None
        cursor = self._writer.cursor()
        try:
            return execute_read_only(cursor, sql, params)
        finally:
            cursor.close()


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
