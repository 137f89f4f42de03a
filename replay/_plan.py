"""Replay planning (pure): which spans are LLM calls, can each be re-sent, and what exactly to send.

An LLM call is replayable when spanreel's instrumentation recorded the wire request: the span
carries ``spanreel.request.body`` (the exact JSON text sent) and ``spanreel.request.url``
(docs/internals.md §1). GenAI inference spans without them are listed as not replayable, with the
reason. GenAI *wrapper* spans (e.g. the ``anthropic`` SDK's own call span) whose replayable
request is recorded on a descendant span are left out: the descendant is the call.

URL rule (:func:`rewrite_url`) — with ``--base-url`` the recorded URL's origin (scheme, host,
port) is replaced by the base URL's; the base URL's path is a *mount prefix*: the recorded path
is appended to it, except that path segments the two share at the seam are not repeated (the
longest run of trailing base-path segments that the recorded path starts with). The query
string is kept as recorded. Examples::

    https://api.openai.com/v1/chat/completions + http://127.0.0.1:8000/v1       -> http://127.0.0.1:8000/v1/chat/completions
    https://api.openai.com/v1/chat/completions + http://127.0.0.1:8000          -> http://127.0.0.1:8000/v1/chat/completions
    https://api.openai.com/v1/chat/completions + http://gw.local/openai/v1      -> http://gw.local/openai/v1/chat/completions
    https://api.openai.com/v1/chat/completions + http://gw.local/openai         -> http://gw.local/openai/v1/chat/completions
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_METHOD, SPANREEL_REQUEST_URL

from ._load import SpanRecord
from ._tree import TreeNode

__all__ = [
    "CAPTURE_OFF_REASON",
    "INFERENCE_OPERATIONS",
    "EditError",
    "PlannedCall",
    "RecordedRequest",
    "ReplayEdits",
    "apply_edits",
    "plan_calls",
    "rewrite_url",
]

#: GenAI operations that are one model request (agent/tool/workflow spans are not).
INFERENCE_OPERATIONS: frozenset[str] = frozenset(
    {
        GenAiOperationNameValues.CHAT.value,
        GenAiOperationNameValues.TEXT_COMPLETION.value,
        GenAiOperationNameValues.GENERATE_CONTENT.value,
        GenAiOperationNameValues.EMBEDDINGS.value,
    }
)

#: Environment variable that controls content capture in GenAI instrumentations.
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Reason given for spanreel-recorded LLM spans without a request body.
CAPTURE_OFF_REASON = (
    f"content capture was off when recorded ({CAPTURE_ENV}): the request body "
    f"({SPANREEL_REQUEST_BODY}) was not stored"
)
ANTHROPIC = GenAiProviderNameValues.ANTHROPIC.value
#: Instrumentation scope of spanreel's own LLM spans.
SPANREEL_SCOPE = "spanreel"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """The wire request recorded on a span: HTTP ``method``, full ``url`` (credential query
    parameters already removed at record time), the exact ``body`` text, and ``json_body`` (the
    parsed body)."""

    method: str
    url: str
    body: str
    json_body: Any


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One LLM call of the original trace, in start-time order (``index`` from 1).

    Exactly one of ``request`` (replayable) and ``skip_reason`` (not replayable) is set.
    """

    index: int
    span: SpanRecord
    request: RecordedRequest | None
    skip_reason: str | None

    @property
    def replayable(self) -> bool:
        return self.request is not None


@dataclass(frozen=True, slots=True)
class ReplayEdits:
    """Edits applied to every replayed request body.

    ``model``: replaces the body's top-level ``"model"``. ``system``: the new system prompt —
    replaces the content of the first ``system``/``developer`` message of a chat ``messages``
    list (or inserts a system message first), or sets Anthropic's top-level ``system`` /
    the Responses API's ``instructions`` when the body uses those shapes.
    """

    model: str | None = None
    system: str | None = None

    @property
    def empty(self) -> bool:
        return self.model is None and self.system is None


def _is_llm_span(span: SpanRecord) -> bool:
    return SPANREEL_REQUEST_BODY in span.attributes or (span.operation or "") in INFERENCE_OPERATIONS


def _plan_one(span: SpanRecord) -> tuple[RecordedRequest | None, str | None]:
    attrs = span.attributes
    body = attrs.get(SPANREEL_REQUEST_BODY)
    if body is None:
        if span.scope_name in (None, SPANREEL_SCOPE):
            return None, CAPTURE_OFF_REASON
        return None, (
            f"recorded by {span.scope_name!r}, which does not store the wire request "
            f"({SPANREEL_REQUEST_BODY}); record with spanreel's instrumentation to replay"
        )
    url = attrs.get(SPANREEL_REQUEST_URL)
    if not isinstance(url, str) or not urlsplit(url).netloc:
        return None, f"no usable request URL recorded ({SPANREEL_REQUEST_URL})"
    if not isinstance(body, str):
        return None, f"{SPANREEL_REQUEST_BODY} is not a string"
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, f"the recorded request body ({SPANREEL_REQUEST_BODY}) is not JSON"
    method = str(attrs.get(SPANREEL_REQUEST_METHOD) or "POST").upper()
    return RecordedRequest(method=method, url=url, body=body, json_body=parsed), None


def plan_calls(roots: Sequence[TreeNode]) -> list[PlannedCall]:
    """The trace's LLM calls in start-time order, each replayable or with a skip reason.

    ``roots``: the forest from :func:`spanreel.replay.build_tree`.
    """
    planned: list[tuple[SpanRecord, RecordedRequest | None, str | None]] = []
    for root in roots:
        for node in root.walk():
            span = node.span
            if span is None or not _is_llm_span(span):
                continue
            request, reason = _plan_one(span)
            if request is None and _has_replayable_descendant(node):
                continue  # a wrapper around the recorded call
            planned.append((span, request, reason))
    planned.sort(key=lambda p: (p[0].start_time_ns, p[0].span_id))
    return [PlannedCall(i, s, r, why) for i, (s, r, why) in enumerate(planned, start=1)]


def _has_replayable_descendant(node: TreeNode) -> bool:
    it = node.walk()
    next(it)  # the node itself
    return any(n.span is not None and SPANREEL_REQUEST_BODY in n.span.attributes for n in it)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def rewrite_url(recorded_url: str, base_url: str | None) -> str:
    """Where to send a recorded request (rule and examples in the module docstring).

    ``base_url`` ``None`` returns ``recorded_url`` unchanged. Raises :class:`ValueError` when
    ``base_url`` is not an absolute http(s) URL.
    """
    if not base_url:
        return recorded_url
    base = urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError(f"base URL must be an absolute http(s) URL, got {base_url!r}")
    rec = urlsplit(recorded_url)
    base_segs = _segments(base.path)
    rec_segs = _segments(rec.path)
    overlap = 0
    for k in range(min(len(base_segs), len(rec_segs)), 0, -1):
        if base_segs[-k:] == rec_segs[:k]:
            overlap = k
            break
    segs = base_segs + rec_segs[overlap:]
    path = "/" + "/".join(segs)
    if rec.path.endswith("/") and segs:
        path += "/"
    return urlunsplit((base.scheme, base.netloc, path, rec.query, ""))


class EditError(ValueError):
    """An edit cannot be applied to a recorded request body (unknown body shape)."""


def _set_system(body: dict[str, Any], text: str, provider: str | None) -> None:
    if "system" in body or (
        provider == ANTHROPIC and "messages" in body
    ):  # Anthropic Messages API: the system prompt is top-level
        body["system"] = text
        return
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
                messages[i] = {**message, "content": text}
                return
        if _looks_anthropic(body):  # Anthropic body recorded without a provider name
            body["system"] = text
        else:
            messages.insert(0, {"role": "system", "content": text})
        return
    if "input" in body or "instructions" in body:  # OpenAI Responses API
        body["instructions"] = text
        return
    if "contents" in body:  # Gemini generateContent
        body["systemInstruction"] = {"parts": [{"text": text}]}
        return
    raise EditError("cannot apply the system-prompt edit: the request body has no messages/input/contents")


def _looks_anthropic(body: Mapping[str, Any]) -> bool:
    model = body.get("model")
    return isinstance(model, str) and model.startswith("claude")


def apply_edits(request: RecordedRequest, edits: ReplayEdits, provider: str | None = None) -> bytes:
    """The body bytes to send: the recorded text verbatim when there are no edits, else the
    edited JSON (UTF-8, compact separators). Raises :class:`EditError` when an edit does not fit
    the body (not a JSON object, or no place for a system prompt). ``provider``: the recorded
    ``gen_ai.provider.name`` (picks Anthropic's top-level ``system``)."""
    if edits.empty:
        return request.body.encode("utf-8")
    if not isinstance(request.json_body, dict):
        raise EditError("cannot edit the request: the recorded body is not a JSON object")
    body: dict[str, Any] = json.loads(request.body)  # a fresh copy to mutate
    if edits.model is not None:
        body["model"] = edits.model
    if edits.system is not None:
        _set_system(body, edits.system, provider)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
