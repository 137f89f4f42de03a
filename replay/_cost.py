"""The cost of one LLM call in US dollars: recorded on the span, else estimated from its tokens.

Recorded cost attributes, first present wins: spanreel's ``spanreel.cost.usd``
(:data:`spanreel._attributes.SPANREEL_COST_USD`), OpenLIT ``gen_ai.usage.cost``, OpenInference
``llm.cost.total``, MLflow ``mlflow.llm.cost`` (JSON ``{"total_cost": …}``). Otherwise the cost
is computed the way spanreel's instrumentation computes it (``genai-prices``, bundled price
data, no network) from the provider, model and token counts — so a replay with another model
shows the cost difference even for recordings made without costs. ``None`` when the model is
unknown to the price library or the tokens were not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)

from spanreel._attributes import SPANREEL_COST_USD

__all__ = ["COST_ATTRIBUTES", "call_cost"]

#: Span attributes holding a call's cost in USD, in lookup order.
COST_ATTRIBUTES: tuple[str, ...] = (
    SPANREEL_COST_USD,
    "gen_ai.usage.cost",
    "llm.cost.total",
    "mlflow.llm.cost",
)


def _as_usd(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping):
        value = value.get("total_cost")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


def call_cost(
    attributes: Mapping[str, Any],
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
) -> float | None:
    """USD cost of a call: a recorded cost attribute, else an estimate, else ``None``."""
    for key in COST_ATTRIBUTES:
        if key in attributes:
            cost = _as_usd(attributes[key])
            if cost is not None:
                return cost
    if input_tokens is None and output_tokens is None:
        return None
    from spanreel.instrumentation._cost import cost_usd

    usage = {
        GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: attributes.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: attributes.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
    }
    return cost_usd(provider, model, usage)
