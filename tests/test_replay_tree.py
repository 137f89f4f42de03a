from __future__ import annotations

import itertools
import random

from test_replay_support import TRACE, rec

from spanreel.replay import SpanRecord, TreeNode, build_tree
from spanreel.replay._render import render_tree, tree_to_json
from spanreel.replay._tree import PLACEHOLDER_CYCLE, PLACEHOLDER_MISSING


def shape(nodes: list[TreeNode]) -> list[object]:
    """Compact structure: span id (last 2 chars) or ('?', missing parent) with children."""
    out: list[object] = []
    for n in nodes:
        label = n.span.span_id[-2:] if n.span else ("?", (n.parent_span_id or "")[-2:], n.placeholder_reason)
        out.append((label, shape(n.children)) if n.children else label)
    return out


def all_ids(roots: list[TreeNode]) -> list[str]:
    return [s.span_id for r in roots for s in r.spans()]


TRACE_SPANS = [
    rec("a1", name="root", start_ms=0, dur_ms=100),
    rec("b1", "a1", start_ms=30),
    rec("b2", "a1", start_ms=10),
    rec("c1", "b2", start_ms=12),
    rec("c2", "b2", start_ms=11),
    rec("b3", "a1", start_ms=50),
]
EXPECTED = [("a1", [("b2", ["c2", "c1"]), "b1", "b3"])]


def test_children_sorted_by_start_time_in_any_arrival_order() -> None:
    for perm in itertools.permutations(TRACE_SPANS):
        assert shape(build_tree(perm)) == EXPECTED


def test_equal_start_times_tie_break_on_span_id() -> None:
    spans = [rec("a1"), rec("b9", "a1", start_ms=5), rec("b3", "a1", start_ms=5)]
    assert shape(build_tree(spans)) == [("a1", ["b3", "b9"])]


def test_several_roots_sorted_by_start() -> None:
    spans = [rec("r2", start_ms=50), rec("x1", "r2", start_ms=55), rec("r1", start_ms=0)]
    assert shape(build_tree(spans)) == ["r1", ("r2", ["x1"])]


def test_missing_parent_goes_under_one_placeholder_per_parent_never_dropped() -> None:
    spans = [
        rec("a1", start_ms=0),
        rec("o1", "ff", start_ms=20),
        rec("o2", "ff", start_ms=15),
        rec("o3", "ee", start_ms=5),
        rec("k1", "o1", start_ms=21),
    ]
    roots = build_tree(spans)
    assert shape(roots) == [
        "a1",
        (("?", "ee", PLACEHOLDER_MISSING), ["o3"]),
        (("?", "ff", PLACEHOLDER_MISSING), ["o2", ("o1", ["k1"])]),
    ]
    placeholder = roots[2]
    assert placeholder.is_placeholder and placeholder.span is None
    assert placeholder.parent_span_id == "ff".rjust(16, "0")
    assert placeholder.start_time_ns == spans[2].start_time_ns  # earliest child
    assert sorted(all_ids(roots)) == sorted(s.span_id for s in spans)


def test_cycles_and_self_parents_are_broken_not_lost() -> None:
    spans = [
        rec("a1", start_ms=0),
        rec("s1", "s1", start_ms=1),  # its own parent
        rec("p1", "p2", start_ms=3),  # p1 <-> p2 loop
        rec("p2", "p1", start_ms=4),
        rec("q1", "p2", start_ms=5),
    ]
    roots = build_tree(spans)
    assert sorted(all_ids(roots)) == sorted(s.span_id for s in spans)
    assert len(all_ids(roots)) == len(spans)
    reasons = {r.placeholder_reason for r in roots if r.is_placeholder}
    assert reasons == {PLACEHOLDER_CYCLE}
    # the loop is cut at its earliest span (p1), which then carries the rest of the loop
    assert (("?", "p2", PLACEHOLDER_CYCLE), [("p1", [("p2", ["q1"])])]) in shape(roots)


def test_duplicate_span_ids_appear_once() -> None:
    a = rec("a1")
    assert all_ids(build_tree([a, rec("b1", "a1"), a, rec("b1", "a1")])) == [a.span_id, "b1".rjust(16, "0")]


def test_random_forest_keeps_every_span_and_orders_children() -> None:
    rng = random.Random(7)
    spans: list[SpanRecord] = []
    for i in range(300):
        parent = None if i == 0 or rng.random() < 0.05 else f"{rng.randrange(max(i, 1)):x}"
        if rng.random() < 0.05:
            parent = "dead" + f"{i:x}"  # missing parent
        spans.append(rec(f"{i:x}", parent, start_ms=rng.randrange(1000)))
    rng.shuffle(spans)
    roots = build_tree(spans)
    assert sorted(all_ids(roots)) == sorted(s.span_id for s in spans)
    for root in roots:
        for node in root.walk():
            starts = [c.sort_key for c in node.children]
            assert starts == sorted(starts)


def test_deep_chain_does_not_recurse() -> None:
    spans = [rec("0")] + [rec(f"{i:x}", f"{i - 1:x}", start_ms=i) for i in range(1, 5000)]
    roots = build_tree(reversed(spans))
    assert len(roots) == 1 and len(all_ids(roots)) == 5000
    data = tree_to_json(roots)
    depth = 0
    node = data[0]
    while node["children"]:
        (node,) = node["children"]
        depth += 1
    assert depth == 4999
    render_tree(TRACE, roots)  # builds without recursion


def test_waterfall_clamps_clock_skew_and_keeps_orphans() -> None:
    from rich.console import Console

    from spanreel.replay._render import render_waterfall

    spans = [
        rec("a1", name="root", start_ms=0, dur_ms=100),
        rec("b1", "a1", name="skewed child", start_ms=-50, dur_ms=400),  # before and after its parent
        rec("c1", "gone", name="orphan", start_ms=20, dur_ms=10),
    ]
    console = Console(width=140, record=True)
    console.print(render_waterfall(TRACE, build_tree(spans), bar_width=20))
    text = console.export_text()
    lines = text.splitlines()
    assert "3 spans" in lines[0]
    assert any("⟨missing parent: " in line for line in lines) and any("orphan" in line for line in lines)
    skewed = next(line for line in lines if "skewed child" in line)
    assert "█" * 20 in skewed  # the whole timeline, clamped, never wider than the bar
    assert "█" * 21 not in text
