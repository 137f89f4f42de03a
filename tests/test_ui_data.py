"""The trace viewer's data layer without a server: message parsing, cursors, filter validation,
keyset pagination on a real DuckDB file written by the collector's own writer, and the helpers
of ``spanreel ui``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_replay_support import rec, write_db

from spanreel._attributes import SPANREEL_COST_USD, SPANREEL_SESSION_NAME, USER_ID
from spanreel.collector._query import QueryResult, connect, execute_read_only
from spanreel.collector._ui import is_loopback_host, is_public_path, load_assets
from spanreel.collector._ui_cli import can_open_browser, viewer_url
from spanreel.collector._ui_data import (
    MAX_PAGE_SIZE,
    BadRequest,
    NotFound,
    QueryFn,
    TraceFilters,
    compare_replay,
    conversation,
    decode_cursor,
    encode_cursor,
    list_sessions,
    list_traces,
    output_text,
    session_detail,
    trace_detail,
)

TRACE_A = "a" * 32


def test_conversation_follows_the_semconv_message_schema() -> None:
    attributes = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": "c1", "name": "weather", "arguments": '{"city":"Oslo"}'},
                    ],
                },
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": "c1", "response": {"t": -3}}],
                },
                {"role": "user", "parts": [{"type": "blob", "modality": "image", "content": "A" * 500}]},
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "finish_reason": "stop",
                    "parts": [{"type": "reasoning", "content": "cold"}, {"type": "text", "content": "-3 °C"}],
                }
            ]
        ),
    }
    chat = conversation(attributes)
    assert [(m["role"], m["direction"]) for m in chat] == [
        ("system", "input"),
        ("user", "input"),
        ("assistant", "input"),
        ("tool", "input"),
        ("user", "input"),
        ("assistant", "output"),
    ]
    assert chat[0]["parts"] == [{"type": "text", "content": "Be brief."}]
    assert chat[2]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "weather", "arguments": '{\n  "city": "Oslo"\n}'}
    ]
    assert chat[3]["parts"] == [{"type": "tool_call_response", "id": "c1", "response": '{\n  "t": -3\n}'}]
    blob = chat[4]["parts"][0]
    assert blob["type"] == "blob" and "(500 chars)" in blob["content"] and len(blob["content"]) < 300
    assert chat[5]["finish_reason"] == "stop"
    assert output_text(chat) == "-3 °C"


def test_conversation_of_odd_values() -> None:
    assert conversation({}) == []
    assert conversation({"gen_ai.input.messages": "not json"}) == [
        {"role": "unknown", "direction": "input", "parts": [{"type": "text", "content": "not json"}]}
    ]
    # a message without a role: input defaults to user, output to assistant
    chat = conversation(
        {
            "gen_ai.input.messages": json.dumps([{"parts": [{"type": "text", "content": "hi"}]}]),
            "gen_ai.output.messages": json.dumps({"parts": [{"type": "text", "content": "yo"}]}),
        }
    )
    assert [m["role"] for m in chat] == ["user", "assistant"]
    two = conversation(
        {
            "gen_ai.output.messages": json.dumps(
                [
                    {"role": "assistant", "parts": [{"type": "text", "content": "a"}]},
                    {
                        "role": "assistant",
                        "parts": [{"type": "tool_call", "name": "f", "arguments": {"x": 1}}],
                    },
                ]
            )
        }
    )
    assert output_text(two) == 'a\n---\nf({\n  "x": 1\n})'
    assert output_text([]) is None


def test_cursor_round_trip_and_rejection() -> None:
    cursor = encode_cursor("2026-11-21T20:07:00.000000150Z", TRACE_A)
    assert "=" not in cursor and decode_cursor(cursor) == ("2026-11-21T20:07:00.000000150Z", TRACE_A)
    for bad in ("", "!!!", encode_cursor("yesterday", TRACE_A), encode_cursor("2026-01-01T00:00:00Z", "zz")):
        with pytest.raises(BadRequest):
            decode_cursor(bad)


def test_filters_from_params() -> None:
    assert TraceFilters.from_params({}) == TraceFilters()
    f = TraceFilters.from_params(
        {"service": " api ", "status": "error", "since": "2026-11-21T22:00:00+02:00", "until": "", "q": "x"}
    )
    assert f.service == "api" and f.status == "error" and f.until is None and f.text == "x"
    assert f.since == "2026-11-21T20:00:00"  # converted to UTC
    assert TraceFilters.from_params({"since": "2026-11-21T20:00"}).since == "2026-11-21T20:00:00"
    with pytest.raises(BadRequest, match="status must be 'ok' or 'error'"):
        TraceFilters.from_params({"status": "OK!"})
    with pytest.raises(BadRequest, match="until must be an ISO-8601 time"):
        TraceFilters.from_params({"until": "tomorrow"})


@contextmanager
def reading(db: Path) -> Iterator[QueryFn]:
    """A :data:`QueryFn` on a read-only connection to ``db``, closed on exit."""
    con = connect(str(db), read_only=True)

    def run(sql: str, params: list[Any]) -> QueryResult:
        return execute_read_only(con, sql, params)

    try:
        yield run
    finally:
        con.close()


@pytest.fixture
def query(tmp_path: Path) -> Iterator[QueryFn]:
    """Seven traces starting at the same nanosecond (keyset ties), one of them in a session."""
    spans = []
    for i in range(7):
        tid = f"{i:x}" * 32
        spans.append(rec("1", trace_id=tid, name=f"job {i}", session_id="s1" if i == 3 else None))
        spans.append(
            rec("2", "1", trace_id=tid, start_ms=1, dur_ms=2, status_code="ERROR" if i == 5 else "UNSET")
        )
    text = 'Préfix 50%_off C:\\dir "q"\nÉnd'
    messages = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False
    )
    spans.append(
        rec("3", "1", trace_id="3" * 32, operation="chat", attributes={"gen_ai.input.messages": messages})
    )
    with reading(write_db(tmp_path / "spans.duckdb", spans)) as run:
        yield run


def test_keyset_pagination_breaks_start_time_ties_by_trace_id(query: QueryFn) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = list_traces(query, TraceFilters(), limit=3, cursor=cursor)
        seen += [t["trace_id"] for t in page["traces"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{i:x}" * 32 for i in reversed(range(7))]
    errors = list_traces(query, TraceFilters(status="error"))["traces"]
    assert [(t["root_name"], t["errors"]) for t in errors] == [("job 5", 1)]
    with pytest.raises(BadRequest):
        list_traces(query, TraceFilters(), limit=MAX_PAGE_SIZE + 1)


def test_text_search_is_literal_and_case_insensitive(query: QueryFn) -> None:
    def found(text: str) -> list[str]:
        return [t["root_name"] for t in list_traces(query, TraceFilters(text=text))["traces"]]

    for text in ("50%_off", 'C:\\dir "q"', "préfix", 'q"\nénd', "ÉND", "\\"):
        assert found(text) == ["job 3"], text
    for text in ("50%off", "5_%", "C:dir", "%%", "nothing"):
        assert found(text) == [], text


def test_trace_and_session_lookups(query: QueryFn) -> None:
    detail = trace_detail(query, "3" * 32)
    assert [s["name"] for s in detail["spans"]] == ["job 3", "span 3", "span 2"]
    assert detail["spans"][2]["offset_ns"] == 1_000_000 and detail["replays"] == []
    assert detail["spans"][1]["is_llm"] and detail["spans"][1]["conversation"][0]["role"] == "user"
    with pytest.raises(NotFound):
        trace_detail(query, "f" * 32)
    with pytest.raises(BadRequest):
        trace_detail(query, "3" * 31)
    session = session_detail(query, "s1")
    assert [t["trace_id"] for t in session["traces"]] == ["3" * 32]


def test_sessions_list_is_newest_first_with_the_view_columns_and_keyset_pages(tmp_path: Path) -> None:
    """The sessions view's rows, newest first; three sessions starting at the same nanosecond are
    ordered by id, and every page size walks all sessions once, across those ties."""
    chat, later = "e1" * 16, "e2" * 16
    named = {SPANREEL_SESSION_NAME: "support", USER_ID: "alice"}
    spans = [
        rec("1", trace_id=chat, name="turn 1", dur_ms=100, session_id="chat-1", attributes=named),
        rec("2", "1", trace_id=chat, start_ms=10, operation="chat", input_tokens=10, output_tokens=3,
            session_id="chat-1", attributes={SPANREEL_COST_USD: 0.25}),
        rec("3", trace_id=later, name="turn 2", start_ms=500, dur_ms=500, session_id="chat-1"),
        rec("4", "3", trace_id=later, start_ms=510, operation="chat", input_tokens=20, output_tokens=4,
            status_code="ERROR", session_id="chat-1"),
        *[rec("5", trace_id=f"f{i}" * 16, start_ms=2000, session_id=f"job-{i}") for i in (2, 0, 1)],
        rec("6", trace_id="ee" * 16, start_ms=3000),  # no session
    ]  # fmt: skip
    newest_first = ["job-0", "job-1", "job-2", "chat-1"]
    with reading(write_db(tmp_path / "sessions.duckdb", spans)) as query:
        page = list_sessions(query)
        assert [s["session_id"] for s in page["sessions"]] == newest_first
        assert (page["next_cursor"], page["limit"]) == (None, 50)
        assert page["sessions"][-1] == {
            "session_id": "chat-1",
            "session_name": "support",
            "user_id": "alice",
            "service_name": "app",
            "start_time": "2026-11-22T00:47:00.000000000Z",  # T0 of test_replay_support
            "end_time": "2026-11-22T00:47:01.000000000Z",
            "duration_ns": 1_000_000_000,
            "trace_count": 2,
            "span_count": 4,
            "llm_calls": 2,
            "error_count": 1,
            "input_tokens": 30,
            "output_tokens": 7,
            "cost_usd": pytest.approx(0.25),
        }
        job = page["sessions"][0]
        assert (job["llm_calls"], job["input_tokens"], job["cost_usd"], job["error_count"]) == (
            0,
            None,
            None,
            0,
        )
        for limit in (1, 2, 3):
            seen: list[str] = []
            cursor = None
            while True:
                page = list_sessions(query, limit=limit, cursor=cursor)
                assert 1 <= len(page["sessions"]) <= limit
                seen += [s["session_id"] for s in page["sessions"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == newest_first, limit
        for bad in ("!!!", encode_cursor("yesterday", "job-0"), encode_cursor("2026-11-21T20:07:00Z", "")):
            with pytest.raises(BadRequest, match="invalid cursor"):
                list_sessions(query, cursor=bad)
        with pytest.raises(BadRequest, match="limit must be between 1 and"):
            list_sessions(query, limit=MAX_PAGE_SIZE + 1)
    with reading(write_db(tmp_path / "none.duckdb", [rec("1")])) as query:
        assert list_sessions(query) == {"sessions": [], "next_cursor": None, "limit": 50}


def test_peer_traces_show_their_conversation_search_and_cost(tmp_path: Path) -> None:
    """A call recorded by OpenInference (flattened ``llm.input_messages.*``) and one by MLflow (cost
    in ``mlflow.llm.cost``): the viewer shows their conversation and cost and finds their text, from
    the normalised columns. It read only spanreel's own attributes: no conversation, not found,
    and no MLflow cost."""
    openinference = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Weather in Paris?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Sunny, 21 C.",
        "llm.cost.total": 0.002,
    }
    mlflow = {
        "mlflow.spanType": '"CHAT_MODEL"',
        "mlflow.spanInputs": json.dumps({"messages": [{"role": "user", "content": "Tea in Oslo?"}]}),
        "mlflow.llm.cost": json.dumps({"input_cost": 0.001, "output_cost": 0.002, "total_cost": 0.003}),
    }
    spans = [
        rec("1", None, trace_id="a1" * 16, operation="chat", attributes=openinference),
        rec("2", None, trace_id="b2" * 16, operation="chat", attributes=mlflow),
    ]
    con = connect(str(write_db(tmp_path / "peers.duckdb", spans)), read_only=True)

    def query(sql: str, params: list[Any]) -> QueryResult:
        return execute_read_only(con, sql, params)

    (span,) = trace_detail(query, "a1" * 16)["spans"]
    assert [(m["role"], m["parts"][0]["content"]) for m in span["conversation"]] == [
        ("user", "Weather in Paris?"),
        ("assistant", "Sunny, 21 C."),
    ]
    assert span["output_text"] == "Sunny, 21 C." and span["cost_usd"] == pytest.approx(0.002)

    def found(text: str) -> list[str]:
        return [t["trace_id"] for t in list_traces(query, TraceFilters(text=text))["traces"]]

    assert found("weather in paris") == ["a1" * 16] and found("sunny") == ["a1" * 16]
    assert found("tea in oslo") == ["b2" * 16]
    costs = {t["trace_id"]: t["cost_usd"] for t in list_traces(query, TraceFilters())["traces"]}
    assert costs == {"a1" * 16: pytest.approx(0.002), "b2" * 16: pytest.approx(0.003)}
    assert trace_detail(query, "b2" * 16)["spans"][0]["cost_usd"] == pytest.approx(0.003)
    con.close()


def test_a_truncated_trace_keeps_the_figures_of_all_its_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace over MAX_TRACE_SPANS spans showed the errors and cost of the spans it sent (0 and
    none, the failed and priced calls came later), not those of the trace, as the list does."""
    import spanreel.collector._ui_data as ui_data

    monkeypatch.setattr(ui_data, "MAX_TRACE_SPANS", 3)
    priced = {"openinference.span.kind": "LLM", "llm.model_name": "m", "llm.cost.total": 0.25}
    tid = "c3" * 16
    spans = [rec("1", None, trace_id=tid, name="root", dur_ms=100)]
    spans += [rec(str(i), "1", trace_id=tid, start_ms=i) for i in range(2, 5)]
    spans += [
        rec(str(i), "1", trace_id=tid, start_ms=i, status_code="ERROR", operation="chat",
            attributes=priced, session_id=f"late-{i}")
        for i in range(5, 7)
    ]  # fmt: skip
    con = connect(str(write_db(tmp_path / "big.duckdb", spans)), read_only=True)

    def query(sql: str, params: list[Any]) -> QueryResult:
        return execute_read_only(con, sql, params)

    detail = trace_detail(query, tid)
    (listed,) = list_traces(query, TraceFilters())["traces"]
    assert detail["truncated"] and len(detail["spans"]) == 3
    assert (detail["trace"]["errors"], detail["trace"]["cost_usd"]) == (2, pytest.approx(0.5))
    assert (listed["errors"], listed["cost_usd"]) == (2, pytest.approx(0.5))
    assert detail["trace"]["session_ids"] == ["late-5", "late-6"]
    con.close()


def test_loopback_hosts_and_public_paths() -> None:
    for host in ("127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:4000", "127.1.2.3", "::1"):
        assert is_loopback_host(host), host
    for host in (
        None,
        "",
        "attacker.example",
        "attacker.example:80",
        "10.0.0.1:80",
        "[fe80::1]:8",
        "0.0.0.0",
    ):
        assert not is_loopback_host(host), host
    for path in ("/", "/ui", "/ui/", "/ui/app.js"):
        assert is_public_path(path), path
    for path in ("/api/ui/traces", "/ui/a/b", "/api/query", "/uix", "/healthz"):
        assert not is_public_path(path), path
    assert {"index.html", "app.js", "app.css", "favicon.svg"} <= set(load_assets())


def test_ui_command_helpers() -> None:
    assert viewer_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/ui/"
    assert viewer_url("http://127.0.0.1:5000/", "a b/c&d") == "http://127.0.0.1:5000/ui/#token=a%20b%2Fc%26d"
    assert can_open_browser({}, "darwin") and can_open_browser({}, "win32")
    assert can_open_browser({"DISPLAY": ":0"}, "linux") and can_open_browser(
        {"WAYLAND_DISPLAY": "w"}, "linux"
    )
    assert can_open_browser({"BROWSER": "firefox"}, "linux")
    assert not can_open_browser({}, "linux") and not can_open_browser({"SSH_CONNECTION": "x"}, "freebsd14")


def test_compare_shows_a_retried_call_once_and_counts_failed_replays(tmp_path: Path) -> None:
    """The app's SDK retried its call (500, then 200): the comparison showed the first attempt as
    a call "not replayed" beside the real one. A replay that failed counted as "replayed"."""
    original, replay = "0a" * 16, "0b" * 16
    retry = {"http.request.resend_count": 1}
    links = {"spanreel.replay.original_trace_id": original}
    spans = [
        rec("1", trace_id=original, name="app", dur_ms=900),
        rec("2", "1", trace_id=original, name="chat m", start_ms=10, operation="chat", status_code="ERROR"),
        rec("3", "1", trace_id=original, name="chat m", start_ms=300, operation="chat", attributes=retry),
        rec("4", "1", trace_id=original, name="chat n", start_ms=600, operation="chat"),
        rec("5", trace_id=replay, name="replay", start_ms=1000, dur_ms=900, attributes=links),
        rec("6", "5", trace_id=replay, name="chat m", start_ms=1010, operation="chat",
            attributes={"spanreel.replay.original_span_id": "3".rjust(16, "0")}),
        rec("7", "5", trace_id=replay, name="chat n", start_ms=1300, operation="chat", status_code="ERROR",
            attributes={"spanreel.replay.original_span_id": "4".rjust(16, "0")}),
    ]  # fmt: skip
    con = connect(str(write_db(tmp_path / "r.duckdb", spans)), read_only=True)

    def query(sql: str, params: list[Any]) -> QueryResult:
        return execute_read_only(con, sql, params)

    result = compare_replay(query, replay)
    assert [(c["original"]["span_id"][-1], c["replay"]["span_id"][-1]) for c in result["calls"]] == [
        ("3", "6"),
        ("4", "7"),
    ]
    counts = {k: result["totals"][k] for k in ("calls", "replayed", "failed", "changed", "skipped")}
    assert counts == {"calls": 2, "replayed": 1, "failed": 1, "changed": 0, "skipped": 0}
    con.close()


def _said(text: str) -> str:
    """``gen_ai.output.messages`` of an assistant answer ``text``."""
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}]
    )


def test_compare_fails_a_replay_without_output_and_totals_only_calls_known_on_both_sides(
    tmp_path: Path,
) -> None:
    """Three calls recorded with an output, tokens and a cost. The replay of the second has no
    cost (a model without a price), the third's answer holds no model output (an HTML page with
    HTTP 200: its span is not an error). The third counted as replayed and changed, and the totals
    compared whole-trace sums: the second's unknown cost made up a saving."""
    original, replay = "0c" * 16, "0d" * 16
    url = "http://127.0.0.1:9/v1/chat/completions"

    def call(
        span: str, parent: str, trace: str, start: float, cost: float | None, out: str | None, **kw: Any
    ):
        attributes = {
            **kw.pop("attributes", {}),
            "spanreel.request.url": url,
            "spanreel.request.method": "POST",
        }
        if cost is not None:
            attributes["spanreel.cost.usd"] = cost
        if out is not None:
            attributes["gen_ai.output.messages"] = _said(out)
        return rec(
            span,
            parent,
            trace_id=trace,
            name="chat m",
            start_ms=start,
            dur_ms=100,
            operation="chat",
            attributes=attributes,
            **kw,
        )

    def of(span: str) -> dict[str, Any]:
        return {"spanreel.replay.original_span_id": span.rjust(16, "0")}

    spans = [
        rec("1", trace_id=original, name="app", dur_ms=900),
        call("2", "1", original, 10, 0.001, "Spaces.", input_tokens=10, output_tokens=2),
        call("3", "1", original, 200, 0.002, "Emacs.", input_tokens=20, output_tokens=3),
        call("4", "1", original, 400, 0.004, "Neither.", input_tokens=40, output_tokens=5),
        rec("5", trace_id=replay, name="replay", start_ms=1000, dur_ms=900,
            attributes={"spanreel.replay.original_trace_id": original}),
        call("6", "5", replay, 1010, 0.0015, "Tabs.", input_tokens=11, output_tokens=4, attributes=of("2")),
        call("7", "5", replay, 1200, None, "Emacs.", input_tokens=21, output_tokens=6, attributes=of("3")),
        call("8", "5", replay, 1400, None, None, attributes=of("4")),
        rec("9", "8", trace_id=replay, name="POST", start_ms=1401, dur_ms=90, kind="CLIENT",
            attributes={"http.method": "POST", "http.url": url, "http.status_code": 200}),
    ]  # fmt: skip
    con = connect(str(write_db(tmp_path / "r.duckdb", spans)), read_only=True)

    def query(sql: str, params: list[Any]) -> QueryResult:
        return execute_read_only(con, sql, params)

    try:
        result = compare_replay(query, original)
    finally:
        con.close()
    first, second, third = result["calls"]
    assert [c["failed"] for c in result["calls"]] == [False, False, True]
    assert first["error"] is None and first["output_changed"] is True and second["output_changed"] is False
    assert third["error"] == f"the answer holds no model output (HTTP 200; POST {url})"
    assert third["output_changed"] is None  # nothing to compare
    t = result["totals"]
    assert (t["replayed"], t["failed"], t["changed"]) == (2, 1, 1)
    assert t["compared_calls"] == {"input_tokens": 2, "output_tokens": 2, "duration_ns": 2, "cost_usd": 1}
    assert (t["original_input_tokens"], t["new_input_tokens"]) == (30, 32)
    assert (t["original_output_tokens"], t["new_output_tokens"]) == (5, 10)
    assert (t["original_duration_ns"], t["new_duration_ns"]) == (200_000_000, 200_000_000)
    assert (t["original_cost_usd"], t["new_cost_usd"]) == (0.001, 0.0015)
    assert second["replay"]["cost_usd"] is None and first["replay"]["cost_usd"] == 0.0015
    # the trace rows keep the whole traces' figures
    assert result["original"]["cost_usd"] == pytest.approx(0.007) and result["replay"]["cost_usd"] == 0.0015
