"""An aiohttp application served on a background thread with its own event loop.

For servers that synchronous code (tests, CLI commands) starts and stops around its own work:
``spanreel serve-recorded`` (:class:`spanreel.replay.RecordedServer`); the fake LLM server has the
same lifecycle. A subclass builds its :class:`aiohttp.web.Application` in :meth:`_make_app`
(called on the server thread); handlers run on that thread's loop. aiohttp is imported on
:meth:`~ThreadedAiohttpServer.start`, so importing a subclass's module stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["ThreadedAiohttpServer"]


class ThreadedAiohttpServer:
    """Serve :meth:`_make_app` on ``host:port`` (``port=0``: a free port, set on :meth:`start`)
    from a daemon thread. :meth:`start` returns once the socket is bound (``OSError`` when it
    cannot bind, ``RuntimeError`` when the application fails to start); :meth:`stop` shuts down
    and joins the thread (idempotent); also a context manager."""

    #: Name of the serving thread (shown by debuggers and thread dumps).
    thread_name: ClassVar[str] = "spanreel-http"
    #: What failed, in the ``RuntimeError`` raised when the application cannot start.
    startup_failure: ClassVar[str] = "the HTTP server failed to start"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def _make_app(self) -> web.Application:
        """The application to serve (called on the server thread)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Bind and serve on a daemon thread; return once bound (a no-op when already started)."""
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._serve, args=(sock,), name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(self.startup_failure) from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread. Safe to call more than once."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            with contextlib.suppress(Exception):  # best effort on shutdown
                fut.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            runner = web.AppRunner(
                self._make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
            )
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
            self._runner = runner
        except BaseException as exc:  # reported by start()
            self._startup_error = exc
            self._ready.set()
            loop.close()
            sock.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
