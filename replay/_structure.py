"""Re-create the original trees' shape in the replay trace (thread-safe; used by the executor).

Every original span that is not a replayed LLM call — the app's own spans, SDK wrapper spans,
calls that were skipped — is re-created as a *structure span*: same name and kind, parent = the
re-created parent, a span link to the original span and ``spanreel.replay.original_trace_id`` /
``original_span_id`` attributes. Descendants of a replayed call (its HTTP span, …) are not
re-created: the replayed request makes its own. Roots of each original trace (and spans whose
parent was never recorded) hang under the replay's root span.

Timing: a structure span starts when the first replayed call below it starts and ends when the
last one has finished, so the replay's waterfall shows real replay time. Subtrees without any
replayed call are created, with zero duration, when their parent starts (trace roots: when the
replay starts).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, TraceFlags, Tracer

from spanreel._attributes import SPANREEL_REPLAY_ORIGINAL_SPAN_ID, SPANREEL_REPLAY_ORIGINAL_TRACE_ID

from ._load import SpanRecord
from ._tree import TreeNode

__all__ = ["StructureBuilder", "original_link"]


def original_link(span: SpanRecord) -> Link:
    """A span link to an original span, with the original ids as link attributes."""
    ctx = SpanContext(
        trace_id=int(span.trace_id, 16),
        span_id=int(span.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return Link(
        ctx,
        {SPANREEL_REPLAY_ORIGINAL_TRACE_ID: span.trace_id, SPANREEL_REPLAY_ORIGINAL_SPAN_ID: span.span_id},
    )


def _kind(name: str) -> SpanKind:
    try:
        return SpanKind[name]
    except KeyError:
        return SpanKind.INTERNAL


class StructureBuilder:
    """Lazily re-creates structure spans under ``root`` (see the module docstring).

    ``forests``: the roots of each original trace. ``replayed``: ``(trace id, span id)`` of the
    calls that will be replayed (their subtrees are not re-created). Call :meth:`begin` first,
    :meth:`enter` before replaying a call (returns the span to parent it under), :meth:`leave`
    after, and :meth:`finish` at the end.
    """

    def __init__(
        self,
        tracer: Tracer,
        root: Span,
        forests: Sequence[Sequence[TreeNode]],
        replayed: frozenset[tuple[str, str]],
    ) -> None:
        self._tracer = tracer
        self._root = root
        self._lock = threading.Lock()
        self._parent: dict[int, TreeNode | None] = {}
        self._nodes: dict[tuple[str, str], TreeNode] = {}
        self._remaining: dict[int, int] = {}
        self._started: dict[int, Span] = {}
        self._ended: set[int] = set()
        self._children: dict[int, list[TreeNode]] = {}
        self._top: list[TreeNode] = []
        for roots in forests:
            for root_node in roots:
                # placeholder roots are not re-created: their children hang under the replay root
                tops = root_node.children if root_node.is_placeholder else [root_node]
                for top in tops:
                    self._top.append(top)
                    self._index(top, None, replayed)

    def _index(self, top: TreeNode, parent: TreeNode | None, replayed: frozenset[tuple[str, str]]) -> None:
        stack: list[tuple[TreeNode, TreeNode | None]] = [(top, parent)]
        order: list[TreeNode] = []
        while stack:
            node, up = stack.pop()
            assert node.span is not None
            self._parent[id(node)] = up
            key = (node.span.trace_id, node.span.span_id)
            self._nodes[key] = node
            order.append(node)
            if key in replayed:
                self._remaining[id(node)] = 1
                continue
            kids = [c for c in node.children if c.span is not None]
            self._children[id(node)] = kids
            stack.extend((c, node) for c in reversed(kids))
        for node in reversed(order):  # children before parents: sum the replayed calls below
            if id(node) not in self._remaining:
                self._remaining[id(node)] = sum(self._remaining[id(c)] for c in self._children[id(node)])

    def _start(self, node: TreeNode) -> Span:
        existing = self._started.get(id(node))
        if existing is not None:
            return existing
        up = self._parent[id(node)]
        parent_span = self._start(up) if up is not None else self._root
        span_record = node.span
        assert span_record is not None
        span = self._tracer.start_span(
            span_record.name,
            context=trace.set_span_in_context(parent_span),
            kind=_kind(span_record.kind),
            links=[original_link(span_record)],
            attributes={
                SPANREEL_REPLAY_ORIGINAL_TRACE_ID: span_record.trace_id,
                SPANREEL_REPLAY_ORIGINAL_SPAN_ID: span_record.span_id,
            },
        )
        self._started[id(node)] = span
        for child in self._children.get(id(node), ()):
            if self._remaining[id(child)] == 0:
                self._start(child)
                self._end(child)
        return span

    def _end(self, node: TreeNode) -> None:
        span = self._started.get(id(node))
        if span is not None and id(node) not in self._ended:
            for child in self._children.get(id(node), ()):
                self._end(child)
            self._ended.add(id(node))
            span.end()

    def begin(self) -> None:
        """Create the subtrees of trace roots that hold no replayed call."""
        with self._lock:
            for top in self._top:
                if self._remaining[id(top)] == 0:
                    self._start(top)
                    self._end(top)

    def enter(self, call: SpanRecord) -> Span:
        """Start the re-created ancestors of the replayed ``call``; return its parent span."""
        with self._lock:
            up = self._parent.get(id(self._nodes[call.trace_id, call.span_id]))
            return self._start(up) if up is not None else self._root

    def leave(self, call: SpanRecord) -> None:
        """The replayed ``call`` finished: end the re-created ancestors with nothing left below."""
        with self._lock:
            up = self._parent.get(id(self._nodes[call.trace_id, call.span_id]))
            while up is not None:
                self._remaining[id(up)] -= 1
                if self._remaining[id(up)] == 0:
                    self._end(up)
                up = self._parent[id(up)]

    def finish(self) -> None:
        """End every structure span still open (e.g. after an interrupted replay)."""
        with self._lock:
            for top in self._top:
                self._end(top)

    @property
    def spans(self) -> Mapping[int, Span]:
        return self._started
