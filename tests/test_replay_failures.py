"""Replays that fail or need retries, as a new user meets them: a 2-call trace recorded with the
real ``openai`` SDK (into a collector subprocess on a fresh DuckDB file) replayed through the
``spanreel`` CLI to a port where nothing listens, and to a server that answers 503 before it
answers. The error names what was tried, the totals count failures as failures, retry attempts
are marked like the SDK's own, and latency covers the whole call."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner, Result
from conftest import CollectorProcess, count_rows, recording_into
from openai import OpenAI
from test_replay_support import wait_for

from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.replay._safety import RetryPolicy
from spanreel.replay._send import send_request

SECRET = "s3cret-in-the-url"


@dataclass
class Recorded:
    db: Path
    trace_id: str


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "220", "OPENAI_API_KEY": "sk-test"})


@pytest.fixture(scope="module")
def recorded(collector: CollectorProcess) -> Recorded:
    """A trace "app" with 2 captured chat calls, recorded against the fake LLM server."""
    with (
        recording_into(collector) as provider,
        FakeLLMServer(port=0) as llm,
        provider.get_tracer("test").start_as_current_span("app") as root,
    ):
        client = OpenAI(base_url=llm.base_url, api_key="sk-test")
        for question in ("Tabs or spaces?", "Vim or Emacs?"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
            )
    trace_id = format(root.get_span_context().trace_id, "032x")
    wait_for(
        lambda: (
            count_rows(collector.db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [trace_id]) == 2
        ),
        what="2 recorded LLM calls",
    )
    return Recorded(collector.db, trace_id)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port where nothing listens: bound (so nobody else takes it) but not listening,
    so a connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class Flaky:
    """A loopback OpenAI-compatible server that answers each distinct request body ``503`` (after
    ``delay`` seconds) ``failures`` times before answering it; records each request's
    ``x-stainless-retry-count`` header."""

    def __init__(self, failures: int, delay: float = 0.0) -> None:
        self.failures, self.delay = failures, delay
        self.seen: dict[bytes, int] = {}
        self.retry_counts: list[str | None] = []
        self.lock = threading.Lock()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with flaky.lock:
                    flaky.retry_counts.append(self.headers.get("x-stainless-retry-count"))
                    attempt = flaky.seen[body] = flaky.seen.get(body, 0) + 1
                time.sleep(flaky.delay)
                if attempt <= flaky.failures:
                    status, payload = 503, {"error": {"message": "overloaded", "type": "server_error"}}
                else:
                    status, payload = 200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "Spaces."}}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                    }  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Flaky:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _replay(recorded: Recorded, base_url: str, *extra: str) -> Result:
    return cli("replay", recorded.trace_id, "--db", str(recorded.db), "--base-url", base_url,
               "--retries", "2", "--max-retry-wait", "0.05", *extra)  # fmt: skip


# --------------------------------------------------------------------------- 1. the error names the URL


def test_connection_error_names_the_url_it_tried_without_credentials(
    recorded: Recorded, dead_port: int
) -> None:
    """``ConnectError: … Connection refused (after 3 attempts)`` did not say where: it names the
    method and URL now, without the user-info of --base-url."""
    base = f"http://user:{SECRET}@127.0.0.1:{dead_port}/v1"
    text = _replay(recorded, base)
    assert text.exit_code == 1, text.output
    tried = f"POST http://127.0.0.1:{dead_port}/v1/chat/completions"
    assert f"Connection refused ({tried}, after 3 attempts)" in " ".join(text.output.split())
    assert SECRET not in text.output
    report = json.loads(_replay(recorded, base, "--json").stdout)
    assert [c["error"] for c in report["calls"]] == [
        f"ConnectError: [Errno 111] Connection refused ({tried}, after 3 attempts)"
    ] * 2
    assert SECRET not in json.dumps(report)
    plan = _replay(recorded, base, "--dry-run", "--json")
    assert plan.exit_code == 0 and SECRET not in plan.stdout and tried.split()[1] in plan.stdout


def test_error_url_drops_credential_query_parameters(dead_port: int) -> None:
    """A key in the query (Azure's ``api-key``, Gemini's ``key``) is never printed; other parameters
    stay, so the URL still says what was tried."""
    with httpx2.Client(timeout=5) as client:
        outcome = send_request(
            client,
            "POST",
            f"http://127.0.0.1:{dead_port}/v1/models/m:generate?key={SECRET}&api-version=2024-10-21",
            b"{}",
            provider="gcp.gemini",
            environ={},
            retry=RetryPolicy(max_retries=0),
        )
    assert outcome.error is not None and outcome.attempts == 1
    assert outcome.error.endswith(
        f"(POST http://127.0.0.1:{dead_port}/v1/models/m:generate?api-version=2024-10-21)"
    )
    assert SECRET not in outcome.error


# --------------------------------------------------------------------------- 2. honest totals


def test_totals_count_failed_calls_as_failed_not_replayed(recorded: Recorded, dead_port: int) -> None:
    """Both calls failed: the totals said ``2/2 calls replayed``."""
    text = _replay(recorded, f"http://127.0.0.1:{dead_port}/v1")
    assert text.exit_code == 1
    assert "totals: 0/2 calls replayed, 2 failed, 0 changed, 0 skipped" in text.output
    totals = json.loads(_replay(recorded, f"http://127.0.0.1:{dead_port}/v1", "--json").stdout)["totals"]
    assert (totals["calls"], totals["replayed"], totals["errors"], totals["skipped"]) == (2, 0, 2, 0)


# --------------------------------------------------------------------------- 3. retries are marked


def _resend_counts(db: Path, trace_id: str) -> list[tuple[str, int | None]]:
    """(original span id, http.request.resend_count) of each LLM span of ``trace_id``."""
    rows = run_query(
        "SELECT attributes->>'$.\"spanreel.replay.original_span_id\"', "
        "CAST(attributes->>'$.\"http.request.resend_count\"' AS BIGINT) "
        "FROM llm_calls WHERE trace_id = ? ORDER BY 1, 2 NULLS FIRST",
        db,
        [trace_id],
    ).rows
    return [(str(a), b) for a, b in rows]


def test_replay_retries_are_numbered_and_counted_like_an_apps_sdk_retries(
    recorded: Recorded, collector: CollectorProcess, dead_port: int
) -> None:
    """A 2-call replay whose calls took 3 attempts each stored 6 GenAI spans that no attribute told
    apart from 6 calls. Each retry now carries ``http.request.resend_count`` (1, 2), as the SDK's
    own retries of an app's call do; ``traces.llm_calls`` counts each attempt (a span of the
    ``llm_calls`` view) for both, and the first attempts are the calls."""
    report = json.loads(_replay(recorded, f"http://127.0.0.1:{dead_port}/v1", "--json").stdout)
    replay_id = report["replay_trace_id"]
    originals = sorted(c["original_span_id"] for c in report["calls"])
    count = "SELECT count(*) FROM llm_calls WHERE trace_id = ?"
    wait_for(lambda: count_rows(recorded.db, count, [replay_id]) == 6, what="6 replayed attempts")
    assert _resend_counts(recorded.db, replay_id) == [
        (original, resend) for original in originals for resend in (None, 1, 2)
    ]
    first = count + " AND attributes->>'$.\"http.request.resend_count\"' IS NULL"
    assert count_rows(recorded.db, first, [replay_id]) == 2

    # an app's call the openai SDK retried twice: the same shape
    with (
        recording_into(collector) as provider,
        Flaky(failures=2) as server,
        provider.get_tracer("t").start_as_current_span("retried") as root,
    ):
        client = OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=2)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    app_id = format(root.get_span_context().trace_id, "032x")
    wait_for(lambda: count_rows(recorded.db, count, [app_id]) == 3, what="3 attempts of the app's call")
    assert [r for _, r in _resend_counts(recorded.db, app_id)] == [None, 1, 2]
    llm_calls = "SELECT llm_calls FROM traces WHERE trace_id = ?"
    assert (
        count_rows(recorded.db, llm_calls, [app_id]),
        count_rows(recorded.db, llm_calls, [replay_id]),
    ) == (3, 6)
    assert count_rows(recorded.db, first, [app_id]) == 1


def test_a_retry_sends_its_number_the_first_attempt_none() -> None:
    with Flaky(failures=2) as server, httpx2.Client(timeout=5) as client:
        outcome = send_request(
            client, "POST", server.base_url + "/chat/completions", b'{"model": "m", "messages": []}',
            provider="openai", environ={}, retry=RetryPolicy(max_retries=3, base_delay=0.01),
        )  # fmt: skip
    assert outcome.error is None and outcome.attempts == 3
    assert server.retry_counts == [None, "1", "2"]


# --------------------------------------------------------------------------- 4. latency of the whole call


def test_a_failed_call_has_no_latency_comparison(recorded: Recorded, dead_port: int) -> None:
    """``37 → 16 ms`` compared a recorded answer with one refused connection attempt."""
    text = _replay(recorded, f"http://127.0.0.1:{dead_port}/v1")
    lines = text.output.splitlines()
    assert sum("→ failed" in line for line in lines) == 2
    (totals,) = [line for line in lines if line.startswith("totals:")]
    assert "latency" not in totals and "tokens" not in totals
    report = json.loads(_replay(recorded, f"http://127.0.0.1:{dead_port}/v1", "--json").stdout)
    for call in report["calls"]:
        assert call["status"] == "error" and call["attempts"] == 3
        assert call["latency_delta_ms"] is None and call["output_tokens_delta"] is None
    t = report["totals"]
    assert (t["original_latency_ms"], t["new_latency_ms"], t["latency_delta_ms"]) == (None, None, None)


def test_a_retried_call_reports_the_whole_time_it_took(recorded: Recorded) -> None:
    """Each call answered after two 503s (0.1 s each) and two waits (capped at 0.2 s): its latency
    is all of it (≥ 0.7 s), not its last attempt's 0.1 s."""
    with Flaky(failures=2, delay=0.1) as server:
        res = _replay(recorded, server.base_url, "--max-retry-wait", "0.2", "--json")
    with Flaky(failures=2, delay=0.1) as server:
        text = _replay(recorded, server.base_url, "--max-retry-wait", "0.2")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    for call in report["calls"]:
        assert call["status"] == "ok" and call["attempts"] == 3
        assert call["new_latency_ms"] >= 700
        assert call["latency_delta_ms"] == pytest.approx(
            call["new_latency_ms"] - call["original_latency_ms"], abs=0.002
        )  # each figure is rounded to the microsecond
    assert report["totals"]["new_latency_ms"] >= 1400
    assert text.exit_code == 0 and text.output.count("3 attempts") == 2
    assert "totals: 2/2 calls replayed, 0 failed, 2 changed, 0 skipped; tokens in" in text.output


def test_the_price_library_is_loaded_before_the_first_replayed_call_is_timed(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its ~0.2 s import ran on the first replayed calls (the instrumentation loads it lazily when
    an app's first LLM call begins), so a verbatim replay of fast calls showed 90 ms against 1–22
    ms recorded. The replay loads it before it sends anything."""
    import spanreel.instrumentation._cost as cost

    events: list[str] = []
    real_load = cost._load
    monkeypatch.setattr(cost, "_load", lambda: (events.append("load"), real_load()))
    with Flaky(failures=0) as server:
        real_do_post = server.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

        def do_post(handler: Any) -> None:
            events.append("request")
            real_do_post(handler)

        monkeypatch.setattr(server.server.RequestHandlerClass, "do_POST", do_post)
        res = _replay(recorded, server.base_url, "--json")
    assert res.exit_code == 0, res.output
    assert events[:1] == ["load"] and events.count("request") == 2, events
