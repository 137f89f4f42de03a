"""The decode workers' per-trace summary (collector/_trace_rows.py) equals the writer's SQL
aggregate, and the writer stores the same trace_index rows and duplicates with it as without it."""

from __future__ import annotations

import math
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_collector_storage import _row

from spanreel.collector._batch import PreparedBatch
from spanreel.collector._schema import rows_to_arrow
from spanreel.collector._trace_rows import TRACE_ROWS_SCHEMA, trace_rows
from spanreel.collector._writer import _AGGREGATE, SpanWriter, open_database

BASE = 1_700_000_000_000_000_000
TRACES = ("aa" * 16, "bb" * 16, "cc" * 16)
SPAN_IDS = (*(f"{i:016x}" for i in range(1, 9)), "ffffffffffffffff")

_span = st.fixed_dictionaries(
    {
        "trace": st.sampled_from(TRACES),
        "span_id": st.sampled_from(SPAN_IDS),
        "root": st.booleans(),
        "service_name": st.sampled_from([None, "api", "worker"]),
        "operation": st.sampled_from([None, "chat"]),
        "input_tokens": st.one_of(st.none(), st.integers(0, 10_000)),
        "output_tokens": st.one_of(st.none(), st.integers(0, 10_000)),
        "session_id": st.sampled_from([None, "s1", "s2"]),
        "cost_usd": st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
        "duration": st.integers(0, 1_000),
    }
)


_FIELDS = ("service_name", "operation", "input_tokens", "output_tokens", "session_id")


def _rows(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, s in enumerate(spans):
        start = BASE + 1_000 * i  # distinct start times: arg_min has one answer, as in SQL
        fields = {k: s[k] for k in _FIELDS}
        parent = None if s["root"] else "ab" * 8
        row = _row(s["trace"], s["span_id"], parent, start, start + s["duration"], **fields)
        row["cost_usd"] = s["cost_usd"]
        rows.append(row)
    return rows


def _normalised(table: Any) -> list[dict[str, Any]]:
    """Rows sorted by trace id, times as integer ns, span ids sorted (list order is unspecified)."""
    for name in ("start_time", "end_time"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(i).cast("int64"))
    out = []
    for row in sorted(table.to_pylist(), key=lambda r: r["trace_id"]):
        row["span_ids"] = sorted(row["span_ids"])
        out.append(row)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_span, min_size=1, max_size=25))
def test_trace_rows_equal_the_writers_sql_aggregate(spans: list[dict[str, Any]]) -> None:
    table = rows_to_arrow(_rows(spans))
    con = duckdb.connect()
    con.register("batch", table)
    expected = _normalised(con.sql(_AGGREGATE.format(source="batch", where="")).to_arrow_table())
    got_table = trace_rows(table)
    assert got_table.schema == TRACE_ROWS_SCHEMA
    got = _normalised(got_table)
    assert [r["trace_id"] for r in got] == [r["trace_id"] for r in expected]
    for mine, sql in zip(got, expected, strict=True):
        cost_mine, cost_sql = mine.pop("cost_usd"), sql.pop("cost_usd")
        assert (cost_mine is None) == (cost_sql is None)
        assert cost_mine is None or math.isclose(cost_mine, cost_sql, rel_tol=1e-12, abs_tol=1e-12)
        assert mine == sql


def test_trace_rows_of_an_empty_batch_is_empty() -> None:
    assert trace_rows(rows_to_arrow([])).num_rows == 0


def test_trace_rows_rejects_a_span_id_that_is_not_hex() -> None:
    with pytest.raises(ValueError):
        trace_rows(rows_to_arrow([_row(TRACES[0], "not-hex-at-all!!", None, BASE, BASE + 1)]))


@pytest.mark.parametrize("with_summary", [False, True], ids=["writer-summarises", "worker-summary"])
def test_writer_stores_the_same_with_or_without_the_workers_summary(
    tmp_path: Path, with_summary: bool
) -> None:
    def submit(writer: SpanWriter, rows: list[dict[str, Any]]) -> Any:
        table = rows_to_arrow(rows)
        return writer.submit(table, trace_rows(table) if with_summary else None)

    t1, t2, t3 = TRACES
    a, b, c = (
        _row(t1, s * 16, parent, BASE + i, BASE + 50, operation="chat", input_tokens=i)
        for i, (s, parent) in enumerate([("a", None), ("b", "a" * 16), ("c", "a" * 16)])
    )
    other = _row(t2, "dd" * 8, None, BASE + 5, BASE + 9, session_id="s")
    late = _row(t3, "ee" * 8, "ab" * 8, BASE + 7, BASE + 8)
    writer = SpanWriter(open_database(tmp_path / "d.duckdb"))
    # One group: an export, its retry (trace t1 in two batches), a third trace; then a batch with a
    # span twice; then a pure retry.
    futures = [submit(writer, [a, b]), submit(writer, [a, b, other]), submit(writer, [late])]
    assert [f.result(timeout=30).committed for f in futures] == [2, 3, 1]
    submit(writer, [b, c, b]).result(timeout=30)
    submit(writer, [a, other]).result(timeout=30)
    assert (writer.stored_spans, writer.duplicate_spans) == (5, 6)
    rows = (
        writer.cursor()
        .execute(
            "SELECT trace_id, root_span_id, service_name, span_count, llm_calls, input_tokens, session_id, "
            f"list_sort(span_ids), epoch_ns(start_time) - {BASE}, epoch_ns(end_time) - {BASE} "
            "FROM trace_index ORDER BY trace_id"
        )
        .fetchall()
    )
    writer.close()
    assert rows == [
        (t1, "a" * 16, "svc", 3, 3, 3, None, sorted(int(s * 16, 16) for s in "abc"), 0, 50),
        (t2, "dd" * 8, "svc", 1, 0, None, "s", [0xDDDDDDDDDDDDDDDD], 5, 9),
        (t3, None, "svc", 1, 0, None, None, [0xEEEEEEEEEEEEEEEE], 7, 8),
    ]


def test_prepared_batch_survives_pickling_as_the_decode_workers_send_it() -> None:
    rows = _rows(
        [
            {"trace": TRACES[0], "span_id": SPAN_IDS[0], "root": True, "service_name": "api",
             "operation": "chat", "input_tokens": 3, "output_tokens": None, "session_id": "s1",
             "cost_usd": 0.5, "duration": 7},
            {"trace": TRACES[1], "span_id": SPAN_IDS[1], "root": False, "service_name": None,
             "operation": None, "input_tokens": None, "output_tokens": None, "session_id": None,
             "cost_usd": None, "duration": 0},
        ]
    )  # fmt: skip
    rows[0]["attributes"] = {"gen_ai.input.messages": "héllo ✓", "n": [1, 2]}
    table = rows_to_arrow(rows)
    batch = PreparedBatch(table, trace_rows(table), 1, "rejected 1 invalid span(s): …")
    copy = pickle.loads(ForkingPickler.dumps(batch))
    assert copy.table.equals(batch.table) and copy.table.schema == batch.table.schema
    assert copy.traces.equals(batch.traces)
    assert (copy.rejected_spans, copy.error_message) == (1, "rejected 1 invalid span(s): …")
