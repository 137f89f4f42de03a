"""Derive the typed GenAI columns of a span row from its attributes (pure).

The columns (docs/internals.md §2): ``operation``, ``provider``, ``request_model``,
``response_model``, ``input_tokens``, ``output_tokens``, ``finish_reasons``, ``session_id``,
``conversation_id``. Original attributes are never modified or dropped.

Each column has an ordered lookup table of :class:`Source` entries; the first source whose
attribute is present and converts to a usable value wins. Today's tables hold the OpenTelemetry
GenAI semantic conventions (v1.41) plus their deprecated names (``gen_ai.system``,
``gen_ai.usage.prompt_tokens`` / ``completion_tokens``). Peer conventions (OpenInference,
OpenLLMetry, MLflow — see shared/reference/peer-conventions.md) are added by appending sources
(with a converter, e.g. for MLflow's JSON-quoted values) to these tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID

__all__ = ["GENAI_COLUMNS", "LOOKUP_TABLES", "Source", "normalise_row", "normalise_rows"]

Converter = Callable[[Any], Any]


def as_text(value: Any) -> str | None:
    """A non-empty string, else ``None`` (numbers are not silently turned into names)."""
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return None


_MAX_BIGINT: Final = 2**63 - 1


def as_count(value: Any) -> int | None:
    """A non-negative integer (fitting a BIGINT) from an int, an integral float or a decimal string,
    else ``None``."""
    if isinstance(value, bool):
        return None
    count: int | None = None
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        count = int(value.strip())
    return count if count is not None and 0 <= count <= _MAX_BIGINT else None


def as_text_list(value: Any) -> list[str] | None:
    """A list of strings (a single string becomes a one-element list), else ``None``."""
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
        return items if items else None
    return None


# Deprecated ``gen_ai.system`` spellings → current ``gen_ai.provider.name`` values.
_SYSTEM = gen_ai.GenAiSystemValues
_PROVIDER = gen_ai.GenAiProviderNameValues
_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    _SYSTEM.AZ_AI_INFERENCE.value: _PROVIDER.AZURE_AI_INFERENCE.value,
    _SYSTEM.AZ_AI_OPENAI.value: _PROVIDER.AZURE_AI_OPENAI.value,
    _SYSTEM.GEMINI.value: _PROVIDER.GCP_GEMINI.value,
    _SYSTEM.VERTEX_AI.value: _PROVIDER.GCP_VERTEX_AI.value,
    _SYSTEM.XAI.value: _PROVIDER.X_AI.value,
}


def as_provider(value: Any) -> str | None:
    """A provider name, lower-cased (OpenLLMetry writes ``Anthropic``) with deprecated aliases mapped."""
    text = as_text(value)
    if text is None:
        return None
    lowered = text.lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class Source:
    """One place a column's value may come from."""

    key: str
    convert: Converter
    #: look in the resource attributes instead of the span attributes
    resource: bool = False


#: column name → ordered sources (first usable value wins).
LOOKUP_TABLES: Final[Mapping[str, tuple[Source, ...]]] = {
    "operation": (Source(gen_ai.GEN_AI_OPERATION_NAME, as_text),),
    "provider": (
        Source(gen_ai.GEN_AI_PROVIDER_NAME, as_provider),
        Source(gen_ai.GEN_AI_SYSTEM, as_provider),
    ),
    "request_model": (Source(gen_ai.GEN_AI_REQUEST_MODEL, as_text),),
    "response_model": (Source(gen_ai.GEN_AI_RESPONSE_MODEL, as_text),),
    "input_tokens": (
        Source(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, as_count),
        Source(gen_ai.GEN_AI_USAGE_PROMPT_TOKENS, as_count),
    ),
    "output_tokens": (
        Source(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, as_count),
        Source(gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS, as_count),
    ),
    "finish_reasons": (Source(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, as_text_list),),
    "session_id": (Source(SESSION_ID, as_text), Source(SESSION_ID, as_text, resource=True)),
    "conversation_id": (
        Source(gen_ai.GEN_AI_CONVERSATION_ID, as_text),
        Source(gen_ai.GEN_AI_CONVERSATION_ID, as_text, resource=True),
    ),
}

#: The derived columns, in table order.
GENAI_COLUMNS: Final = tuple(LOOKUP_TABLES)


def _lookup(sources: tuple[Source, ...], attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> Any:
    for source in sources:
        value = (resource if source.resource else attrs).get(source.key)
        if value is not None:
            converted = source.convert(value)
            if converted is not None:
                return converted
    return None


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """Add the GenAI columns to ``row`` (a :data:`~spanreel.collector._decode.SpanRow`) in place
    and return it. Columns with no source present are ``None``; ``operation`` is ``None`` for
    non-LLM spans."""
    attrs: Mapping[str, Any] = row["attributes"]
    resource: Mapping[str, Any] = row["resource_attributes"]
    for column, sources in LOOKUP_TABLES.items():
        row[column] = _lookup(sources, attrs, resource)
    return row


def normalise_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`normalise_row` over a list; returns the same list."""
    for row in rows:
        normalise_row(row)
    return rows
