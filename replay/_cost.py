"""The cost of one LLM call in US dollars: recorded on the span, else estimated from its tokens.

A recorded cost is read by the collector's :func:`spanreel.collector._normalise.normalise_cost`
(spanreel's ``spanreel.cost.usd``, OpenInference ``llm.cost.total``, OpenLIT
``gen_ai.usage.cost``, MLflow ``mlflow.llm.cost``; first usable wins). Otherwise the cost is
computed the way spanreel's instrumentation computes it (``genai-prices``, bundled price data,
no network) from the provider, model and token counts — so a replay with another model shows
the cost difference even for recordings made without costs. ``None`` when the model is unknown
to the price library or the tokens were not recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from opentelemetry.semconv._incubating.attributes.openai_attributes import (
    OPENAI_REQUEST_SERVICE_TIER,
    OPENAI_RESPONSE_SERVICE_TIER,
)

__all__ = ["call_cost", "format_usd"]


def format_usd(value: float | None) -> str | None:
    """``$0.0042``-style text for a cost in USD (6 decimals, trailing zeros dropped; a cost that
    would round to ``$0`` there keeps two significant digits, ``$0.0000001`` for an embeddings
    call, up to 12 decimals); ``None`` for ``None``."""
    if value is None:
        return None
    decimals = 6
    if value and abs(value) < 1e-6:
        decimals = min(12, 1 - math.floor(math.log10(abs(value))))
    return f"${value:.{decimals}f}".rstrip("0").rstrip(".")


def call_cost(
    attributes: Mapping[str, Any],
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
) -> float | None:
    """USD cost of a call: the recorded cost, else an estimate from the model and token counts,
    else ``None``. ``attributes``: the span's attributes; the other arguments are its normalised
    GenAI columns."""
    from spanreel.collector._normalise import normalise_cost  # the collector pulls in DuckDB

    recorded = normalise_cost(attributes)
    if recorded is not None:
        return recorded
    if input_tokens is None and output_tokens is None:
        return None
    from spanreel.instrumentation._cost import USAGE_ATTRIBUTES, cost_usd

    # the cached, cache-write, audio and web-search counts as recorded; the totals normalised
    usage = {attribute: attributes.get(attribute) for attribute in USAGE_ATTRIBUTES}
    usage[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    usage[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    usage[OPENAI_RESPONSE_SERVICE_TIER] = attributes.get(OPENAI_RESPONSE_SERVICE_TIER)
    usage[OPENAI_REQUEST_SERVICE_TIER] = attributes.get(OPENAI_REQUEST_SERVICE_TIER)
    return cost_usd(provider, model, usage)
