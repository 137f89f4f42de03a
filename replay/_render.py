"""Render span trees for ``spanreel show``: a waterfall table (tree guides, a timing bar per
span, duration, model, tokens, cost, status), a plain rich :class:`~rich.tree.Tree`, or nested
JSON; and the replay plan for ``spanreel replay --dry-run``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from spanreel.instrumentation._http import sanitize_url

from ._cascade import waves
from ._cost import call_cost, format_usd
from ._edits import EditError, model_in_path, url_with_model
from ._load import SpanRecord
from ._plan import apply_edits, rewrite_url
from ._tree import TreeNode

if TYPE_CHECKING:
    from ._execute import ReplayPlan

__all__ = [
    "node_label",
    "plan_to_json",
    "render_plan",
    "render_tree",
    "render_waterfall",
    "trace_to_json",
    "traces_to_json",
    "tree_to_json",
]

#: Width of the waterfall's timing bars, in terminal cells.
BAR_WIDTH = 32


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


def span_cost(span: SpanRecord) -> float | None:
    """The span's LLM cost in USD (recorded, else estimated; ``None`` for non-LLM spans)."""
    if span.operation is None:
        return None
    return call_cost(span.attributes, span.model, span.provider, span.input_tokens, span.output_tokens)


def _bar(start: int, end: int, t0: int, t1: int, width: int, style: str) -> Text:
    """A timing bar: the span's [start, end] placed on the [t0, t1] timeline (clamped, so clock
    skew between services cannot push it outside). Sub-cell spans get one thin mark."""
    total = max(1, t1 - t0)
    a = min(max(start, t0), t1) - t0
    b = min(max(end, t0), t1) - t0
    left = min(width - 1, int(a * width / total))
    length = (b - a) * width / total
    cells = max(1, round(length))
    cells = min(cells, width - left)
    mark = "█" * cells if length >= 1 else "▏"
    return Text.assemble(" " * left, (mark, style), " " * (width - left - len(mark)))


def _guides(depth_flags: list[bool]) -> str:
    """Tree guides for a row: one entry per ancestor level, True when that level has more siblings."""
    if not depth_flags:
        return ""
    prefix = "".join("│  " if more else "   " for more in depth_flags[:-1])
    return prefix + ("├─ " if depth_flags[-1] else "└─ ")


def render_waterfall(trace_id: str, roots: Sequence[TreeNode], *, bar_width: int = BAR_WIDTH) -> Group:
    """One trace as a waterfall table: the span tree (guides, pre-order), then per span a timing
    bar on the trace's timeline, duration, model, tokens in→out, cost (USD) and status. Orphans
    appear under their ``⟨missing parent …⟩`` placeholder row."""
    spans = [s for r in roots for s in r.spans()]
    t0 = min((s.start_time_ns for s in spans), default=0)
    t1 = max((s.end_time_ns for s in spans), default=t0)
    title = Text.assemble(
        ("trace ", "dim"),
        (trace_id, "bold"),
        (f"  {len(spans)} spans, {_fmt_ms((t1 - t0) / 1e6)}", "dim"),
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("span", overflow="fold", ratio=3)
    table.add_column("timeline", no_wrap=True, width=bar_width)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("model", overflow="fold", ratio=1)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    stack: list[tuple[TreeNode, list[bool]]] = [
        (r, [i < len(roots) - 1] if len(roots) > 1 else []) for i, r in reversed(list(enumerate(roots)))
    ]
    while stack:
        node, flags = stack.pop()
        kids = node.children
        stack.extend((c, [*flags, i < len(kids) - 1]) for i, c in reversed(list(enumerate(kids))))
        guide = _guides(flags)
        span = node.span
        if span is None:
            table.add_row(
                Text.assemble(guide, (f"⟨{node.placeholder_reason}: {node.parent_span_id}⟩", "dim italic")),
                "", "", "", "", "", "",
            )  # fmt: skip
            continue
        is_llm = span.operation is not None
        name = Text.assemble(guide, (span.name or "(unnamed)", "bold red" if span.is_error else "bold"))
        status = Text("ERROR", style="bold red") if span.is_error else Text(span.status_code, style="dim")
        if span.is_error and span.status_message:
            status.append(f" {span.status_message}", style="red")
        cost = span_cost(span)
        table.add_row(
            name,
            _bar(span.start_time_ns, span.end_time_ns, t0, t1, bar_width, "magenta" if is_llm else "cyan"),
            _fmt_ms(span.duration_ms),
            Text(span.model or "", style="magenta") if is_llm else "",
            _tokens(span) or "",
            format_usd(cost) or "",
            status,
        )
    return Group(title, table)


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
        "cost_usd": span_cost(span),
        "session_id": span.session_id,
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


def traces_to_json(forests: Sequence[tuple[str, Sequence[TreeNode]]]) -> dict[str, Any]:
    """Several traces (a session, a file): ``{"trace_count", "span_count", "traces": [
    {"trace_id", "span_count", "roots"}, …]}`` in start order."""
    traces = [trace_to_json(tid, roots) for tid, roots in forests]
    return {
        "trace_count": len(traces),
        "span_count": sum(t["span_count"] for t in traces),
        "traces": traces,
    }


def plan_to_json(plan: ReplayPlan, base_url: str | None = None) -> dict[str, Any]:
    """``spanreel replay --dry-run --json``: what would be sent, in which order, and why.

    ``{"mode", "label", "session_id", "trace_ids", "edits", "base_url", "warnings", "calls":
    [{"index", "name", "path", "trace_id", "span_id", "replayable", "skip_reason",
    "rebuilt_from", "body_modified" ([str]: what spanreel changed in the recorded body at record
    time, e.g. "blob placeholders", or for a request rebuilt from a peer's recording what it
    lacks because the peer did not record it, e.g. "tool definitions"; empty when it is what the
    app sent), "method", "url" (after
    --base-url and the edits), "model" (after the edits), "edited", "edit_error", "wave",
    "depends_on": [{"call", "message_index", "choice"}]}]}``.
    Calls of the same ``wave`` are independent of each other. URLs are shown without credentials
    (user-info, key/token query parameters).

    The edits are applied to each edited call's recorded body, as the replay would (the hook
    runs), and nothing is sent: ``edit_error`` is why an edit does not fit the body (the replay
    of that call would fail), else ``None``; in cascade mode the bodies are the recorded ones
    (the new outputs are not known yet). ``warnings``: edits that change no call
    (:meth:`ReplayPlan.edit_warnings`), then calls not replayed verbatim
    (:meth:`ReplayPlan.warnings`).
    """
    wave = waves(plan.calls, plan.dependencies)
    calls: list[dict[str, Any]] = []
    for call in plan.calls:
        req = call.request
        url: str | None = None
        if req is not None:
            try:
                url = rewrite_url(req.url, base_url)
            except ValueError:
                url = req.url
        model = req.json_body.get("model") if req is not None and isinstance(req.json_body, dict) else None
        edits = plan.edits_for(call) if req is not None else None
        edit_error: str | None = None
        if req is not None and edits is not None and not edits.empty:
            try:
                edited = json.loads(apply_edits(req, edits, call.span.provider))
            except (EditError, ValueError, TypeError) as exc:
                edit_error = str(exc) if isinstance(exc, EditError) else f"{type(exc).__name__}: {exc}"
            else:
                model = edited.get("model") if isinstance(edited, dict) else None
                if edits.model is not None and url is not None and model_in_path(url):
                    url, model = url_with_model(url, edits.model), edits.model
        calls.append(
            {
                "index": call.index,
                "name": call.span.name,
                "path": call.path,
                "trace_id": call.span.trace_id,
                "span_id": call.span.span_id,
                "replayable": call.replayable,
                "skip_reason": call.skip_reason,
                "rebuilt_from": req.rebuilt_from if req else None,
                "body_modified": list(req.modifications) if req else [],
                "method": req.method if req else None,
                "url": sanitize_url(url) if url is not None else None,
                "model": model if isinstance(model, str) else call.span.request_model,
                "edited": plan.edited(call) if call.replayable else False,
                "edit_error": edit_error,
                "wave": wave[call.index] if call.replayable else None,
                "depends_on": [
                    {"call": d.source, "message_index": d.message_index, "choice": d.choice}
                    for d in plan.dependencies.get(call.index, ())
                ],
            }
        )
    return {
        "mode": plan.mode,
        "label": plan.label,
        "session_id": plan.session_id,
        "trace_ids": list(plan.trace_ids),
        "edits": plan.edits.describe(),
        "base_url": sanitize_url(base_url) if base_url is not None else None,
        "warnings": [*plan.edit_warnings(), *plan.warnings()],
        "calls": calls,
    }


def render_plan(plan: ReplayPlan, base_url: str | None = None, data: dict[str, Any] | None = None) -> Group:
    """The replay plan as a table: each call, where it would go, what it waits for (cascade).
    ``data``: :func:`plan_to_json`'s answer when already computed (it runs the edits' hook)."""
    data = plan_to_json(plan, base_url) if data is None else data
    n = sum(1 for c in data["calls"] if c["replayable"])
    title = Text.assemble(
        ("dry run: ", "bold"),
        f"{plan.label} ({plan.mode}), {n} of {len(data['calls'])} calls would be sent; nothing was sent",
    )
    table = Table(show_header=True, header_style="bold", show_lines=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("call (session path)", overflow="fold", ratio=2)
    table.add_column("model", overflow="fold")
    table.add_column("sent to", overflow="fold", ratio=2)
    table.add_column("waits for", no_wrap=True)
    table.add_column("wave", justify="right", no_wrap=True)
    table.add_column("edited", overflow="fold")
    for c in data["calls"]:
        if not c["replayable"]:
            table.add_row(
                str(c["index"]), c["path"], c["model"] or "",
                Text(f"skipped: {c['skip_reason']}", style="yellow"), "", "", "",
            )  # fmt: skip
            continue
        waits = ", ".join(f"{d['call']} (msg {d['message_index']})" for d in c["depends_on"]) or "—"
        target = Text(f"{c['method']} {c['url']}")
        if c["rebuilt_from"]:
            target.append(f"\nrebuilt from {c['rebuilt_from']}", style="dim")
        if c["body_modified"]:
            what = "rebuilt without (not recorded)" if c["rebuilt_from"] else "body modified at record time"
            target.append(f"\n{what}: {'; '.join(c['body_modified'])}", style="yellow")
        edited = Text("yes" if c["edited"] else "")
        if c["edit_error"]:
            edited = Text(f"edit failed: {c['edit_error']}", style="red")
        table.add_row(
            str(c["index"]), c["path"], c["model"] or "", target, waits, str(c["wave"]), edited,
        )  # fmt: skip
    notes = [Text(f"warning: {w}", style="yellow") for w in data["warnings"]]
    return Group(title, table, *notes)
