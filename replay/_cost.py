"""The cost of one LLM call in US dollars: recorded on the span, else estimated from its tokens.

Recorded cost attributes, first present wins: spanreel's own (``spanreel._attributes``, when the
instrumentation records one), OpenLIT ``gen_ai.usage.cost``, OpenInference ``llm.cost.total``,
MLflow ``mlflow.llm.cost`` (JSON ``{"total_cost": …}``). Otherwise the cost is computed with
``genai-prices`` (pydantic's price database, bundled snapshot, no network) from the model,
provider and input/output token counts; ``None`` when the model is unknown to it or the tokens
were not recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import spanreel._attributes as _spanreel_attrs

__all__ = ["COST_ATTRIBUTES", "call_cost"]

_log = logging.getLogger(__name__)

#: Span attributes holding a call's cost in USD, in lookup order.
COST_ATTRIBUTES: tuple[str, ...] = (
    *(
        value
        for name, value in vars(_spanreel_attrs).items()
        if name.startswith("SPANREEL_") and "COST" in name and isinstance(value, str)
    ),
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


@lru_cache(maxsize=1024)
def _estimate(model: str, provider: str | None, input_tokens: int, output_tokens: int) -> float | None:
    try:
        from genai_prices import Usage, calc_price

        result = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model,
            provider_id=provider,
        )
    except LookupError:
        return None
    except Exception as exc:  # a price-database problem must not break a report
        _log.debug("genai-prices failed for %s/%s: %s", provider, model, exc)
        return None
    return float(result.total_price)


def call_cost(
    attributes: Mapping[str, Any],
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
) -> float | None:
    """USD cost of a call: a recorded cost attribute, else a ``genai-prices`` estimate, else ``None``."""
    for key in COST_ATTRIBUTES:
        if key in attributes:
            cost = _as_usd(attributes[key])
            if cost is not None:
                return cost
    if not model or input_tokens is None or output_tokens is None:
        return None
    return _estimate(model, provider, input_tokens, output_tokens)
