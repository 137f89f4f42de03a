"""The trace viewer, served by the collector beside its read-only query API (same loopback site).

Routes added by :func:`add_ui_routes`:

- ``GET /`` and ``GET /ui`` → redirect to ``/ui/``; ``GET /ui/`` the page; ``GET /ui/{asset}`` its
  static files (``collector/ui/``, shipped as package data: no build step, nothing fetched from
  the internet).
- JSON, all ``GET``, read-only (shapes in :mod:`spanreel.collector._ui_data`):
  ``/api/ui/traces`` (query: ``service, model, session, status, since, until, q, limit, cursor``),
  ``/api/ui/sessions`` (query: ``limit, cursor``; the ``sessions`` view's rows, newest first),
  ``/api/ui/filters``, ``/api/ui/traces/{trace_id}``, ``/api/ui/session?id=…``,
  ``/api/ui/compare/{trace_id}``. Errors are ``{"error": "…"}`` with 400 (bad parameter),
  404 (not stored) or 500 (the query failed).

Protection: without a token, every UI route answers 403 unless the ``Host`` header names a
loopback address (``localhost``, ``127.0.0.0/8``, ``::1``), which defeats DNS rebinding from a web
page. The JSON routes sit under ``/api/`` like the query API, so the bearer token the query API
may require applies to them too; only the static page (:func:`is_public_path`) loads without it.
The page reads the token from its URL fragment (``/ui/#token=…``, never sent to the server or
logged), keeps it in ``sessionStorage`` and sends it as ``Authorization: Bearer``. Responses
carry a strict Content-Security-Policy (scripts, styles and fetches from this origin only; no
inline script), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; the page
builds the DOM with ``textContent`` only.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from aiohttp import web

from spanreel.collector import _ui_data as data
from spanreel.collector._query import QueryError

__all__ = ["API_PREFIX", "UI_PATH", "add_ui_routes", "is_loopback_host", "is_public_path", "load_assets"]

#: Where the page is served.
UI_PATH: Final = "/ui/"
#: Prefix of the viewer's JSON endpoints (inside the query API's ``/api/`` namespace).
API_PREFIX: Final = "/api/ui"

_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Asset:
    """One static file of the page, held in memory."""

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """The files of ``spanreel/collector/ui/`` (package data) by name.

    Raises ``FileNotFoundError`` when the package was installed without them.
    """
    folder = resources.files("spanreel.collector").joinpath("ui")
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if not entry.is_file() or suffix not in _CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[entry.name] = Asset(body, _CONTENT_TYPES[suffix], etag)
    if "index.html" not in assets:
        raise FileNotFoundError("spanreel.collector/ui/index.html is missing from the installed package")
    return assets


def is_public_path(path: str) -> bool:
    """Whether ``path`` is one of the page's static routes (``/``, ``/ui``, ``/ui/``, ``/ui/<asset>``),
    which hold no data and must load without credentials: a browser cannot send a bearer token
    when it navigates, so the page gets it from its URL fragment and sends it on its own fetches.
    Every ``/api/…`` route (the data) stays behind the query API's authentication."""
    return path in ("/", "/ui", UI_PATH) or (path.startswith(UI_PATH) and "/" not in path[len(UI_PATH) :])


def is_loopback_host(host_header: str | None) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names this machine."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(handler: Handler, loopback_only: bool) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if loopback_only and not is_loopback_host(request.host):
            response: web.StreamResponse = web.json_response(
                {"error": "the trace viewer only answers requests addressed to a loopback host"}, status=403
            )
        else:
            response = await handler(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    return wrapper


class _Routes:
    def __init__(self, query: data.QueryFn, executor: Executor | None, assets: dict[str, Asset]) -> None:
        self._query = query
        self._executor = executor
        self._assets = assets

    async def _json(self, fn: Callable[[], Any]) -> web.Response:
        """Run ``fn`` (blocking SQL) in the query pool; map its errors to HTTP statuses."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, fn)
        except data.BadRequest as exc:
            return _error(400, str(exc))
        except data.NotFound as exc:
            return _error(404, str(exc))
        except QueryError as exc:
            return _error(500, f"the query failed: {exc}")
        return web.json_response(result, headers={"Cache-Control": "no-store"})

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": UI_PATH})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        asset = self._assets.get(name)
        if asset is None:
            return web.Response(status=404, text="not found")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})

    async def traces(self, request: web.Request) -> web.Response:
        params = request.rel_url.query
        try:
            filters = data.TraceFilters.from_params(params)
            limit = _int_param(params.get("limit"), data.DEFAULT_PAGE_SIZE, "limit")
        except data.BadRequest as exc:
            return _error(400, str(exc))
        cursor = params.get("cursor") or None
        return await self._json(lambda: data.list_traces(self._query, filters, limit=limit, cursor=cursor))

    async def sessions(self, request: web.Request) -> web.Response:
        params = request.rel_url.query
        try:
            limit = _int_param(params.get("limit"), data.DEFAULT_PAGE_SIZE, "limit")
        except data.BadRequest as exc:
            return _error(400, str(exc))
        cursor = params.get("cursor") or None
        return await self._json(lambda: data.list_sessions(self._query, limit=limit, cursor=cursor))

    async def filters(self, request: web.Request) -> web.Response:
        return await self._json(lambda: data.filter_options(self._query))

    async def trace(self, request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"]
        return await self._json(lambda: data.trace_detail(self._query, trace_id))

    async def session(self, request: web.Request) -> web.Response:
        session_id = request.rel_url.query.get("id", "")
        return await self._json(lambda: data.session_detail(self._query, session_id))

    async def compare(self, request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"]
        return await self._json(lambda: data.compare_replay(self._query, trace_id))


def _int_param(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise data.BadRequest(f"{name} must be an integer, got {value[:32]!r}") from None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})


def add_ui_routes(
    app: web.Application,
    query: data.QueryFn,
    executor: Executor | None = None,
    *,
    authenticated: bool = False,
) -> None:
    """Add the trace viewer's routes to the query API's ``app``.

    ``query(sql, params) -> QueryResult`` runs read-only SQL on the collector's connection (it
    blocks, so it runs in ``executor``, the collector's query pool). ``authenticated``: the query
    API requires a bearer token; then the ``Host`` check is left out (the token protects the data,
    and the API may listen on a non-loopback address). Raises ``FileNotFoundError`` if the static
    assets are missing from the installed package.
    """
    routes = _Routes(query, executor, load_assets())
    loopback_only = not authenticated

    def get(path: str, handler: Handler) -> None:
        app.router.add_get(path, _guarded(handler, loopback_only))

    get("/", routes.redirect)
    get("/ui", routes.redirect)
    get(UI_PATH, routes.asset)
    get(UI_PATH + "{name}", routes.asset)
    get(f"{API_PREFIX}/traces", routes.traces)
    get(f"{API_PREFIX}/sessions", routes.sessions)
    get(f"{API_PREFIX}/filters", routes.filters)
    get(f"{API_PREFIX}/traces/{{trace_id}}", routes.trace)
    get(f"{API_PREFIX}/session", routes.session)
    get(f"{API_PREFIX}/compare/{{trace_id}}", routes.compare)
