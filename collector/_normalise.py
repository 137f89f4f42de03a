"""Derive the typed GenAI columns of a span row from its attributes (pure).

The columns (docs/internals.md §2): ``operation``, ``provider``, ``request_model``,
``response_model``, ``input_tokens``, ``output_tokens``, ``finish_reasons``, ``session_id``,
``conversation_id``. Original attributes are never modified or dropped.

Spans from other GenAI instrumentations fill the same columns
(``shared/reference/peer-conventions.md``; names in :mod:`spanreel.collector._peers`):
OpenTelemetry GenAI semantic conventions v1.41 and their deprecated names (``gen_ai.system``,
``gen_ai.usage.prompt_tokens`` …), OpenInference, OpenLLMetry (≤ 0.54 indexed
``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*`` and ``llm.request.type``; newer ones use
the OTel names), OpenLIT, MLflow, whose JSON-encoded values are decoded first, and the
``anthropic`` SDK's own call span (OTel names, its stop reason as ``anthropic.message.stop_reason``).

Each column has an ordered lookup table (:data:`LOOKUP_TABLES`); the first source that is present
and converts to a usable value wins. The order follows Langfuse's ``OtelIngestionProcessor``
where it applies: the OTel names first, then the deprecated OTel names, then the peers'.

Two more pure derivations are exposed for columns the schema does not have yet:
:func:`normalise_messages` (the conversation as OTel ``gen_ai.input.messages`` /
``gen_ai.output.messages`` JSON, whatever the instrumentation) and :func:`normalise_cost`
(the call's cost in USD, where the instrumentation records one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID

from spanreel._attributes import MODEL_CALL_OPERATIONS, SPANREEL_COST_USD
from spanreel.collector import _peers as peers
from spanreel.instrumentation._anthropic import messages_request, messages_response
from spanreel.instrumentation._common import Parsed, RequestParts
from spanreel.instrumentation._content import ContentPolicy
from spanreel.instrumentation._openai import chat_request, choices_response, content_parts
from spanreel.instrumentation._openai_misc import completions_request
from spanreel.instrumentation._openai_responses import responses_request, responses_response

__all__ = [
    "GENAI_COLUMNS",
    "LOOKUP_TABLES",
    "PEER_KEYS",
    "Derived",
    "Source",
    "attribute_view",
    "normalise_cost",
    "normalise_messages",
    "normalise_row",
]

Converter = Callable[[Any], Any]
Attributes = Mapping[str, Any]


def as_text(value: Any) -> str | None:
    """A non-empty string, else ``None`` (numbers are not silently turned into names)."""
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return None


#: The largest token count taken as one: 2**32 - 1 (4.3 billion tokens, far beyond any model's
#: context). Larger values, though valid OTLP int64s, are no call's usage; bounding them keeps the
#: per-trace sums in BIGINT for up to 2**31 calls (one trace's spans claiming 2**63 - 1 each used
#: to overflow them and fail the whole request).
MAX_TOKEN_COUNT: Final = 2**32 - 1


def as_count(value: Any) -> int | None:
    """A token count, 0 ≤ n ≤ :data:`MAX_TOKEN_COUNT`, from an int, an integral float or a decimal
    string, else ``None`` (the span's attribute itself is stored unchanged either way)."""
    if isinstance(value, bool):
        return None
    count: int | None = None
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        count = int(value.strip())
    return count if count is not None and 0 <= count <= MAX_TOKEN_COUNT else None


def as_text_list(value: Any) -> list[str] | None:
    """A list of strings (a single string becomes a one-element list), else ``None``."""
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
        return items if items else None
    return None


def as_amount(value: Any) -> float | None:
    """A finite, non-negative number (int, float or decimal string), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


# Deprecated ``gen_ai.system`` and peer spellings → current ``gen_ai.provider.name`` values.
_SYSTEM = gen_ai.GenAiSystemValues
_PROVIDER = gen_ai.GenAiProviderNameValues
_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    _SYSTEM.AZ_AI_INFERENCE.value: _PROVIDER.AZURE_AI_INFERENCE.value,
    _SYSTEM.AZ_AI_OPENAI.value: _PROVIDER.AZURE_AI_OPENAI.value,
    _SYSTEM.GEMINI.value: _PROVIDER.GCP_GEMINI.value,
    _SYSTEM.VERTEX_AI.value: _PROVIDER.GCP_VERTEX_AI.value,
    _SYSTEM.XAI.value: _PROVIDER.X_AI.value,
    **peers.OI_PROVIDER_ALIASES,
}


def as_provider(value: Any) -> str | None:
    """A provider name, lower-cased (OpenLLMetry writes ``Anthropic``) with deprecated and peer
    aliases mapped to the OTel ``gen_ai.provider.name`` values."""
    text = as_text(value)
    if text is None:
        return None
    lowered = text.lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


def _mapped(table: Mapping[str, str]) -> Converter:
    """Look a (case-insensitive) text value up in ``table``."""
    folded = {key.casefold(): value for key, value in table.items()}

    def convert(value: Any) -> str | None:
        text = as_text(value)
        return folded.get(text.casefold()) if text else None

    return convert


def _json_field(key: str, convert: Converter) -> Converter:
    """Read ``key`` of a JSON object (already decoded, or a JSON string) and convert it."""

    def read(value: Any) -> Any:
        obj = _load_json(value) if isinstance(value, str) else value
        return convert(obj.get(key)) if isinstance(obj, dict) else None

    return read


@dataclass(frozen=True)
class Source:
    """One attribute a column's value may come from."""

    key: str
    convert: Converter
    #: look in the resource attributes instead of the span attributes
    resource: bool = False
    #: a peer convention's name (only consulted when the span has some peer attribute)
    peer: bool = False

    def read(self, attrs: Attributes, resource: Attributes) -> Any:
        value = (resource if self.resource else attrs).get(self.key)
        return None if value is None else self.convert(value)


@dataclass(frozen=True)
class Derived:
    """A value computed from several attributes (indexed peer messages, JSON payloads)."""

    name: str
    derive: Callable[[Attributes], Any]
    #: attributes one of which must be present for ``derive`` to find anything
    triggers: tuple[str, ...] = ()

    def read(self, attrs: Attributes, resource: Attributes) -> Any:
        return self.derive(attrs)


# -- helpers over the attribute view -----------------------------------------------------------


def _load_json(text: str) -> Any:
    # orjson is several times faster on the ingest path; what it refuses (NaN literals, integers
    # beyond 64 bits, deep nesting) gets the standard library's more lenient answer.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


class _MlflowAttributes(Mapping[str, Any]):
    """MLflow's attributes with every JSON-encoded value decoded on first access (originals kept).

    ``response`` memoises the span's parsed model response (:func:`_mlflow_response`), which
    several columns read."""

    __slots__ = ("_cache", "_raw", "response")

    def __init__(self, raw: Attributes) -> None:
        self._raw = raw
        self._cache: dict[str, Any] = {}
        self.response: tuple[Parsed | None] | None = None  # (parsed,) once parsed

    def __getitem__(self, key: str) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = self._raw[key]
        if isinstance(value, str):
            decoded = _load_json(value)
            value = value if decoded is None else decoded
        self._cache[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def get(self, key: str, default: Any = None) -> Any:
        # Most keys the lookups try are absent: no KeyError raised and caught for each.
        return self[key] if key in self._raw else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def attribute_view(attributes: Attributes) -> Attributes:
    """``attributes`` as the normaliser reads them: MLflow spans (recognised by
    ``mlflow.spanType``) get their JSON-encoded values decoded lazily; others are returned as is."""
    if peers.MLFLOW_SPAN_TYPE in attributes:
        return _MlflowAttributes(attributes)
    return attributes


def _indexed(attrs: Attributes, prefix: str, probes: tuple[str, ...]) -> Iterator[str]:
    """``prefix.0``, ``prefix.1`` … as long as one of ``prefix.{i}.{probe}`` is present (the
    sub-keys the peer always writes; no scan over all keys)."""
    i = 0
    while True:
        base = f"{prefix}.{i}"
        if not any(f"{base}.{probe}" in attrs for probe in probes):
            return
        yield base
        i += 1


_LLMETRY_MESSAGE_PROBES: Final = (
    peers.LLMETRY_ROLE,
    peers.LLMETRY_CONTENT,
    peers.LLMETRY_FINISH_REASON,
    peers.LLMETRY_TOOL_CALL_ID_OF_MESSAGE,
    f"{peers.LLMETRY_TOOL_CALLS}.0.{peers.LLMETRY_TOOL_CALL_NAME}",
)
_LLMETRY_TOOL_CALL_PROBES: Final = (
    peers.LLMETRY_TOOL_CALL_NAME,
    peers.LLMETRY_TOOL_CALL_ID,
    peers.LLMETRY_TOOL_CALL_ARGUMENTS,
)
_OI_MESSAGE_PROBES: Final = (
    peers.OI_MESSAGE_ROLE,
    peers.OI_MESSAGE_CONTENT,
    f"{peers.OI_MESSAGE_CONTENTS}.0.{peers.OI_MESSAGE_CONTENT_TEXT}",
    f"{peers.OI_MESSAGE_TOOL_CALLS}.0.{peers.OI_TOOL_CALL_FUNCTION_NAME}",
)
_OI_CONTENT_PROBES: Final = (peers.OI_MESSAGE_CONTENT_TEXT, peers.OI_MESSAGE_CONTENT_TYPE)
_OI_TOOL_CALL_PROBES: Final = (
    peers.OI_TOOL_CALL_FUNCTION_NAME,
    peers.OI_TOOL_CALL_ID,
    peers.OI_TOOL_CALL_FUNCTION_ARGUMENTS,
)


# -- derived columns ---------------------------------------------------------------------------

_OP = gen_ai.GenAiOperationNameValues


_llmetry_operation: Final = _mapped(peers.LLMETRY_REQUEST_TYPE_OPERATIONS)
_mlflow_operation: Final = _mapped(peers.MLFLOW_SPAN_TYPE_OPERATIONS)
_oi_kind_operation: Final = _mapped(peers.OI_KIND_OPERATIONS)


def _model_call_operation(value: Any) -> str | None:
    """A ``gen_ai.operation.name`` that is a model call (:data:`MODEL_CALL_OPERATIONS`); agent
    and tool operations (``invoke_agent``, ``execute_tool`` …) are not LLM calls: ``None``."""
    text = as_text(value)
    return text if text in MODEL_CALL_OPERATIONS else None


_OI_FIRST_PROMPT: Final = f"{peers.OI_PROMPTS}.0.{peers.OI_PROMPT_TEXT}"
_OI_FIRST_CHOICE: Final = f"{peers.OI_CHOICES}.0.{peers.OI_COMPLETION_TEXT}"


def _openinference_operation(attrs: Attributes) -> str | None:
    """LLM → chat (text_completion when the span has legacy Completions prompts —
    ``llm.prompts.{i}.prompt.text``, or an older release's ``llm.prompts`` list — and no input
    messages), EMBEDDING → embeddings; other span kinds are not model calls."""
    operation = _oi_kind_operation(attrs.get(peers.OI_SPAN_KIND))
    if (
        operation == _OP.CHAT.value
        and (_OI_FIRST_PROMPT in attrs or peers.OI_PROMPTS in attrs)
        and f"{peers.OI_INPUT_MESSAGES}.0.{peers.OI_MESSAGE_ROLE}" not in attrs
    ):
        return _OP.TEXT_COMPLETION.value
    return as_text(operation)


_LLMETRY_FIRST_FINISH_REASON: Final = f"{peers.LLMETRY_COMPLETIONS}.0.{peers.LLMETRY_FINISH_REASON}"


def _llmetry_finish_reasons(attrs: Attributes) -> list[str] | None:
    reasons: list[str] = []
    for base in _indexed(attrs, peers.LLMETRY_COMPLETIONS, (peers.LLMETRY_FINISH_REASON,)):
        reason = as_text(attrs.get(f"{base}.{peers.LLMETRY_FINISH_REASON}"))
        if reason is not None:
            reasons.append(reason)
    return reasons or None


def _is_mlflow_model_call(attrs: Attributes) -> bool:
    return isinstance(attrs, _MlflowAttributes) and (
        _mlflow_operation(attrs.get(peers.MLFLOW_SPAN_TYPE)) is not None
    )


def _mlflow_outputs(attrs: Attributes) -> dict[str, Any] | None:
    # Only model calls: a chain or agent span's outputs can be large and are not a model response.
    if not _is_mlflow_model_call(attrs):
        return None
    outputs = attrs.get(peers.MLFLOW_SPAN_OUTPUTS)
    return outputs if isinstance(outputs, dict) else None


def _mlflow_inputs(attrs: Attributes) -> dict[str, Any] | None:
    if not _is_mlflow_model_call(attrs):
        return None
    inputs = attrs.get(peers.MLFLOW_SPAN_INPUTS)
    return inputs if isinstance(inputs, dict) else None


def _mlflow_response_model(attrs: Attributes) -> str | None:
    outputs = _mlflow_outputs(attrs)
    return as_text(outputs.get("model")) if outputs else None


def _mlflow_request_model(attrs: Attributes) -> str | None:
    """The ``model`` of the call's kwargs: MLflow sets no ``mlflow.llm.model`` when the call failed."""
    inputs = _mlflow_inputs(attrs)
    return as_text(inputs.get("model")) if inputs else None


# MLflow's ``spanInputs`` / ``spanOutputs`` of a model call are the provider SDK's request and
# response, in the wire format ``mlflow.message.format`` names: read by the instrumentation's own
# mapping of that format (OpenAI unless named otherwise; which OpenAI API from their shape).
#: Inline base64 (images, audio, files) becomes a placeholder with its size, as at capture.
_BLOBS: Final = ContentPolicy(max_bytes=0)
_ANTHROPIC_FORMAT: Final = "anthropic"


def _mlflow_request_reader(
    attrs: Attributes, inputs: Mapping[str, Any]
) -> Callable[..., RequestParts] | None:
    """The mapping of the recorded kwargs: Anthropic Messages, else OpenAI Chat Completions
    (``messages``), Responses (``input``; not an embeddings call's) or legacy Completions
    (``prompt``); ``None`` for anything else."""
    if isinstance(inputs.get("messages"), list):
        return messages_request if _mlflow_format(attrs) == _ANTHROPIC_FORMAT else chat_request
    if _mlflow_format(attrs) == _ANTHROPIC_FORMAT:
        return None
    if isinstance(inputs.get("input"), str | list) and (
        _mlflow_operation(attrs.get(peers.MLFLOW_SPAN_TYPE)) != _OP.EMBEDDINGS.value
    ):
        return responses_request
    if isinstance(inputs.get("prompt"), str | list):
        return completions_request
    return None


def _mlflow_format(attrs: Attributes) -> str:
    return as_text(attrs.get(peers.MLFLOW_MESSAGE_FORMAT)) or ""


def _mlflow_response(attrs: Attributes) -> Parsed | None:
    """The recorded response read as Anthropic Messages, OpenAI Responses (``object``
    ``response``) or Chat / legacy Completions (``choices``); memoised on the attribute view."""
    memo = attrs.response if isinstance(attrs, _MlflowAttributes) else None
    if memo is not None:
        return memo[0]
    outputs = _mlflow_outputs(attrs)
    parsed: Parsed | None = None
    if outputs:
        if _mlflow_format(attrs) == _ANTHROPIC_FORMAT:
            parse: Callable[..., Parsed] = messages_response
        elif outputs.get("object") == "response":
            parse = responses_response
        else:
            parse = choices_response
        parsed = parse(_BLOBS.scrub(outputs), True)
    if isinstance(attrs, _MlflowAttributes):
        attrs.response = (parsed,)
    return parsed


def _mlflow_finish_reasons(attrs: Attributes) -> list[str] | None:
    parsed = _mlflow_response(attrs)
    reasons = parsed.attributes.get(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS) if parsed else None
    return [str(r) for r in reasons] if isinstance(reasons, list | tuple) and reasons else None


def _mlflow_usage(key: str) -> Callable[[Attributes], int | None]:
    """A token count from the recorded response's ``usage`` (MLflow records no
    ``mlflow.chat.tokenUsage`` for legacy completions)."""

    def read(attrs: Attributes) -> int | None:
        parsed = _mlflow_response(attrs)
        return as_count(parsed.attributes.get(key)) if parsed else None

    return read


_INPUT_TOKENS: Final = gen_ai.GEN_AI_USAGE_INPUT_TOKENS
_OUTPUT_TOKENS: Final = gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS

#: column name → ordered sources (first usable value wins).
LOOKUP_TABLES: Final[Mapping[str, tuple[Source | Derived, ...]]] = {
    "operation": (
        Source(gen_ai.GEN_AI_OPERATION_NAME, _model_call_operation),
        Source(peers.LLMETRY_REQUEST_TYPE, _llmetry_operation, peer=True),
        Derived("openinference.span.kind", _openinference_operation, (peers.OI_SPAN_KIND,)),
        Source(peers.MLFLOW_SPAN_TYPE, _mlflow_operation, peer=True),
    ),
    "provider": (
        Source(gen_ai.GEN_AI_PROVIDER_NAME, as_provider),
        Source(gen_ai.GEN_AI_SYSTEM, as_provider),
        Source(peers.OI_LLM_PROVIDER, as_provider, peer=True),
        Source(peers.OI_LLM_SYSTEM, as_provider, peer=True),
        Source(peers.MLFLOW_PROVIDER, as_provider, peer=True),
        Source(peers.MLFLOW_MESSAGE_FORMAT, _mapped(peers.MLFLOW_MESSAGE_FORMAT_PROVIDERS), peer=True),
    ),
    "request_model": (
        Source(gen_ai.GEN_AI_REQUEST_MODEL, as_text),
        Source(peers.OI_LLM_REQUEST_MODEL_NAME, as_text, peer=True),
        Source(peers.OI_LLM_MODEL_NAME, as_text, peer=True),
        Source(peers.OI_EMBEDDING_MODEL_NAME, as_text, peer=True),
        # A failed call has no model name (it comes from the response): the call's parameters.
        Source(peers.OI_INVOCATION_PARAMETERS, _json_field("model", as_text), peer=True),
        Source(peers.OI_EMBEDDING_INVOCATION_PARAMETERS, _json_field("model", as_text), peer=True),
        Source(peers.MLFLOW_MODEL, as_text, peer=True),
        Derived("mlflow.spanInputs.model", _mlflow_request_model, (peers.MLFLOW_SPAN_TYPE,)),
    ),
    "response_model": (
        Source(gen_ai.GEN_AI_RESPONSE_MODEL, as_text),
        Source(peers.OI_LLM_RESPONSE_MODEL_NAME, as_text, peer=True),
        # OpenInference overwrites llm.model_name (embedding.model_name for embeddings) with the
        # response's model once it has one.
        Source(peers.OI_LLM_MODEL_NAME, as_text, peer=True),
        Source(peers.OI_EMBEDDING_MODEL_NAME, as_text, peer=True),
        Derived("mlflow.spanOutputs.model", _mlflow_response_model, (peers.MLFLOW_SPAN_TYPE,)),
    ),
    "input_tokens": (
        Source(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, as_count),
        Source(gen_ai.GEN_AI_USAGE_PROMPT_TOKENS, as_count),
        Source(peers.OI_TOKEN_COUNT_PROMPT, as_count, peer=True),
        Source(peers.MLFLOW_TOKEN_USAGE, _json_field(peers.MLFLOW_USAGE_INPUT_TOKENS, as_count), peer=True),
        Derived("mlflow.spanOutputs.usage", _mlflow_usage(_INPUT_TOKENS), (peers.MLFLOW_SPAN_TYPE,)),
    ),
    "output_tokens": (
        Source(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, as_count),
        Source(gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS, as_count),
        Source(peers.OI_TOKEN_COUNT_COMPLETION, as_count, peer=True),
        Source(peers.MLFLOW_TOKEN_USAGE, _json_field(peers.MLFLOW_USAGE_OUTPUT_TOKENS, as_count), peer=True),
        Derived("mlflow.spanOutputs.usage", _mlflow_usage(_OUTPUT_TOKENS), (peers.MLFLOW_SPAN_TYPE,)),
    ),
    "finish_reasons": (
        Source(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, as_text_list),
        Derived(
            "gen_ai.completion.{i}.finish_reason", _llmetry_finish_reasons, (_LLMETRY_FIRST_FINISH_REASON,)
        ),
        Source(peers.OI_FINISH_REASON, as_text_list, peer=True),
        Derived("mlflow.spanOutputs (finish reasons)", _mlflow_finish_reasons, (peers.MLFLOW_SPAN_TYPE,)),
        # The provider's own spelling (end_turn, max_tokens …), as spanreel records Anthropic's.
        Source(peers.ANTHROPIC_STOP_REASON, as_text_list, peer=True),
    ),
    "session_id": (
        Source(SESSION_ID, as_text),
        Source(peers.LLMETRY_SESSION_ID, as_text, peer=True),
        Source(peers.MLFLOW_TRACE_SESSION, as_text, peer=True),
        Source(SESSION_ID, as_text, resource=True),
    ),
    "conversation_id": (
        Source(gen_ai.GEN_AI_CONVERSATION_ID, as_text),
        Source(gen_ai.GEN_AI_CONVERSATION_ID, as_text, resource=True),
    ),
}

#: The derived columns, in table order.
GENAI_COLUMNS: Final = tuple(LOOKUP_TABLES)


def _is_peer(source: Source | Derived) -> bool:
    return isinstance(source, Derived) or source.peer


def _compile(
    tables: Mapping[str, tuple[Source | Derived, ...]], with_peers: bool
) -> tuple[tuple[str, tuple[tuple[str | None, Callable[[Any], Any], bool], ...]], ...]:
    """Tables as plain tuples ``(key, function, in_resource)`` (``key`` None: a Derived), for a
    loop without method calls: this runs once per span on the ingest path."""
    return tuple(
        (
            column,
            tuple(
                (None, s.derive, False) if isinstance(s, Derived) else (s.key, s.convert, s.resource)
                for s in sources
                if with_peers or not _is_peer(s)
            ),
        )
        for column, sources in tables.items()
    )


_ALL_SOURCES: Final = _compile(LOOKUP_TABLES, with_peers=True)
_OTEL_SOURCES: Final = _compile(LOOKUP_TABLES, with_peers=False)
#: A span without any of these attributes gets the same columns from the OTel sources alone.
PEER_KEYS: Final = frozenset(
    key
    for sources in LOOKUP_TABLES.values()
    for s in sources
    if _is_peer(s)
    for key in (s.triggers if isinstance(s, Derived) else (s.key,))
)


def _lookup(sources: tuple[Source | Derived, ...], attrs: Attributes, resource: Attributes) -> Any:
    for source in sources:
        value = source.read(attrs, resource)
        if value is not None:
            return value
    return None


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """Add the GenAI columns to ``row`` (a :data:`~spanreel.collector._decode.SpanRow`) in place
    and return it. Columns with no source present are ``None``; ``operation`` is ``None`` for
    spans that are not model calls (peers' chain, tool, agent … spans included)."""
    attrs: Attributes = row["attributes"]
    resource: Attributes = row["resource_attributes"]
    compiled = _OTEL_SOURCES
    if not PEER_KEYS.isdisjoint(attrs):
        compiled = _ALL_SOURCES
        attrs = attribute_view(attrs)
    for column, entries in compiled:
        value = None
        for key, function, in_resource in entries:
            if key is None:
                value = function(attrs)
            else:
                raw = (resource if in_resource else attrs).get(key)
                value = None if raw is None else function(raw)
            if value is not None:
                break
        row[column] = value
    return row


# -- cost --------------------------------------------------------------------------------------

#: Where a call's cost in USD may be recorded, first usable wins.
COST_SOURCES: Final[tuple[Source, ...]] = (
    Source(SPANREEL_COST_USD, as_amount),
    Source(peers.OI_COST_TOTAL, as_amount),
    Source(peers.OPENLIT_USAGE_COST, as_amount),
    Source(peers.MLFLOW_COST, _json_field(peers.MLFLOW_COST_TOTAL, as_amount)),
)


def normalise_cost(attributes: Attributes) -> float | None:
    """The cost of one call in US dollars from the span's attributes, or ``None`` when the
    instrumentation recorded none (the OTel GenAI conventions define no cost attribute).

    Sources, first usable wins: spanreel's ``spanreel.cost.usd``, OpenInference
    ``llm.cost.total``, OpenLIT ``gen_ai.usage.cost``, MLflow ``mlflow.llm.cost`` (JSON
    ``{"total_cost": …}``). Negative or non-finite values are ignored.
    """
    return as_amount(_lookup(COST_SOURCES, attribute_view(attributes), {}))


# -- messages ----------------------------------------------------------------------------------
#
# Output shape: the OTel GenAI message schema (gen-ai-input-messages.json /
# gen-ai-output-messages.json): [{"role", "parts": [{"type": "text", "content"},
# {"type": "tool_call", "id", "name", "arguments"}, {"type": "tool_call_response", "id",
# "response"}], "finish_reason"?}].

Message = dict[str, Any]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "content": text}


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "name": name if isinstance(name, str) else ""}
    if isinstance(call_id, str) and call_id:
        part["id"] = call_id
    if isinstance(arguments, str):
        decoded = _load_json(arguments)
        part["arguments"] = arguments if decoded is None else decoded
    elif arguments is not None:
        part["arguments"] = arguments
    return part


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI-style ``content`` (a string, a JSON string of parts, or a list of parts) → text parts,
    and ``uri`` / ``blob`` / ``file`` parts for images, audio and files."""
    if isinstance(content, str):
        stripped = content.lstrip()
        if stripped.startswith("["):
            decoded = _load_json(content)
            if isinstance(decoded, list) and all(isinstance(p, dict) for p in decoded):
                return _content_parts(decoded)
        return [_text_part(content)] if content else []
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append(_text_part(item))
            elif isinstance(item, dict) and _is_media_type(item.get("type")):
                parts.extend(_BLOBS.scrub(content_parts([item])))
            elif isinstance(item, dict):
                text = item.get("text", item.get("content"))
                if isinstance(text, str):
                    parts.append(_text_part(text))
        return parts
    return []


#: OpenAI content part types that carry media (mapped as the instrumentation maps them: ``uri`` /
#: ``blob`` / ``file`` parts with their modality).
_MEDIA_PART_TYPES: Final = frozenset({"image_url", "input_audio", "file"})


def _is_media_type(value: Any) -> bool:
    # A part's "type" is whatever JSON the span carried: a list or object is no type (and not
    # hashable, so it cannot be looked up in the set).
    return isinstance(value, str) and value in _MEDIA_PART_TYPES


def _semconv_messages(value: Any) -> list[Message] | None:
    messages = _load_json(value) if isinstance(value, str) else value
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return messages
    return None


def _llmetry_messages(attrs: Attributes, prefix: str, output: bool) -> list[Message] | None:
    messages: list[Message] = []
    for base in _indexed(attrs, prefix, _LLMETRY_MESSAGE_PROBES):
        role = as_text(attrs.get(f"{base}.{peers.LLMETRY_ROLE}")) or ("assistant" if output else "user")
        tool_call_id = attrs.get(f"{base}.{peers.LLMETRY_TOOL_CALL_ID_OF_MESSAGE}")
        content = attrs.get(f"{base}.{peers.LLMETRY_CONTENT}")
        if role == "tool" or tool_call_id is not None:
            parts = [{"type": "tool_call_response", "id": tool_call_id, "response": content}]
        else:
            parts = _content_parts(content)
        for call in _indexed(attrs, f"{base}.{peers.LLMETRY_TOOL_CALLS}", _LLMETRY_TOOL_CALL_PROBES):
            parts.append(
                _tool_call_part(
                    attrs.get(f"{call}.{peers.LLMETRY_TOOL_CALL_ID}"),
                    attrs.get(f"{call}.{peers.LLMETRY_TOOL_CALL_NAME}"),
                    attrs.get(f"{call}.{peers.LLMETRY_TOOL_CALL_ARGUMENTS}"),
                )
            )
        message: Message = {"role": role, "parts": parts}
        reason = as_text(attrs.get(f"{base}.{peers.LLMETRY_FINISH_REASON}"))
        if output:
            message["finish_reason"] = reason or ""
        messages.append(message)
    return messages or None


def _openinference_messages(attrs: Attributes, prefix: str, output: bool) -> list[Message] | None:
    messages: list[Message] = []
    for base in _indexed(attrs, prefix, _OI_MESSAGE_PROBES):
        role = as_text(attrs.get(f"{base}.{peers.OI_MESSAGE_ROLE}")) or ("assistant" if output else "user")
        content = attrs.get(f"{base}.{peers.OI_MESSAGE_CONTENT}")
        parts: list[dict[str, Any]]
        if role == "tool":
            call_id = attrs.get(f"{base}.{peers.OI_MESSAGE_TOOL_CALL_ID}")
            parts = [{"type": "tool_call_response", "id": call_id, "response": content}]
        else:
            parts = [_text_part(content)] if isinstance(content, str) and content else []
            for item in _indexed(attrs, f"{base}.{peers.OI_MESSAGE_CONTENTS}", _OI_CONTENT_PROBES):
                text = attrs.get(f"{item}.{peers.OI_MESSAGE_CONTENT_TEXT}")
                image = attrs.get(f"{item}.{peers.OI_MESSAGE_CONTENT_IMAGE_URL}")
                if isinstance(text, str):
                    parts.append(_text_part(text))
                elif isinstance(image, str) and image:
                    parts.extend(_content_parts([{"type": "image_url", "image_url": {"url": image}}]))
        for call in _indexed(attrs, f"{base}.{peers.OI_MESSAGE_TOOL_CALLS}", _OI_TOOL_CALL_PROBES):
            parts.append(
                _tool_call_part(
                    attrs.get(f"{call}.{peers.OI_TOOL_CALL_ID}"),
                    attrs.get(f"{call}.{peers.OI_TOOL_CALL_FUNCTION_NAME}"),
                    attrs.get(f"{call}.{peers.OI_TOOL_CALL_FUNCTION_ARGUMENTS}"),
                )
            )
        message: Message = {"role": role, "parts": parts}
        if output:
            message["finish_reason"] = as_text(attrs.get(peers.OI_FINISH_REASON)) or ""
        messages.append(message)
    return messages or None


def _openinference_prompts(attrs: Attributes) -> list[Message] | None:
    """Legacy Completions prompts (``llm.prompts.{i}.prompt.text``, or an older release's
    ``llm.prompts`` list): one user message per prompt, as spanreel records its own."""
    prompts: list[Any] = [
        attrs.get(f"{base}.{peers.OI_PROMPT_TEXT}")
        for base in _indexed(attrs, peers.OI_PROMPTS, (peers.OI_PROMPT_TEXT,))
    ]
    if not prompts:
        listed = attrs.get(peers.OI_PROMPTS)
        prompts = list(listed) if isinstance(listed, list | tuple) else []
    messages = [{"role": "user", "parts": [_text_part(p)]} for p in prompts if isinstance(p, str)]
    return messages or None


def _openinference_choices(attrs: Attributes) -> list[Message] | None:
    """Legacy Completions choices (``llm.choices.{i}.completion.text``): one assistant message
    each; OpenInference records the first choice's finish reason only."""
    reason = as_text(attrs.get(peers.OI_FINISH_REASON)) or ""
    messages: list[Message] = []
    for i, base in enumerate(_indexed(attrs, peers.OI_CHOICES, (peers.OI_COMPLETION_TEXT,))):
        text = attrs.get(f"{base}.{peers.OI_COMPLETION_TEXT}")
        parts = [_text_part(text)] if isinstance(text, str) and text else []
        messages.append({"role": "assistant", "parts": parts, "finish_reason": reason if i == 0 else ""})
    return messages or None


def _mlflow_input_messages(attrs: Attributes) -> list[Message] | None:
    """The recorded kwargs' conversation; separate system instructions (Anthropic ``system``,
    Responses ``instructions``) become its first message, role ``system``, as the other peers
    record them (there is no column for ``gen_ai.system_instructions``)."""
    inputs = _mlflow_inputs(attrs)
    read = _mlflow_request_reader(attrs, inputs) if inputs else None
    if inputs is None or read is None:
        return None
    content = read(_BLOBS.scrub(inputs), None, True).content
    messages = list(content.get(gen_ai.GEN_AI_INPUT_MESSAGES) or ())
    system = content.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS)
    if system:
        messages.insert(0, {"role": "system", "parts": list(system)})
    return messages or None


def _mlflow_output_messages(attrs: Attributes) -> list[Message] | None:
    parsed = _mlflow_response(attrs)
    messages = parsed.content.get(gen_ai.GEN_AI_OUTPUT_MESSAGES) if parsed else None
    return list(messages) if messages else None


def _with_finish_reason(messages: list[Message] | None, reason: Any) -> list[Message] | None:
    """``messages`` with ``reason`` as the ``finish_reason`` of those that have none (the
    anthropic SDK records the stop reason beside its output messages, not in them)."""
    text = as_text(reason)
    if not messages or text is None:
        return messages
    return [m if m.get("finish_reason") else {**m, "finish_reason": text} for m in messages]


def _first(*candidates: Callable[[], list[Message] | None]) -> list[Message] | None:
    for candidate in candidates:
        messages = candidate()
        if messages:
            return messages
    return None


def _dumps(messages: list[Message] | None) -> str | None:
    """Compact JSON (non-finite floats as ``null``); ``None`` for nothing or what JSON cannot hold."""
    if not messages:
        return None
    try:
        return orjson.dumps(messages).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        pass
    try:
        return json.dumps(messages, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None


#: Attributes one of which a peer convention's messages need (``_indexed`` finds no message without
#: its first one's sub-keys; MLflow's come from its span type's JSON payloads).
_PEER_MESSAGE_KEYS: Final = frozenset(
    {
        *(
            f"{prefix}.0.{probe}"
            for prefix in (peers.LLMETRY_PROMPTS, peers.LLMETRY_COMPLETIONS)
            for probe in _LLMETRY_MESSAGE_PROBES
        ),
        *(
            f"{prefix}.0.{probe}"
            for prefix in (peers.OI_INPUT_MESSAGES, peers.OI_OUTPUT_MESSAGES)
            for probe in _OI_MESSAGE_PROBES
        ),
        _OI_FIRST_PROMPT,
        peers.OI_PROMPTS,
        _OI_FIRST_CHOICE,
        peers.MLFLOW_SPAN_TYPE,
    }
)


def normalise_messages(attributes: Attributes) -> tuple[str | None, str | None]:
    """The call's conversation as ``(input_messages_json, output_messages_json)`` in the OTel GenAI
    message schema (``gen_ai.input.messages`` / ``gen_ai.output.messages``: a JSON array of
    ``{"role", "parts": [...]}``, output messages with ``"finish_reason"``), or ``None`` for a side
    that was not recorded. Pure; never raises for odd attribute values.

    Sources, first present wins per side: ``gen_ai.input.messages`` / ``gen_ai.output.messages``
    (spanreel, OpenLLMetry ≥ 0.55, OpenLIT; returned compacted), OpenLLMetry ≤ 0.54
    ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*``, OpenInference
    ``llm.input_messages.{i}.message.*`` / ``llm.output_messages.{i}.message.*`` (legacy
    Completions: ``llm.prompts.{i}.prompt.text`` / ``llm.choices.{i}.completion.text``), MLflow
    ``mlflow.spanInputs`` / ``mlflow.spanOutputs`` (the provider SDK's request and response:
    Anthropic Messages, OpenAI Chat Completions, Responses or legacy Completions). System messages
    stay in the input messages (role ``system``); so do MLflow's separate system instructions
    (Anthropic ``system``, Responses ``instructions``), as its first message. Output messages
    without a finish reason get the anthropic SDK's ``anthropic.message.stop_reason``.
    """
    if _PEER_MESSAGE_KEYS.isdisjoint(attributes):
        # No peer's messages can be there (the common case, the anthropic SDK's span included):
        # the OTel attributes alone, without probing for the peers' indexed keys.
        inputs = _semconv_messages(attributes.get(gen_ai.GEN_AI_INPUT_MESSAGES))
        outputs = _semconv_messages(attributes.get(gen_ai.GEN_AI_OUTPUT_MESSAGES))
    else:
        inputs, outputs = _peer_messages(attribute_view(attributes))
    stop_reason = attributes.get(peers.ANTHROPIC_STOP_REASON)
    if stop_reason is not None:
        outputs = _with_finish_reason(outputs, stop_reason)
    return _dumps(inputs), _dumps(outputs)


def _peer_messages(attrs: Attributes) -> tuple[list[Message] | None, list[Message] | None]:
    inputs = _first(
        lambda: _semconv_messages(attrs.get(gen_ai.GEN_AI_INPUT_MESSAGES)),
        lambda: _llmetry_messages(attrs, peers.LLMETRY_PROMPTS, output=False),
        lambda: _openinference_messages(attrs, peers.OI_INPUT_MESSAGES, output=False),
        lambda: _openinference_prompts(attrs),
        lambda: _mlflow_input_messages(attrs),
    )
    outputs = _first(
        lambda: _semconv_messages(attrs.get(gen_ai.GEN_AI_OUTPUT_MESSAGES)),
        lambda: _llmetry_messages(attrs, peers.LLMETRY_COMPLETIONS, output=True),
        lambda: _openinference_messages(attrs, peers.OI_OUTPUT_MESSAGES, output=True),
        lambda: _openinference_choices(attrs),
        lambda: _mlflow_output_messages(attrs),
    )
    return inputs, outputs
