"""pytest plugin ``spanreel`` (entry point ``pytest11``): run an app's tests against recorded LLM responses.

Mark a test with the recording to use, and the app under test talks to a local
:class:`~spanreel.replay._serve.RecordedServer` instead of the provider::

    @pytest.mark.spanreel_recording("tests/fixtures/debate.json")   # an OTLP JSON file
    def test_debate(spanreel_recorded):                              # the server's OpenAI base URL
        assert run_my_app().winner == "tabs"                         # uses openai.OpenAI() as usual

    @pytest.mark.spanreel_recording(trace_id="4bf92f35", db="traces.duckdb")
    @pytest.mark.spanreel_recording(session="ticket-42")             # db: ini spanreel_db / SPANREEL_DB

The marker's first argument is a file when it names an existing file or ends in ``.json`` /
``.jsonl``, else a trace id. Relative paths are looked up from the rootdir, then from the test
file's folder.

While a marked test runs (the marker alone is enough; the fixtures give access):

- a server answers from the recording (matching rules: :mod:`spanreel.replay._serve`), fresh for
  each test, so repeated requests are answered in recorded order from the start;
- ``OPENAI_BASE_URL`` (``http://127.0.0.1:PORT/v1``) and ``ANTHROPIC_BASE_URL``
  (``http://127.0.0.1:PORT``) are set, and ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` to a
  placeholder so real keys are never sent anywhere; set by an autouse function-scoped fixture,
  before the test's own function-scoped fixtures. A client created earlier — at import time
  (``client = OpenAI()`` at module level) or in a module- or session-scoped fixture — has already
  read the real base URL and key: create clients inside the test or a function-scoped fixture,
  or pass ``base_url=spanreel_recorded``. (Its requests to the provider are blocked, and the
  error says so.)
- **network access is blocked**: ``socket.socket.connect`` / ``connect_ex`` refuse every
  address that is not loopback (127.0.0.0/8, ::1, ``localhost``) or a Unix socket, and
  ``socket.getaddrinfo`` refuses to resolve other host names (no DNS query leaves), raising
  :class:`NetworkBlockedError`. This covers every Python-level client (httpx, httpx2, aiohttp,
  requests, urllib, asyncio) in every thread; network stacks written in C (grpcio's core) are not
  covered. Opt out with ``@pytest.mark.spanreel_allow_network``, ``--spanreel-allow-network`` or
  the ini option ``spanreel_allow_network = true``.

Blocked connections and requests that matched no recording are listed in the test's report
(section ``spanreel``) and as a warning, so they are visible even when the app swallowed the error.

Fixtures: ``spanreel_recorded`` → the OpenAI base URL (``str``); ``spanreel_server`` → the
running :class:`~spanreel.replay._serve.RecordedServer` (``.served``, ``.unmatched``,
``.anthropic_base_url``).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._recorded import RecordedExchange
    from ._serve import RecordedServer

__all__ = [
    "ALLOW_NETWORK_MARKER",
    "PLACEHOLDER_API_KEY",
    "RECORDING_MARKER",
    "NetworkBlockedError",
    "NetworkGuard",
    "RecordingSource",
]

RECORDING_MARKER = "spanreel_recording"
ALLOW_NETWORK_MARKER = "spanreel_allow_network"
#: API key put in ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` during a marked test.
PLACEHOLDER_API_KEY = "sk-spanreel-recorded"

_CACHE_KEY = pytest.StashKey[dict["RecordingSource", "list[RecordedExchange]"]]()


#: Host names (suffixes) of the LLM APIs whose clients read ``*_BASE_URL`` when they are created.
_LLM_API_HOSTS = (
    "api.openai.com",
    "openai.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "amazonaws.com",
)


def _is_llm_api(host_port: str) -> bool:
    host = host_port.rsplit(":", 1)[0].strip("[]").lower().rstrip(".")
    return any(host == name or host.endswith("." + name) for name in _LLM_API_HOSTS)


class NetworkBlockedError(RuntimeError):
    """A test using a spanreel recording tried to connect to a non-loopback address."""


class NetworkGuard:
    """Refuse non-loopback network access from Python code while installed (process-wide).

    Patches ``socket.socket.connect`` / ``connect_ex`` (allowed: Unix sockets, loopback IPs —
    127.0.0.0/8, ::1, IPv4-mapped loopback — and ``localhost``) and ``socket.getaddrinfo``
    (allowed: ``localhost``, this machine's host name, loopback IP literals), so a provider's
    host name is refused before any DNS query. Refusals raise :class:`NetworkBlockedError`.
    :meth:`install` / :meth:`uninstall` (idempotent; also a context manager). :attr:`blocked`
    lists the refused ``host:port`` texts, in order.
    """

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self._lock = threading.Lock()
        self._originals: dict[str, Callable[..., Any]] = {}

    @staticmethod
    def is_local_host(host: str) -> bool:
        """``localhost``, this machine's own name, or a loopback IP literal."""
        name = host.split("%", 1)[0].strip("[]")
        if name.lower() in ("localhost", socket.gethostname().lower()):
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return ip.is_loopback or (mapped is not None and mapped.is_loopback)

    @classmethod
    def is_allowed(cls, family: int, address: Any) -> bool:
        """Whether ``connect(address)`` on a socket of ``family`` may go ahead."""
        if family == getattr(socket, "AF_UNIX", None) or isinstance(address, str | bytes):
            return True
        if not isinstance(address, tuple) or not address:
            return False
        host = str(address[0])
        if host.split("%", 1)[0].lower() != "localhost" and not _is_ip(host):
            return False  # a name given straight to connect(): only localhost
        return cls.is_local_host(host)

    def _refuse(self, address: Any) -> NetworkBlockedError:
        text = (
            f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) > 1 else str(address)
        )
        with self._lock:
            self.blocked.append(text)
        head = (
            f"spanreel blocked a network connection to {text}: this test uses a recorded trace and only "
            "loopback is allowed."
        )
        if _is_llm_api(text):
            return NetworkBlockedError(
                f"{head} A request to an LLM API here most likely comes from a client created before "
                "the test started (at import time, or in a module- or session-scoped fixture): it kept "
                "the base URL and API key of that moment, not the recorded-response server's "
                "OPENAI_BASE_URL / ANTHROPIC_BASE_URL and placeholder key. Create the client inside the "
                "test or in a function-scoped fixture, or pass base_url=spanreel_recorded "
                "(spanreel_server.anthropic_base_url for Anthropic). Allowing the network would send "
                "the request, with that client's real key, to the real API."
            )
        return NetworkBlockedError(
            f"{head} Allow it with @pytest.mark.{ALLOW_NETWORK_MARKER}, "
            "--spanreel-allow-network or the ini option spanreel_allow_network = true."
        )

    def install(self) -> NetworkGuard:
        if self._originals:
            return self
        guard = self
        connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
        getaddrinfo = socket.getaddrinfo

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            if not guard.is_allowed(sock.family, address):
                raise guard._refuse(address)
            connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            if not guard.is_allowed(sock.family, address):
                raise guard._refuse(address)
            return connect_ex(sock, address)

        def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host is not None:
                text = host.decode("idna") if isinstance(host, bytes) else str(host)
                if not guard.is_local_host(text):
                    raise guard._refuse((text, port))
            return getaddrinfo(host, port, *args, **kwargs)

        self._originals = {"connect": connect, "connect_ex": connect_ex, "getaddrinfo": getaddrinfo}
        socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = guarded_getaddrinfo
        return self

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(socket if name == "getaddrinfo" else socket.socket, name, original)
        self._originals = {}

    def __enter__(self) -> NetworkGuard:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RecordingSource:
    """Where a marked test's recording comes from: exactly one of ``file`` (an OTLP JSON file),
    ``trace_id`` or ``session_id`` (with ``db``, the DuckDB file)."""

    file: Path | None = None
    trace_id: str | None = None
    session_id: str | None = None
    db: Path | None = None

    def describe(self) -> str:
        if self.file is not None:
            return str(self.file)
        what = f"trace {self.trace_id}" if self.trace_id else f"session {self.session_id!r}"
        return f"{what} in {self.db}"


def _find_file(name: str, config: pytest.Config, test_path: Path) -> Path:
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [config.rootpath / path, test_path.parent / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise pytest.UsageError(
        f"@pytest.mark.{RECORDING_MARKER}: recording file {name!r} not found (looked at {looked})"
    )


def _looks_like_file(text: str, config: pytest.Config, test_path: Path) -> bool:
    if text.endswith((".json", ".jsonl")) or "/" in text or "\\" in text:
        return True
    return (config.rootpath / text).is_file() or (test_path.parent / text).is_file()


def _source_from_marker(marker: pytest.Mark, config: pytest.Config, test_path: Path) -> RecordingSource:
    kwargs = dict(marker.kwargs)
    unknown = set(kwargs) - {"file", "trace_id", "session", "db"}
    if unknown or len(marker.args) > 1:
        raise pytest.UsageError(
            f"@pytest.mark.{RECORDING_MARKER}(source=None, *, file=None, trace_id=None, session=None, "
            f"db=None): unexpected arguments {sorted(unknown) or list(marker.args[1:])}"
        )
    if marker.args:
        source = str(marker.args[0])
        key = "file" if _looks_like_file(source, config, test_path) else "trace_id"
        if key in kwargs:
            raise pytest.UsageError(f"@pytest.mark.{RECORDING_MARKER}: {key} given twice")
        kwargs[key] = source
    chosen = [k for k in ("file", "trace_id", "session") if kwargs.get(k) is not None]
    if len(chosen) != 1:
        raise pytest.UsageError(
            f"@pytest.mark.{RECORDING_MARKER} needs exactly one of a file, trace_id= or session= "
            f"(got {chosen})"
        )
    if kwargs.get("file") is not None:
        return RecordingSource(file=_find_file(str(kwargs["file"]), config, test_path))
    return RecordingSource(
        trace_id=kwargs.get("trace_id"),
        session_id=kwargs.get("session"),
        db=_db_path(kwargs.get("db"), config),
    )


def _db_path(given: Any, config: pytest.Config) -> Path:
    from spanreel._config import resolve_db_path

    text = given if given is not None else (config.getini("spanreel_db") or None)
    if text is not None:
        path = Path(str(text)).expanduser()
        return path if path.is_absolute() else config.rootpath / path
    return resolve_db_path(None, None)


def _load_exchanges(source: RecordingSource) -> list[RecordedExchange]:
    from spanreel.collector import NoDatabaseError, QueryError

    from ._load import TraceFileError, TraceLookupError, load_session, load_trace, load_trace_file
    from ._recorded import exchanges_from_spans

    try:
        if source.file is not None:
            spans = load_trace_file(source.file)
        elif source.trace_id is not None:
            assert source.db is not None
            spans = load_trace(source.trace_id, source.db)
        else:
            assert source.session_id is not None and source.db is not None
            spans = load_session(source.session_id, source.db)
    except (NoDatabaseError, QueryError, TraceLookupError, TraceFileError) as exc:
        raise pytest.UsageError(f"@pytest.mark.{RECORDING_MARKER}: {exc}") from exc
    exchanges, unservable = exchanges_from_spans(spans)
    if not exchanges:
        reasons = "; ".join(f"{u.span.name}: {u.reason}" for u in unservable[:3]) or "no LLM calls"
        raise pytest.UsageError(
            f"@pytest.mark.{RECORDING_MARKER}: {source.describe()} has no servable LLM call ({reasons})"
        )
    return exchanges


# --------------------------------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spanreel", "spanreel: recorded LLM responses")
    group.addoption(
        "--spanreel-allow-network",
        action="store_true",
        default=False,
        help="Do not block non-loopback connections in tests marked spanreel_recording.",
    )
    parser.addini(
        "spanreel_allow_network",
        type="bool",
        default=False,
        help="spanreel: do not block non-loopback connections in tests marked spanreel_recording.",
    )
    parser.addini(
        "spanreel_db",
        default="",
        help="spanreel: DuckDB file for spanreel_recording(trace_id=…/session=…) (default: SPANREEL_DB).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{RECORDING_MARKER}(source=None, *, file=None, trace_id=None, session=None, db=None): answer the "
        "test's OpenAI/Anthropic calls from a spanreel recording (an OTLP JSON file, a trace or a session) "
        "and block non-loopback network access.",
    )
    config.addinivalue_line(
        "markers", f"{ALLOW_NETWORK_MARKER}: do not block network access in a spanreel_recording test."
    )


def _network_allowed(request: pytest.FixtureRequest) -> bool:
    config = request.config
    return bool(
        request.node.get_closest_marker(ALLOW_NETWORK_MARKER) is not None
        or config.getoption("spanreel_allow_network", False)
        or config.getini("spanreel_allow_network")
    )


def _report(request: pytest.FixtureRequest, server: RecordedServer, guard: NetworkGuard | None) -> None:
    lines: list[str] = []
    if guard is not None and guard.blocked:
        lines.append("blocked network connections: " + ", ".join(guard.blocked))
    for miss in server.unmatched:
        detail = miss.closest.describe() if miss.closest else "no recorded request to this API"
        lines.append(f"no recorded match for {miss.method} {miss.path}: {detail}")
    if lines:
        text = "\n".join(lines)
        request.node.add_report_section("teardown", "spanreel", text)
        warnings.warn(pytest.PytestWarning(f"spanreel: {text}"), stacklevel=1)


@pytest.fixture
def spanreel_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordedServer]:
    """The running server for the test's ``@pytest.mark.spanreel_recording`` (see the module doc)."""
    from ._serve import RecordedServer

    marker = request.node.get_closest_marker(RECORDING_MARKER)
    if marker is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the spanreel fixtures need @pytest.mark.{RECORDING_MARKER}(...)"
        )
    source = _source_from_marker(marker, request.config, Path(str(request.node.path)))
    cache = request.config.stash.setdefault(_CACHE_KEY, {})
    if source not in cache:
        cache[source] = _load_exchanges(source)
    server = RecordedServer(cache[source]).start()
    guard = None if _network_allowed(request) else NetworkGuard().install()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", PLACEHOLDER_API_KEY)
        monkeypatch.setenv("ANTHROPIC_API_KEY", PLACEHOLDER_API_KEY)
        yield server
    finally:
        if guard is not None:
            guard.uninstall()
        server.stop()
        _report(request, server, guard)


@pytest.fixture
def spanreel_recorded(spanreel_server: RecordedServer) -> str:
    """The OpenAI base URL (``http://127.0.0.1:PORT/v1``) of the test's recorded-response server."""
    return spanreel_server.openai_base_url


@pytest.fixture(autouse=True)
def _spanreel_recording_autouse(request: pytest.FixtureRequest) -> None:
    """Start the server for every test marked ``spanreel_recording``, before its other fixtures."""
    if request.node.get_closest_marker(RECORDING_MARKER) is not None:
        request.getfixturevalue("spanreel_server")
