"""Query access for the CLI and replay (docs/internals.md §3), and the collector discovery file.

A running collector holds the DuckDB file open for writing (DuckDB allows one writer process, and
no reader processes beside it), so readers go through its read-only query API. The collector
announces itself in ``<db_path>.collector.json``::

    {"pid": 1234, "query_url": "http://127.0.0.1:40123", "grpc_endpoint": "127.0.0.1:4317",
     "http_endpoint": "127.0.0.1:4318", "db_path": "/abs/path.duckdb", "started_at": "…Z",
     "query_auth": false}

When ``query_auth`` is true the query API wants ``Authorization: Bearer <token>``; the client
takes the token from the ``SPANREEL_TOKEN`` environment variable (the token is never written to
the discovery file).

With ``exporters.duckdb.tls`` the ``query_url`` is ``https://…`` and ``query_tls_cert`` holds the
PEM of the certificate the collector serves: the client trusts that certificate and nothing else
(pinned, whatever name it was issued for: the discovery file is on this machine, and names an
address such as ``0.0.0.0`` or ``127.0.0.1``). With ``client_ca_file`` the client presents the
certificate of :data:`CLIENT_CERT_ENV` (PEM; the key in it or in :data:`CLIENT_KEY_ENV`).

The file also holds ``owner_key``, a random secret made for each run of the collector: without
``query_auth``, ``POST /api/prune`` (it deletes data) wants it in the :data:`OWNER_KEY_HEADER`
header, as proof that the caller can read the file, which is created readable by its owner only
(0600). ``spanreel prune`` sends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from spanreel.collector._query import (
    NoDatabaseError,
    QueryError,
    QueryResult,
    connect,
    execute_read_only,
)
from spanreel.collector._schema import MIGRATIONS, foreign_schema_reason, not_spanreel_message
from spanreel.collector._security import pinned_client_context

__all__ = [
    "CLIENT_CERT_ENV",
    "CLIENT_KEY_ENV",
    "OWNER_KEY_HEADER",
    "TOKEN_ENV",
    "CollectorInfo",
    "call_api",
    "discovery_path",
    "remove_discovery",
    "run_query",
    "running_collector",
    "write_discovery",
]

_HEALTH_TIMEOUT_S = 2.0
_QUERY_TIMEOUT_S = 300.0
#: Environment variable holding the bearer token the CLI sends to a query API that requires one.
TOKEN_ENV = "SPANREEL_TOKEN"
#: Environment variables naming the client certificate (PEM) and its key that the CLI presents to
#: a query API with ``tls.client_ca_file`` (mutual TLS).
CLIENT_CERT_ENV = "SPANREEL_CLIENT_CERT"
CLIENT_KEY_ENV = "SPANREEL_CLIENT_KEY"
#: Header carrying the discovery file's ``owner_key`` (``POST /api/prune`` without query auth).
OWNER_KEY_HEADER = "X-Spanreel-Owner-Key"


@dataclass(frozen=True)
class CollectorInfo:
    """What a running collector wrote to its discovery file (actual bound ports, never 0)."""

    pid: int
    #: base URL of the query API, e.g. ``http://127.0.0.1:40123``
    query_url: str
    #: ``host:port`` of the OTLP/gRPC receiver, ``None`` when disabled
    grpc_endpoint: str | None
    #: ``host:port`` of the OTLP/HTTP receiver, ``None`` when disabled
    http_endpoint: str | None
    #: absolute path of the DuckDB file
    db_path: str
    #: ISO-8601 UTC start time
    started_at: str
    #: whether the query API requires a bearer token
    query_auth: bool = False
    #: with TLS on the query API (``query_url`` is https): the PEM certificate it serves, which
    #: the client pins; ``None``: plaintext
    query_tls_cert: str | None = None
    #: this run's secret, only in the discovery file (0600): proof of owning the collector, which
    #: ``POST /api/prune`` wants when the query API has no bearer token
    owner_key: str = field(default="", repr=False)


def discovery_path(db_path: str | os.PathLike[str]) -> Path:
    """``<db_path>.collector.json`` (``db_path`` made absolute)."""
    return Path(os.path.abspath(os.fspath(db_path)) + ".collector.json")


def write_discovery(info: CollectorInfo) -> Path:
    """Atomically write ``info`` next to its database, readable and writable by its owner only
    (0600: it holds the ``owner_key``); return the file's path."""
    path = discovery_path(info.db_path)
    tmp = path.with_name(f".{path.name}.{info.pid}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a crashed run with the same pid: created anew, with this mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(asdict(info), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove_discovery(db_path: str | os.PathLike[str], pid: int) -> None:
    """Delete the discovery file if it still belongs to ``pid``."""
    path = discovery_path(db_path)
    info = _read_discovery(path)
    if info is not None and info.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read_discovery(path: Path) -> CollectorInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CollectorInfo(
            pid=int(data["pid"]),
            query_url=str(data["query_url"]),
            grpc_endpoint=data.get("grpc_endpoint"),
            http_endpoint=data.get("http_endpoint"),
            db_path=str(data["db_path"]),
            started_at=str(data.get("started_at", "")),
            query_auth=bool(data.get("query_auth", False)),
            query_tls_cert=data["query_tls_cert"] if isinstance(data.get("query_tls_cert"), str) else None,
            owner_key=str(data.get("owner_key", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _http_client(info: CollectorInfo, timeout: float) -> Iterator[httpx.Client]:
    """A client for the query API of the collector ``info`` describes (over TLS trusting only its
    certificate, see the module docstring). Its requests are spanreel's own, not the app's: with
    ``SPANREEL_ENABLED=1`` in the shell, every ``spanreel traces``/``sql``/``replay`` recorded its
    ``GET /healthz`` and ``POST /api/query`` as traces of its own, cluttering the listing.
    Raises ``ssl.SSLError`` / ``OSError`` for an unusable client certificate."""
    verify: ssl.SSLContext | bool = True
    if info.query_tls_cert is not None:
        client_cert = os.environ.get(CLIENT_CERT_ENV, "").strip() or None
        client_key = os.environ.get(CLIENT_KEY_ENV, "").strip() or None
        verify = pinned_client_context(info.query_tls_cert, client_cert, client_key)
    # trust_env=False: a configured HTTP(S)_PROXY must not capture loopback calls.
    with suppress_instrumentation(), httpx.Client(timeout=timeout, trust_env=False, verify=verify) as client:
        yield client


def running_collector(db_path: str | os.PathLike[str]) -> CollectorInfo | None:
    """The collector serving ``db_path``, or ``None``: its discovery file must exist, its pid be
    alive, and its ``GET /healthz`` answer ``{"status": "ok"}`` with that pid within 2 s."""
    info = _read_discovery(discovery_path(db_path))
    if info is None or not _pid_alive(info.pid):
        return None
    try:
        with _http_client(info, _HEALTH_TIMEOUT_S) as client:
            response = client.get(f"{info.query_url}/healthz")
        data = response.json()
        if response.status_code == 200 and data.get("status") == "ok" and data.get("pid") == info.pid:
            return info
    except (httpx.HTTPError, ValueError, AttributeError, OSError):  # ssl.SSLError is an OSError
        pass
    return None


def call_api(
    info: CollectorInfo, path: str, body: dict[str, Any], *, as_owner: bool = False
) -> dict[str, Any]:
    """POST ``body`` to the collector's API at ``path`` (e.g. ``/api/query``) with the bearer token
    from :data:`TOKEN_ENV` when the API requires one, and with ``as_owner`` the discovery file's
    ``owner_key`` (``/api/prune``); return the JSON answer.

    Raises :class:`QueryError` with the API's error message, or saying which token is missing.
    """
    headers = {}
    if as_owner and info.owner_key:
        headers[OWNER_KEY_HEADER] = info.owner_key
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif info.query_auth:
        raise QueryError(
            f"the collector (pid {info.pid}) requires a bearer token on its query API: set {TOKEN_ENV}"
        )
    try:
        with _http_client(info, _QUERY_TIMEOUT_S) as client:
            response = client.post(f"{info.query_url}{path}", json=body, headers=headers)
    except (httpx.HTTPError, OSError) as exc:
        raise QueryError(f"the collector (pid {info.pid}) at {info.query_url} did not answer: {exc}") from exc
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code == 200 and isinstance(data, dict):
        return data
    if response.status_code == 401:
        raise QueryError(f"the collector (pid {info.pid}) refused the bearer token: check {TOKEN_ENV}")
    message = data.get("error") if isinstance(data, dict) else None
    raise QueryError(message or f"the collector's API answered HTTP {response.status_code}")


def _query_api(
    info: CollectorInfo, sql: str, params: Sequence[Any] | None, max_rows: int | None
) -> QueryResult:
    request: dict[str, Any] = {"sql": sql, "params": list(params) if params else []}
    if max_rows is not None:
        request["max_rows"] = max_rows
    data = call_api(info, "/api/query", request)
    return QueryResult(
        columns=list(data["columns"]),
        rows=[list(r) for r in data["rows"]],
        truncated=bool(data.get("truncated")),
    )


def run_query(
    sql: str, db_path: Path, params: list[Any] | None = None, *, max_rows: int | None = None
) -> QueryResult:
    """Run read-only ``sql`` over the spans database at ``db_path``; at most ``max_rows`` rows
    (``QueryResult.truncated`` says when there were more), all when ``None``.

    Asks the running collector's query API when one serves ``db_path`` (see
    :func:`running_collector`), else opens the file with DuckDB ``read_only=True``. Values are
    JSON-safe and identical in both paths (see :mod:`spanreel.collector._query`).

    Raises :class:`NoDatabaseError` when there is no collector and no file at ``db_path``, or the
    file is not a spanreel database (no ``schema_migrations`` table);
    :class:`QueryError` when the SQL is rejected (bad SQL, not read-only) or the file is locked.
    """
    info = running_collector(db_path)
    if info is not None:
        return _query_api(info, sql, params, max_rows)
    path = Path(db_path)
    if not path.exists():
        raise NoDatabaseError(
            f"no spanreel database at {path}: start `spanreel collector` (it creates it) or pass --db PATH"
        )
    try:
        con = connect(path, read_only=True)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise QueryError(
                f"the database {path} is locked by another process and no running collector answers "
                f"for it ({exc})"
            ) from exc
        raise QueryError(f"cannot open {path}: {exc}") from exc
    try:
        reason = foreign_schema_reason(con)
        if reason is not None:  # another application's file: its tables are not ours
            raise NoDatabaseError(not_spanreel_message(path, reason))
        _warn_if_not_migrated(con, path)
        return execute_read_only(con, sql, params, max_rows=max_rows)
    finally:
        con.close()


class OutdatedDatabaseWarning(UserWarning):
    """The database file lacks schema migrations this spanreel has (read-only opening cannot
    apply them)."""


def _warn_if_not_migrated(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Warn (once per file) when ``path`` was last written by an older spanreel: its rows may
    predate fixes a migration applies (e.g. migration 5: agent and tool spans counted as LLM
    calls). Starting the collector on it applies them."""
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    latest = MIGRATIONS[-1].version
    if row is not None and row[0] is not None and int(row[0]) < latest:
        missing = "the `sessions` view (migration 6) is missing"
        if int(row[0]) < 5:
            missing = "some figures (LLM call counts, tokens, cost) may be as the older release computed them"
        warnings.warn(
            f"{path} was written by an older spanreel (schema {row[0]}, this one has {latest}): "
            f"start `spanreel collector` on it once to upgrade it; until then {missing}",
            OutdatedDatabaseWarning,
            stacklevel=3,
        )
