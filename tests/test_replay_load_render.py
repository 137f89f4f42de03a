from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from test_replay_support import T0, TRACE, direct_query, rec, write_db

from spanreel._attributes import SPANREEL_COST_USD
from spanreel.replay import (
    AmbiguousTraceId,
    InvalidTraceId,
    SpanRecord,
    TraceNotFound,
    build_tree,
    load_trace,
)
from spanreel.replay._cost import call_cost, format_usd
from spanreel.replay._render import node_label, render_tree, trace_to_json

OTHER = "4bf92f35" + "0" * 24


def _spans() -> list[SpanRecord]:
    return [
        rec("a1", name="debate", start_ms=0, dur_ms=1234.5, status_code="OK"),
        rec(
            "b1",
            "a1",
            name="chat gpt-4o-mini",
            kind="CLIENT",
            start_ms=10.000001,  # sub-microsecond precision must survive
            dur_ms=250,
            scope_name="spanreel",
            operation="chat",
            provider="openai",
            request_model="gpt-4o-mini",
            response_model="gpt-4o-mini-2024-07-18",
            input_tokens=12,
            output_tokens=34,
            finish_reasons=("stop",),
            attributes={"gen_ai.request.temperature": 0.5, "nested": {"k": [1, 2]}},
            links=({"trace_id": OTHER, "span_id": "1" * 16, "trace_state": "", "attributes": {}},),
            session_id="s-1",
        ),
        rec(
            "b2",
            "a1",
            name="[bold]tool[/bold]",  # must not be read as markup
            start_ms=300,
            status_code="ERROR",
            status_message="boom",
            service_name="worker",
        ),
        rec("0e1", "dead", name="orphan", start_ms=5),
    ]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "t.duckdb", [*_spans(), rec("e1", trace_id=OTHER, name="other")])


def test_load_trace_roundtrip_through_storage(db: Path) -> None:
    spans = load_trace(TRACE, db, query=direct_query)
    assert [s.span_id[-2:] for s in spans] == ["a1", "e1", "b1", "b2"]  # by start time
    llm = spans[2]
    want = _spans()[1]
    assert llm == want  # every field, including ns times, parsed JSON and GenAI columns
    assert llm.start_time_ns == T0 + 10_000_001
    assert llm.duration_ms == 250
    assert llm.attributes["nested"] == {"k": [1, 2]}
    assert llm.finish_reasons == ("stop",)
    assert spans[0].parent_span_id is None


def test_load_trace_accepts_unique_prefix_uppercase_and_0x(db: Path) -> None:
    assert load_trace("0x" + TRACE[:12].upper(), db, query=direct_query)[0].trace_id == TRACE
    with pytest.raises(AmbiguousTraceId, match="ambiguous"):
        load_trace(TRACE[:8], db, query=direct_query)


def test_load_trace_errors_name_the_database(db: Path) -> None:
    with pytest.raises(TraceNotFound, match=str(db)) as info:
        load_trace("f" * 32, db, query=direct_query)
    assert info.value.trace_id == "f" * 32
    with pytest.raises(TraceNotFound, match=str(db)):
        load_trace("abcdef12", db, query=direct_query)
    for bad in ("xyz", "1234567", "g" * 32, "a" * 33):
        with pytest.raises(InvalidTraceId):
            load_trace(bad, db, query=direct_query)


def test_render_json_nested_tree(db: Path) -> None:
    spans = load_trace(TRACE, db, query=direct_query)
    data = trace_to_json(TRACE, build_tree(spans))
    json.dumps(data)  # JSON-safe
    assert data["trace_id"] == TRACE and data["span_count"] == 4
    root, placeholder = data["roots"]
    assert root["name"] == "debate" and root["duration_ms"] == 1234.5
    assert [c["name"] for c in root["children"]] == ["chat gpt-4o-mini", "[bold]tool[/bold]"]
    llm = root["children"][0]
    assert llm["input_tokens"] == 12 and llm["output_tokens"] == 34
    assert llm["response_model"] == "gpt-4o-mini-2024-07-18"
    assert llm["start_time_unix_nano"] == T0 + 10_000_001
    assert llm["start_time"].startswith("2026-") and llm["start_time"].endswith("+00:00")
    assert llm["links"][0]["trace_id"] == OTHER
    assert llm["attributes"]["gen_ai.request.temperature"] == 0.5
    assert placeholder == {
        "placeholder": True,
        "reason": "missing parent",
        "parent_span_id": "dead".rjust(16, "0"),
        "children": [placeholder["children"][0]],
    }
    assert placeholder["children"][0]["name"] == "orphan"


def test_render_tree_text(db: Path) -> None:
    spans = load_trace(TRACE, db, query=direct_query)
    console = Console(record=True, width=200, color_system="truecolor")
    console.print(render_tree(TRACE, build_tree(spans)))
    text = console.export_text()
    lines = text.splitlines()
    assert TRACE in lines[0] and "4 spans" in lines[0]
    llm_line = next(line for line in lines if "chat gpt-4o-mini" in line)
    assert "250 ms" in llm_line and "gpt-4o-mini-2024-07-18" in llm_line and "12→34 tok" in llm_line
    tool_line = next(line for line in lines if "tool" in line)
    assert "[bold]tool[/bold]" in tool_line and "ERROR boom" in tool_line and "[worker]" in tool_line
    assert "1234 ms" in next(line for line in lines if "debate" in line)
    assert any("missing parent" in line and "dead" in line for line in lines)


def test_error_status_is_red_and_names_are_not_markup() -> None:
    node = build_tree([rec("e1", name="[red]x[/red]", status_code="ERROR", status_message="boom")])[0]
    label = node_label(node)
    assert label.plain.startswith("[red]x[/red]")
    error_at = label.plain.index("ERROR")
    styles = [str(s.style) for s in label.spans if s.start <= error_at < s.end]
    assert any("red" in st for st in styles)
    ok = node_label(build_tree([rec("e2", status_code="OK")])[0])
    assert "ERROR" not in ok.plain and not any("red" in str(s.style) for s in ok.spans)


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (None, None), (0.0, "$0"), (0.0042, "$0.0042"), (12.5, "$12.5"), (0.0000015, "$0.000002"),
        # a recorded cost too small for 6 decimals (an embeddings call) read "$0", as if free
        (1e-07, "$0.0000001"), (5e-07, "$0.0000005"), (1.234e-09, "$0.0000000012"), (-1e-07, "$-0.0000001"),
    ],
)  # fmt: skip
def test_format_usd_never_shows_a_cost_as_zero(usd: float | None, text: str | None) -> None:
    assert format_usd(usd) == text


def test_call_cost_prefers_a_recorded_cost_else_estimates() -> None:
    assert call_cost({SPANREEL_COST_USD: 0.25}, "gpt-4o-mini", "openai", 10, 5) == 0.25
    assert call_cost({"llm.cost.total": 0.5}, None, None, None, None) == 0.5  # OpenInference
    assert call_cost({"gen_ai.usage.cost": "0.75"}, None, None, None, None) == 0.75  # OpenLIT
    mlflow = {
        "mlflow.spanType": json.dumps("CHAT_MODEL"),
        "mlflow.llm.cost": json.dumps({"total_cost": 0.125}),
    }
    assert call_cost(mlflow, None, None, None, None) == 0.125
    estimated = call_cost({}, "gpt-4o-mini", "openai", 1_000_000, 1_000_000)
    assert estimated is not None and estimated > 0
    # unusable recorded values are ignored: the estimate is used
    assert call_cost({SPANREEL_COST_USD: -1.0}, "gpt-4o-mini", "openai", 1_000_000, 1_000_000) == estimated
    assert call_cost({}, "gpt-4o-mini", "openai", None, None) is None
    assert call_cost({}, "no-such-model-xyz", "acme", 10, 10) is None
    # estimated at the call's service tier, like the instrumentation's recorded cost
    standard = call_cost({}, "gpt-5", "openai", 1_000_000, 1_000_000)
    flex = call_cost({"openai.response.service_tier": "flex"}, "gpt-5", "openai", 1_000_000, 1_000_000)
    assert standard is not None and flex == pytest.approx(standard / 2)
