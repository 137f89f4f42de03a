"""Replay planning (pure): which spans are LLM calls, can each be re-sent, and what exactly to send.

An LLM call is replayable when its request is known: spanreel's instrumentation recorded the
wire request — ``spanreel.request.body`` (the exact JSON text sent) and ``spanreel.request.url``
(docs/internals.md §1) — or, for spans of other instrumentations, an equivalent request can be
rebuilt from the recorded messages, model and parameters (:mod:`spanreel.replay._peer`;
``RecordedRequest.rebuilt_from`` says from what). Other GenAI inference spans are listed as not
replayable, with the reason. GenAI *wrapper* spans (the ``anthropic`` SDK's own call span, a
peer instrumentation's span around spanreel's) whose replayable request is on a descendant span
are left out: the descendant is the call. A body spanreel changed at record time
(``spanreel.request.body_modified``: blob placeholders, masked credentials, redaction) is still
replayable, sent as recorded; ``RecordedRequest.modifications`` says what was changed, for the
report's note. Likewise a request rebuilt without something the peer did not record (tool
definitions, :attr:`spanreel.replay._peer.RebuiltRequest.gaps`) is sent with a note naming it.
Each call also gets its tree path (span names from the trace root, joined by ``/``), which
``--only`` matches.

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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues,
)
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT

from spanreel._attributes import (
    MODEL_CALL_OPERATIONS,
    SPANREEL_CONTENT_TRUNCATED,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_BODY_MODIFIED,
    SPANREEL_REQUEST_METHOD,
    SPANREEL_REQUEST_URL,
)
from spanreel.instrumentation._content import MAX_BYTES_ENV
from spanreel.instrumentation._http import CREDENTIAL_MASK

from ._edits import EditError, ReplayEdits, edit_body, model_in_path
from ._load import SpanRecord
from ._peer import rebuild_request
from ._tree import TreeNode

__all__ = [
    "CAPTURE_OFF_REASON",
    "INFERENCE_OPERATIONS",
    "TRUNCATED_REASON",
    "EditError",
    "PlannedCall",
    "RecordedRequest",
    "ReplayEdits",
    "apply_edits",
    "body_modifications",
    "encode_body",
    "plan_calls",
    "rewrite_url",
    "truncated_attributes",
]

#: GenAI operations that are one model request (agent/tool/workflow spans are not).
INFERENCE_OPERATIONS: frozenset[str] = MODEL_CALL_OPERATIONS

#: Environment variable that controls content capture in GenAI instrumentations.
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Reason given for spanreel-recorded LLM spans without a request body.
CAPTURE_OFF_REASON = (
    f"content capture was off when recorded ({CAPTURE_ENV}): the request body "
    f"({SPANREEL_REQUEST_BODY}) was not stored"
)
#: Reason given for a request body cut at record time (``SPANREEL_CAPTURE_MAX_BYTES``).
TRUNCATED_REASON = (
    f"the recorded request body ({SPANREEL_REQUEST_BODY}) was truncated at record time "
    f"({SPANREEL_CONTENT_TRUNCATED}): record again with a larger {MAX_BYTES_ENV} (0: no cap)"
)
ANTHROPIC = GenAiProviderNameValues.ANTHROPIC.value
#: Instrumentation scope of spanreel's own LLM spans.
SPANREEL_SCOPE = "spanreel"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """The wire request recorded on a span: HTTP ``method``, full ``url`` (credential query
    parameters already removed at record time), the exact ``body`` text, and ``json_body`` (the
    parsed body). ``rebuilt_from`` names the peer attributes the request was rebuilt from
    (:mod:`spanreel.replay._peer`); ``None`` for spanreel's exact recording."""

    method: str
    url: str
    body: str
    json_body: Any
    rebuilt_from: str | None = None
    #: how spanreel changed the body at record time (``spanreel.request.body_modified``), e.g.
    #: ``("blob placeholders", "credentials masked")``; for a rebuilt request, what it lacks
    #: because the peer did not record it (``("tool definitions",)``); empty when the body is
    #: what was sent
    modifications: tuple[str, ...] = ()

    @property
    def modified(self) -> bool:
        """Whether the body is not what the app sent (a verbatim replay is not verbatim)."""
        return bool(self.modifications)

    def modified_note(self, hooked: bool = False) -> str | None:
        """One line for the report saying the body was changed at record time (or rebuilt
        without something) and what that means (``hooked``: a ``--hook`` got the body); ``None``
        for an unmodified body."""
        if not self.modifications:
            return None
        what = "; ".join(self.modifications)
        if self.rebuilt_from:
            then = (
                "the --hook got the rebuilt body"
                if hooked
                else "it is not the request the app sent, so the output may differ "
                "(a --hook can add what is missing)"
            )
            return f"the request was rebuilt without what the instrumentation did not record ({what}): {then}"
        then = (
            "the --hook got the body as recorded"
            if hooked
            else "it was sent as recorded, not as the app sent it, so the output may differ "
            "(a --hook can restore the body)"
        )
        return f"the recorded request body was modified at record time ({what}): {then}"


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One LLM call of the original trace(s), in start-time order (``index`` from 1).

    Exactly one of ``request`` (replayable) and ``skip_reason`` (not replayable) is set.
    ``path``: the session path — span names from the trace root down to the call, joined by
    ``/`` (what ``--only`` matches besides the name).
    """

    index: int
    span: SpanRecord
    request: RecordedRequest | None
    skip_reason: str | None
    path: str = ""
    #: the call's first attempt's start (ns since the epoch) when the app's client retried it:
    #: ``span`` is then the last attempt (what the app got), and the call took from here to its end
    started_ns: int | None = None
    #: how many attempts the recording holds (the client's retries: ``http.request.resend_count``)
    attempts: int = 1

    @property
    def replayable(self) -> bool:
        return self.request is not None


def truncated_attributes(attributes: Mapping[str, Any]) -> frozenset[str]:
    """The attributes spanreel cut at record time (``spanreel.content.truncated``: a list of
    attribute names); empty when none was."""
    value = attributes.get(SPANREEL_CONTENT_TRUNCATED)
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset()


def _is_llm_span(span: SpanRecord) -> bool:
    return SPANREEL_REQUEST_BODY in span.attributes or (span.operation or "") in INFERENCE_OPERATIONS


def _plan_one(span: SpanRecord) -> tuple[RecordedRequest | None, str | None]:
    attrs = span.attributes
    body = attrs.get(SPANREEL_REQUEST_BODY)
    if body is None:
        if span.scope_name in (None, SPANREEL_SCOPE):
            return None, CAPTURE_OFF_REASON
        rebuilt = rebuild_request(attrs, span.provider, span.request_model, span.operation)
        if isinstance(rebuilt, str):
            return None, f"recorded by {span.scope_name!r}: {rebuilt}"
        text = json.dumps(rebuilt.body, ensure_ascii=False, separators=(",", ":"))
        return RecordedRequest("POST", rebuilt.url, text, rebuilt.body, rebuilt.source, rebuilt.gaps), None
    url = attrs.get(SPANREEL_REQUEST_URL)
    if not isinstance(url, str) or not urlsplit(url).netloc:
        return None, f"no usable request URL recorded ({SPANREEL_REQUEST_URL})"
    if not isinstance(body, str):
        return None, f"{SPANREEL_REQUEST_BODY} is not a string"
    if SPANREEL_REQUEST_BODY in truncated_attributes(attrs):
        return None, TRUNCATED_REASON
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, f"the recorded request body ({SPANREEL_REQUEST_BODY}) is not JSON"
    method = str(attrs.get(SPANREEL_REQUEST_METHOD) or "POST").upper()
    modifications = body_modifications(body) if attrs.get(SPANREEL_REQUEST_BODY_MODIFIED) is True else ()
    return RecordedRequest(method, url, body, parsed, modifications=modifications), None


_BLOB = re.compile(r"\[spanreel: [^\]]*omitted, \d+ bytes\]")
_REDACTED = re.compile(r"\[REDACTED:([^\]]+)\]")


def body_modifications(body: str) -> tuple[str, ...]:
    """What spanreel changed in a recorded body marked ``spanreel.request.body_modified``, from
    the markers it left: ``"blob placeholders"`` (``[spanreel: image/png base64 omitted, N
    bytes]``), ``"credentials masked"`` (``[REDACTED:credential]``), ``"redacted: email, …"``
    (``SPANREEL_REDACT`` patterns); ``("redaction",)`` when no marker is found (a redaction hook's
    own replacement). Never empty."""
    found: list[str] = []
    if _BLOB.search(body):
        found.append("blob placeholders")
    names = sorted(set(_REDACTED.findall(body)))
    if CREDENTIAL_MASK in body:
        found.append(f"credentials masked as {CREDENTIAL_MASK}")
    others = [n for n in names if n != "credential"]
    if others:
        found.append("redacted: " + ", ".join(others))
    return tuple(found) or ("redaction",)


def plan_calls(roots: Sequence[TreeNode]) -> list[PlannedCall]:
    """The LLM calls under ``roots`` in start-time order, each replayable or with a skip reason.

    ``roots``: the forest from :func:`spanreel.replay.build_tree` (one trace, or the roots of
    several traces of a session in order). Calls are ordered by start time, then span id. The
    attempts of a call the app's client retried (spans with ``http.request.resend_count`` ≥ 1
    sending the same request under the same parent) are one call: its last attempt is ``span``.
    """
    planned: list[tuple[SpanRecord, RecordedRequest | None, str | None, str]] = []
    for root in roots:
        stack: list[tuple[TreeNode, str]] = [(root, "")]
        while stack:
            node, prefix = stack.pop()
            span = node.span
            name = span.name if span is not None else f"<{node.placeholder_reason}>"
            path = f"{prefix}/{name}" if prefix else name
            stack.extend((child, path) for child in reversed(node.children))
            if span is None or not _is_llm_span(span):
                continue
            request, reason = _plan_one(span)
            if (request is None or request.rebuilt_from) and _has_replayable_descendant(node):
                continue  # a wrapper (an SDK's or a peer instrumentation's span) around the call
            planned.append((span, request, reason, path))
    planned.sort(key=lambda p: (p[0].start_time_ns, p[0].span_id))
    calls: list[PlannedCall] = []
    latest: dict[tuple[str | None, str, str], int] = {}  # (parent, url, body) → index in calls
    for span, request, reason, path in planned:
        key = (span.parent_span_id, request.url, request.body) if request is not None else None
        earlier = latest.get(key) if key is not None and _resend_count(span) else None
        if earlier is not None:
            # A retry by the app's client (the SDK sends the same request again): one call,
            # replayed once and compared with the answer the app got, its last attempt.
            first = calls[earlier]
            calls[earlier] = PlannedCall(
                first.index,
                span,
                request,
                reason,
                first.path,
                first.started_ns or first.span.start_time_ns,
                first.attempts + 1,
            )
            continue
        if key is not None:
            latest[key] = len(calls)
        calls.append(PlannedCall(len(calls) + 1, span, request, reason, path))
    return calls


def _resend_count(span: SpanRecord) -> int:
    """The span's ``http.request.resend_count`` (0 for a first attempt or when not recorded)."""
    value = span.attributes.get(HTTP_REQUEST_RESEND_COUNT)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _has_replayable_descendant(node: TreeNode) -> bool:
    it = node.walk()
    next(it)  # the node itself
    return any(n.span is not None and _is_llm_span(n.span) and _plan_one(n.span)[0] is not None for n in it)


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


def apply_edits(request: RecordedRequest, edits: ReplayEdits, provider: str | None = None) -> bytes:
    """The body bytes to send: the recorded text verbatim when there are no edits, else the
    edited JSON (UTF-8, compact separators; :func:`spanreel.replay._edits.edit_body`). Raises
    :class:`EditError` when an edit does not fit the body (not a JSON object, no place for a
    system prompt, a failing hook). ``provider``: the recorded ``gen_ai.provider.name``. A
    ``model`` edit of a request whose URL names the model is not in the body (it goes in the URL:
    :func:`spanreel.replay._edits.url_with_model`)."""
    if edits.empty:
        return request.body.encode("utf-8")
    if not isinstance(request.json_body, dict):
        raise EditError("cannot edit the request: the recorded body is not a JSON object")
    body: dict[str, Any] = json.loads(request.body)  # a fresh copy to mutate
    return encode_body(edit_body(body, edits, provider, model_in_path=model_in_path(request.url)))


def encode_body(body: Any) -> bytes:
    """A request body as sent after changes: UTF-8 JSON, compact separators."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
