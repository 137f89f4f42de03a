"""The trace viewer's HTTP endpoints on a real collector subprocess, fed with traces recorded through
the real ``openai`` SDK + spanreel instrumentation against ``FakeLLMServer`` (see test_ui_support)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import CollectorProcess, start_collector
from test_ui_support import HOSTILE, SESSION, Dataset, HonestReplays, record_dataset, record_honest_replays

from spanreel._attributes import SPANREEL_COST_USD
from spanreel.cli import main
from spanreel.fakellm import FakeLLMServer


@pytest.fixture(scope="module")
def data(collector: CollectorProcess) -> Dataset:
    with FakeLLMServer(port=0) as llm:
        return record_dataset(collector, llm)


@pytest.fixture(scope="module")
def api(collector: CollectorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.info["query_url"], timeout=30, trust_env=False) as client:
        yield client


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def trace_ids(api: httpx.Client, **params: Any) -> list[str]:
    return [t["trace_id"] for t in get(api, "/api/ui/traces", **params)["traces"]]


def test_list_is_newest_first_with_totals(api: httpx.Client, data: Dataset) -> None:
    page = get(api, "/api/ui/traces")
    traces = page["traces"]
    assert page["next_cursor"] is None and page["limit"] == 50
    assert [t["trace_id"] for t in traces] == list(reversed(data.all_traces))
    starts = [t["start_time"] for t in traces]
    assert starts == sorted(starts, reverse=True)
    by_id = {t["trace_id"]: t for t in traces}

    support = by_id[data.support]
    assert support["root_name"] == "support chat" and support["service_name"] == "support-bot"
    assert support["llm_calls"] == 3 and support["session_id"] == SESSION
    assert support["input_tokens"] > 0 and support["output_tokens"] > 0
    assert support["total_tokens"] == support["input_tokens"] + support["output_tokens"]
    assert support["errors"] == 0 and support["replay_of"] is None
    assert support["duration_ns"] > 0 and support["span_count"] >= 4
    # cost: the sum of the calls' recorded spanreel.cost.usd (None when no span has a cost)
    spans = get(api, f"/api/ui/traces/{data.support}")["spans"]
    costs = [s["attributes"][SPANREEL_COST_USD] for s in spans if SPANREEL_COST_USD in s["attributes"]]
    assert len(costs) == 3 and support["cost_usd"] == pytest.approx(sum(costs))

    failing = by_id[data.failing]
    assert failing["errors"] >= 1 and failing["llm_calls"] == 1
    assert by_id[data.replay]["replay_of"] == data.support
    assert by_id[data.replay]["root_name"] == "replay support chat"
    batch = by_id[data.batch[0]]
    assert batch["llm_calls"] == 0 and batch["total_tokens"] is None and batch["span_count"] == 2
    assert batch["cost_usd"] is None


def test_keyset_pagination_covers_everything_once(api: httpx.Client, data: Dataset) -> None:
    everything = trace_ids(api)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = get(api, "/api/ui/traces", limit=2, **({"cursor": cursor} if cursor else {}))
        assert 1 <= len(page["traces"]) <= 2
        seen += [t["trace_id"] for t in page["traces"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and pages == 5  # 9 traces, 2 per page

    # a cursor combines with filters: 5 batch traces → 2 + 2 + 1
    first = get(api, "/api/ui/traces", service="batch", limit=2)
    second = get(api, "/api/ui/traces", service="batch", limit=2, cursor=first["next_cursor"])
    third = get(api, "/api/ui/traces", service="batch", limit=2, cursor=second["next_cursor"])
    ids = [t["trace_id"] for p in (first, second, third) for t in p["traces"]]
    assert ids == list(reversed(data.batch)) and third["next_cursor"] is None


def test_filters(api: httpx.Client, data: Dataset) -> None:
    assert set(trace_ids(api, service="support-bot")) == {data.support, data.failing}
    assert trace_ids(api, model="fake-judge") == [data.debate]
    assert set(trace_ids(api, model="gpt-4o-mini")) == {data.support, data.replay}
    assert trace_ids(api, session=SESSION) == [data.debate, data.support]
    assert trace_ids(api, status="error") == [data.failing]
    assert data.failing not in trace_ids(api, status="ok") and len(trace_ids(api, status="ok")) == 8
    # text search over the recorded messages: case-insensitive, input and output
    assert trace_ids(api, q="PARIS") == [data.replay, data.support]
    assert trace_ids(api, q="order #1234") == [data.replay, data.support]
    assert trace_ids(api, q=data.first_answer[:120]) == [data.support]  # an output text
    assert trace_ids(api, q='& "quotes"') == [data.debate]  # quotes are escaped inside the JSON
    assert trace_ids(api, q="%") == [] and trace_ids(api, q="P_RIS") == []  # no LIKE wildcards
    assert trace_ids(api, q="PARIS", service="support-bot") == [data.support]
    assert trace_ids(api, session=SESSION, model="fake-judge", status="ok") == [data.debate]
    # time range on the trace start: since inclusive, until exclusive
    debate_start = next(t for t in get(api, "/api/ui/traces")["traces"] if t["trace_id"] == data.debate)[
        "start_time"
    ]
    after = trace_ids(api, since=debate_start)
    assert after == [data.replay, *reversed(data.batch), data.debate]
    assert trace_ids(api, until=debate_start) == [data.failing, data.support]
    assert trace_ids(api, since="2000-01-01T00:00:00+02:00", until="2000-01-02T00:00:00Z") == []
    options = get(api, "/api/ui/filters")
    assert options["services"] == ["batch", "debate-app", "spanreel-replay", "support-bot"]
    assert {"gpt-4o-mini", "fake-judge", "fake-error-500"} <= set(options["models"])


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/api/ui/traces", {"status": "maybe"}, 400, "status must be"),
        ("/api/ui/traces", {"limit": "0"}, 400, "limit must be between"),
        ("/api/ui/traces", {"limit": "ten"}, 400, "limit must be an integer"),
        ("/api/ui/traces", {"cursor": "not-a-cursor"}, 400, "invalid cursor"),
        ("/api/ui/traces", {"since": "yesterday"}, 400, "since must be an ISO-8601 time"),
        ("/api/ui/traces", {"q": "x" * 201}, 400, "longer than"),
        ("/api/ui/sessions", {"limit": "201"}, 400, "limit must be between 1 and 200"),
        ("/api/ui/sessions", {"limit": "ten"}, 400, "limit must be an integer"),
        ("/api/ui/sessions", {"cursor": "not-a-cursor"}, 400, "invalid cursor"),
        ("/api/ui/traces/xyz", {}, 400, "invalid trace id"),
        ("/api/ui/traces/" + "ab" * 16, {}, 404, "is not stored"),
        ("/api/ui/session", {"id": "no-such-session"}, 404, "no stored span has session.id"),
        ("/api/ui/session", {}, 400, "session id is empty"),
        ("/api/ui/compare/" + "0" * 32, {}, 404, "is not stored"),
    ],
)
def test_bad_requests_get_a_clear_error(
    api: httpx.Client, data: Dataset, path: str, params: dict[str, str], status: int, message: str
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_sql_in_parameters_is_only_data(api: httpx.Client, data: Dataset) -> None:
    for hostile in ("' OR 1=1 --", "x'); DROP TABLE spans; --", '"; SELECT 1; --'):
        for key in ("service", "model", "session", "q"):
            assert trace_ids(api, **{key: hostile}) == []
    assert len(trace_ids(api)) == 9


def test_trace_detail(api: httpx.Client, data: Dataset) -> None:
    detail = get(api, f"/api/ui/traces/{data.support.upper()}")  # ids are case-insensitive
    trace, spans = detail["trace"], detail["spans"]
    assert trace["trace_id"] == data.support and trace["errors"] == 0
    assert len(spans) == trace["span_count"] and detail["truncated"] is False
    assert spans[0]["name"] == "support chat" and spans[0]["offset_ns"] == 0
    assert spans[0]["parent_span_id"] is None
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_span_id"] in ids for s in spans[1:])  # a complete tree
    offsets = [s["offset_ns"] for s in spans]
    assert offsets == sorted(offsets)
    llm = [s for s in spans if s["is_llm"]]
    assert len(llm) == 3 and all(s["name"] == "chat gpt-4o-mini" for s in llm)
    assert not any(s["is_llm"] for s in spans if s["name"] != "chat gpt-4o-mini")

    first = llm[0]
    assert [(m["role"], m["direction"]) for m in first["conversation"]] == [
        ("system", "input"),
        ("user", "input"),
        ("assistant", "output"),
    ]
    assert first["conversation"][0]["parts"] == [
        {"type": "text", "content": "You are a helpful support agent."}
    ]
    assert first["conversation"][2]["parts"][0]["content"] == data.first_answer
    assert first["conversation"][2]["finish_reason"] == "stop"
    assert first["output_text"] == data.first_answer
    assert first["genai"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert first["genai"]["gen_ai.usage.output_tokens"] == first["output_tokens"]
    assert "gen_ai.input.messages" not in first["genai"]  # content is the conversation, not a row
    assert "gen_ai.input.messages" in first["attributes"]  # …but stays in the raw attributes

    tool_call = llm[1]["conversation"][-1]["parts"][0]
    assert tool_call["type"] == "tool_call" and tool_call["name"] == "get_weather"
    assert tool_call["arguments"].startswith("{\n")  # indented JSON
    assert llm[1]["tools"] == [{"name": "get_weather", "description": "Current weather for a city."}]
    kinds = [p["type"] for m in llm[2]["conversation"] for p in m["parts"]]
    assert kinds == ["text", "tool_call", "tool_call_response", "text"]
    result = llm[2]["conversation"][2]
    assert result["role"] == "tool" and '"temp_c": 21' in result["parts"][0]["response"]

    assert [r["trace_id"] for r in detail["replays"]] == [data.replay] and detail["replay_of"] is None
    replay = get(api, f"/api/ui/traces/{data.replay}")
    assert replay["replay_of"] == data.support and replay["trace"]["replay_of"] == data.support
    originals = {s["span_id"] for s in llm}
    assert {s["replay_of_span_id"] for s in replay["spans"] if s["is_llm"]} == originals


def test_error_span_and_hostile_text_are_returned_as_data(api: httpx.Client, data: Dataset) -> None:
    failing = get(api, f"/api/ui/traces/{data.failing}")
    call = next(s for s in failing["spans"] if s["is_llm"])
    assert call["status_code"] == "ERROR" and call["genai"].get("error.type")
    assert failing["trace"]["errors"] >= 1
    debate = get(api, f"/api/ui/traces/{data.debate}")
    call = next(s for s in debate["spans"] if s["is_llm"])
    assert call["conversation"][0]["parts"][0]["content"] == "Judge this: " + HOSTILE


def test_session(api: httpx.Client, data: Dataset) -> None:
    session = get(api, "/api/ui/session", id=SESSION)
    assert session["session_id"] == SESSION and session["truncated"] is False
    traces = session["traces"]
    assert [t["trace_id"] for t in traces] == [data.support, data.debate]  # time order
    assert [len(t["calls"]) for t in traces] == [3, 1]
    assert traces[0]["calls"][0]["output_preview"].startswith(data.first_answer[:40])
    assert traces[0]["calls"][1]["output_preview"].startswith("get_weather(")
    assert traces[1]["calls"][0]["model"] == "fake-judge"
    totals = session["totals"]
    assert totals["traces"] == 2 and totals["llm_calls"] == 4 and totals["errors"] == 0
    assert totals["output_tokens"] == sum(t["output_tokens"] for t in traces)


def test_sessions_list(api: httpx.Client, data: Dataset) -> None:
    """One row per session (the ``sessions`` view, as ``spanreel sessions --json`` prints it),
    totalled over all its traces."""
    page = get(api, "/api/ui/sessions")
    assert page["next_cursor"] is None and page["limit"] == 50
    (session,) = page["sessions"]
    traces = get(api, "/api/ui/traces", session=SESSION)["traces"]
    assert [t["trace_id"] for t in traces] == [data.debate, data.support]
    assert session["session_id"] == SESSION and session["session_name"] == "support"
    assert session["user_id"] is None and session["service_name"] == "support-bot"
    assert (session["trace_count"], session["llm_calls"], session["error_count"]) == (2, 4, 0)
    for key in ("input_tokens", "output_tokens"):
        assert session[key] == sum(t[key] for t in traces) > 0
    assert traces[0]["cost_usd"] is None  # fake-judge has no price
    assert session["cost_usd"] == pytest.approx(traces[1]["cost_usd"]) and session["cost_usd"] > 0
    # the session starts inside the support chat (its root span opened the session) and ends with the debate
    assert traces[1]["start_time"] < session["start_time"] < traces[0]["start_time"]
    assert session["end_time"] <= traces[0]["end_time"] and session["duration_ns"] > 0
    res = CliRunner().invoke(main, ["sessions", "--db", str(data.db), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (listed,) = json.loads(res.stdout)
    assert {**listed, "cost_usd": pytest.approx(listed["cost_usd"])} == session
    assert get(api, "/api/ui/sessions", limit=1) == page | {"limit": 1}


def test_compare_replay_with_original(api: httpx.Client, data: Dataset) -> None:
    result = get(api, f"/api/ui/compare/{data.replay}")
    assert result["original"]["trace_id"] == data.support and result["replay"]["trace_id"] == data.replay
    t = result["totals"]
    assert (t["calls"], t["replayed"], t["failed"], t["changed"], t["skipped"]) == (3, 3, 0, 3, 0)
    assert t["compared_calls"] == {"input_tokens": 3, "output_tokens": 3, "duration_ns": 3, "cost_usd": 3}
    assert t["original_input_tokens"] == sum(c["original"]["input_tokens"] for c in result["calls"])
    first = result["calls"][0]
    assert first["original"]["output_text"] == data.first_answer
    assert first["replay"]["output_text"] != data.first_answer
    assert first["output_changed"] is True and first["input_changed"] is True  # the system prompt was edited
    assert first["replay"]["input"][0]["parts"][0]["content"] == "Answer like a pirate."
    # asking with the original's id compares it with its (latest) replay
    assert get(api, f"/api/ui/compare/{data.support}")["calls"] == result["calls"]
    not_replayed = api.get(f"/api/ui/compare/{data.debate}")
    assert not_replayed.status_code == 404 and "has not been replayed" in not_replayed.json()["error"]


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HonestReplays, httpx.Client]]:
    """The traces of :func:`record_honest_replays` on a collector of their own (the dataset's
    trace counts stay as they are)."""
    db = tmp_path_factory.mktemp("honest") / "spans.duckdb"
    with start_collector(db) as running, FakeLLMServer(port=0) as llm:
        replays = record_honest_replays(running, llm)
        with httpx.Client(base_url=running.info["query_url"], timeout=30, trust_env=False) as client:
            yield replays, client


def test_compare_counts_an_answer_without_output_as_failed(
    honest: tuple[HonestReplays, httpx.Client],
) -> None:
    """Replayed against a web server (HTTP 200, an HTML page), both calls counted as replayed and
    changed: their spans are not errors. They are failed calls now, with the replay report's
    reason, and no totals are compared."""
    replays, api = honest
    result = get(api, f"/api/ui/compare/{replays.no_output}")
    t = result["totals"]
    assert (t["calls"], t["replayed"], t["failed"], t["changed"], t["skipped"]) == (2, 0, 2, 0, 0)
    reason = f"the answer holds no model output (HTTP 200; POST {replays.wrong_url}/chat/completions)"
    assert [(c["failed"], c["error"], c["output_changed"]) for c in result["calls"]] == [
        (True, reason, None)
    ] * 2
    assert all(
        c["replay"]["status_code"] != "ERROR" and c["original"]["output_text"] for c in result["calls"]
    )
    assert t["compared_calls"] == {"input_tokens": 0, "output_tokens": 0, "duration_ns": 0, "cost_usd": 0}
    assert t["original_cost_usd"] is None and t["new_cost_usd"] is None


def test_compare_totals_cover_the_calls_known_on_both_sides(
    honest: tuple[HonestReplays, httpx.Client],
) -> None:
    """The gpt-4.1 call replayed as fake-gpt has no new cost: the page compared the whole traces'
    costs (both calls' against one), a saving that was not there."""
    replays, api = honest
    result = get(api, f"/api/ui/compare/{replays.partial}")
    first, second = result["calls"]
    assert second["replay"]["model"] == "fake-gpt" and second["replay"]["cost_usd"] is None
    assert second["original"]["cost_usd"] == pytest.approx(replays.original_costs[1])
    t = result["totals"]
    assert (t["replayed"], t["failed"]) == (2, 0)
    assert t["compared_calls"] == {"input_tokens": 2, "output_tokens": 2, "duration_ns": 2, "cost_usd": 1}
    assert t["original_cost_usd"] == pytest.approx(replays.original_costs[0])
    assert t["new_cost_usd"] == pytest.approx(first["replay"]["cost_usd"])
    assert (
        t["original_input_tokens"] == first["original"]["input_tokens"] + second["original"]["input_tokens"]
    )
    assert t["new_output_tokens"] == first["replay"]["output_tokens"] + second["replay"]["output_tokens"]
    # the trace rows still carry the whole traces' cost: the page no longer sets them side by side
    assert result["original"]["cost_usd"] == pytest.approx(sum(replays.original_costs))


def test_page_assets_and_security_headers(api: httpx.Client, collector: CollectorProcess) -> None:
    root = api.get("/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["Location"] == "/ui/"
    page = api.get("/ui/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert '<script type="module" src="app.js">' in page.text
    for name, kind in (
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        asset = api.get(f"/ui/{name}")
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(kind)
        again = api.get(f"/ui/{name}", headers={"If-None-Match": asset.headers["ETag"]})
        assert again.status_code == 304
    assert api.get("/ui/missing.js").status_code == 404
    assert api.get("/ui/..%2F_server.py").status_code == 404
    # no external resources: nothing the page loads points off this origin
    for name in ("index.html", "app.css"):
        assert not re.search(r"https?://", api.get(f"/ui/{name}").text)


def test_other_host_names_are_refused(api: httpx.Client) -> None:
    """A page on another site cannot read the data through DNS rebinding (Host is not loopback)."""
    for path in ("/ui/", "/api/ui/traces", "/api/ui/sessions"):
        refused = api.get(path, headers={"Host": "attacker.example:80"})
        assert refused.status_code == 403 and "loopback" in refused.json()["error"]
        assert api.get(path, headers={"Host": "localhost"}).status_code == 200


def test_page_code_never_parses_data_as_html() -> None:
    ui = Path(__file__).resolve().parent.parent / "collector" / "ui"
    scripts = sorted(ui.glob("*.js"))
    assert len(scripts) >= 5
    for script in scripts:
        text = script.read_text()
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in text, f"{script.name} uses {sink}"
