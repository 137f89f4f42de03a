"""Render a span tree for ``spanreel show``: a rich :class:`~rich.tree.Tree`, or nested JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from rich.tree import Tree

from ._load import SpanRecord
from ._tree import TreeNode

__all__ = ["node_label", "render_tree", "trace_to_json", "tree_to_json"]


def _fmt_ms(ms: float) -> str:
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def _tokens(span: SpanRecord) -> str | None:
    if span.input_tokens is None and span.output_tokens is None:
        return None
    i = "?" if span.input_tokens is None else str(span.input_tokens)
    o = "?" if span.output_tokens is None else str(span.output_tokens)
    return f"{i}→{o} tok"


def node_label(node: TreeNode, parent_service: str | None = None) -> Text:
    """One line for a node: name, duration, model, tokens in→out, status (ERROR in red).

    The service name is shown when it differs from the parent's. Span names are never
    interpreted as rich markup.
    """
    span = node.span
    if span is None:
        return Text.assemble(
            (f"⟨{node.placeholder_reason}: {node.parent_span_id}⟩", "dim italic"),
        )
    text = Text()
    text.append(span.name or "(unnamed)", style="bold red" if span.is_error else "bold")
    text.append(f"  {_fmt_ms(span.duration_ms)}", style="cyan")
    if span.operation is not None and span.model:
        text.append(f"  {span.model}", style="magenta")
    tokens = _tokens(span)
    if tokens:
        text.append(f"  {tokens}", style="green")
    if span.service_name and span.service_name != parent_service:
        text.append(f"  [{span.service_name}]", style="dim")
    if span.is_error:
        text.append("  ERROR", style="bold red")
        if span.status_message:
            text.append(f" {span.status_message}", style="red")
    elif span.status_code == "OK":
        text.append("  OK", style="green")
    return text


def render_tree(trace_id: str, roots: Sequence[TreeNode]) -> Tree:
    """The whole trace as a rich tree, titled with the trace id and span count."""
    count = sum(1 for r in roots for _ in r.spans())
    tree = Tree(Text.assemble(("trace ", "dim"), (trace_id, "bold"), (f"  {count} spans", "dim")))
    stack: list[tuple[Tree, TreeNode, str | None]] = [(tree, r, None) for r in reversed(roots)]
    while stack:
        parent_tree, node, parent_service = stack.pop()
        branch = parent_tree.add(node_label(node, parent_service))
        service = node.span.service_name if node.span is not None else parent_service
        stack.extend((branch, child, service) for child in reversed(node.children))
    return tree


def _node_fields(node: TreeNode) -> dict[str, Any]:
    span = node.span
    if span is None:
        return {
            "placeholder": True,
            "reason": node.placeholder_reason,
            "parent_span_id": node.parent_span_id,
            "children": [],
        }
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "service_name": span.service_name,
        "scope_name": span.scope_name,
        "start_time_unix_nano": span.start_time_ns,
        "end_time_unix_nano": span.end_time_ns,
        "start_time": span.start_datetime.isoformat(),
        "duration_ms": round(span.duration_ms, 3),
        "status_code": span.status_code,
        "status_message": span.status_message,
        "operation": span.operation,
        "provider": span.provider,
        "request_model": span.request_model,
        "response_model": span.response_model,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "finish_reasons": list(span.finish_reasons),
        "attributes": dict(span.attributes),
        "events": list(span.events),
        "links": list(span.links),
        "children": [],
    }


def _node_json(root: TreeNode) -> dict[str, Any]:
    # iterative: traces can be deeper than Python's recursion limit
    out = _node_fields(root)
    stack: list[tuple[TreeNode, dict[str, Any]]] = [(root, out)]
    while stack:
        node, data = stack.pop()
        for child in node.children:
            child_data = _node_fields(child)
            data["children"].append(child_data)
            stack.append((child, child_data))
    return out


def tree_to_json(roots: Sequence[TreeNode]) -> list[dict[str, Any]]:
    """The forest as nested JSON-safe dicts (``children`` lists; placeholders have
    ``"placeholder": true``, ``reason`` and the referenced ``parent_span_id``).

    Times: ``start_time_unix_nano`` / ``end_time_unix_nano`` (int ns, UTC), ``start_time``
    (ISO-8601, µs), ``duration_ms`` (float).
    """
    return [_node_json(r) for r in roots]


def trace_to_json(trace_id: str, roots: Sequence[TreeNode]) -> dict[str, Any]:
    """``{"trace_id", "span_count", "roots": [...]}`` for ``spanreel show --json``."""
    return {
        "trace_id": trace_id,
        "span_count": sum(1 for r in roots for _ in r.spans()),
        "roots": tree_to_json(roots),
    }
