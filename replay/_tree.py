"""Rebuild a trace's span tree from parent/child ids (pure; no I/O).

Rules:

- children (and roots) are ordered by start time, then span id, whatever order spans arrived in;
- a trace may have several roots (spans without a parent id);
- spans whose parent is not in the trace (not exported, dropped, still in flight) are never
  dropped: they hang under a *placeholder* node, one per missing parent id;
- a span listing itself as parent, or a parent cycle, is broken the same way (placeholder with
  reason ``"cycle"``) so every span appears exactly once;
- duplicate span ids (retried exports) keep the first record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._load import SpanRecord

__all__ = ["PLACEHOLDER_CYCLE", "PLACEHOLDER_MISSING", "TreeNode", "build_tree"]

#: ``TreeNode.placeholder_reason`` when the parent span is not in the trace.
PLACEHOLDER_MISSING = "missing parent"
#: ``TreeNode.placeholder_reason`` when the parent chain loops back on itself.
PLACEHOLDER_CYCLE = "cycle"


@dataclass(eq=False)
class TreeNode:
    """A node of the span tree.

    A real node has ``span`` set. A placeholder has ``span is None``, ``parent_span_id`` = the id
    that was referenced but could not be used, and ``placeholder_reason`` saying why
    (:data:`PLACEHOLDER_MISSING` or :data:`PLACEHOLDER_CYCLE`). ``children`` are sorted by start.
    """

    span: SpanRecord | None
    children: list[TreeNode] = field(default_factory=list)
    parent_span_id: str | None = None
    placeholder_reason: str | None = None

    @property
    def is_placeholder(self) -> bool:
        return self.span is None

    @property
    def start_time_ns(self) -> int:
        """The span's start; for a placeholder, the earliest start among its children."""
        if self.span is not None:
            return self.span.start_time_ns
        return min((c.start_time_ns for c in self.children), default=0)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.start_time_ns, self.span.span_id if self.span else "~" + (self.parent_span_id or ""))

    def walk(self) -> Iterator[TreeNode]:
        """Depth-first, pre-order, children in start order (iterative: deep traces are fine)."""
        stack: list[TreeNode] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def spans(self) -> Iterator[SpanRecord]:
        """The real spans under (and including) this node, pre-order."""
        for node in self.walk():
            if node.span is not None:
                yield node.span


def build_tree(spans: Iterable[SpanRecord]) -> list[TreeNode]:
    """Build the forest for one trace's spans.

    Returns the root nodes (real roots and placeholders), sorted by start time. Every distinct
    ``span_id`` of the input appears exactly once in the result.
    """
    nodes: dict[str, TreeNode] = {}
    for span in spans:
        nodes.setdefault(span.span_id, TreeNode(span))

    roots: list[TreeNode] = []
    placeholders: dict[tuple[str, str], TreeNode] = {}

    def hang_under_placeholder(node: TreeNode, parent_id: str, reason: str) -> None:
        key = (parent_id, reason)
        ph = placeholders.get(key)
        if ph is None:
            ph = placeholders[key] = TreeNode(None, parent_span_id=parent_id, placeholder_reason=reason)
            roots.append(ph)
        ph.children.append(node)

    for span_id, node in nodes.items():
        assert node.span is not None
        parent_id = node.span.parent_span_id
        if not parent_id:
            roots.append(node)
        elif parent_id == span_id:
            hang_under_placeholder(node, parent_id, PLACEHOLDER_CYCLE)
        elif parent_id in nodes:
            nodes[parent_id].children.append(node)
        else:
            hang_under_placeholder(node, parent_id, PLACEHOLDER_MISSING)

    # Spans in a parent cycle are unreachable from any root: cut each cycle at its earliest span.
    reached: set[str] = set()

    def mark(start: TreeNode) -> None:
        for n in start.walk():
            if n.span is not None:
                reached.add(n.span.span_id)

    for root in roots:
        mark(root)
    if len(reached) < len(nodes):
        for node in sorted(nodes.values(), key=lambda n: n.sort_key):
            assert node.span is not None
            if node.span.span_id in reached:
                continue
            parent_id = node.span.parent_span_id
            assert parent_id is not None
            parent = nodes[parent_id]
            parent.children.remove(node)
            hang_under_placeholder(node, parent_id, PLACEHOLDER_CYCLE)
            mark(node)

    for root in roots:
        for n in root.walk():
            n.children.sort(key=lambda c: c.sort_key)
    roots.sort(key=lambda r: r.sort_key)
    return roots
