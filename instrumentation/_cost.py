"""The cost of a call in USD from the maintained price library `genai-prices`
(https://github.com/pydantic/genai-prices, its bundled price data; nothing is fetched at run time).

:func:`cost_usd` maps ``gen_ai.provider.name`` to the library's provider id, asks it for the price
of the response model (else the request model) with the call's token usage, and returns ``None``
when the library does not know the provider or the model — an unknown model gets no cost, never
a guess. At an unknown host (a proxy, a local server) the provider is the API shape spoken
(``openai``), so a model that OpenAI prices gets OpenAI's price.

The library is imported lazily (it takes ~0.2 s): :func:`warm_up` starts that on a daemon thread
when the first LLM call begins. Prices are memoised per (provider, model, usage, UTC day), so
repeated identical usages cost a dict lookup; a new usage costs one library calculation
(~0.1 ms, against the hundreds of milliseconds of a real LLM call).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

_log = logging.getLogger("spanreel.instrumentation")

_P = ga.GenAiProviderNameValues
#: ``gen_ai.provider.name`` → genai-prices provider id.
PROVIDER_IDS: dict[str, str] = {
    _P.OPENAI.value: "openai",
    _P.ANTHROPIC.value: "anthropic",
    _P.GCP_GEMINI.value: "google",
    _P.GCP_VERTEX_AI.value: "google",
    _P.GCP_GEN_AI.value: "google",
    _P.AZURE_AI_OPENAI.value: "azure",
    _P.AWS_BEDROCK.value: "aws",
    _P.GROQ.value: "groq",
    _P.DEEPSEEK.value: "deepseek",
    _P.MISTRAL_AI.value: "mistral",
    _P.X_AI.value: "x-ai",
    _P.PERPLEXITY.value: "perplexity",
    _P.COHERE.value: "cohere",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "cerebras": "cerebras",
}

_MEMO_SIZE = 4096
_memo: OrderedDict[tuple[Any, ...], float | None] = OrderedDict()
_memo_lock = threading.Lock()
_warm = threading.Event()
_warm_started = False


def warm_up() -> None:
    """Import the price library and load its bundled data on a daemon thread (once)."""
    global _warm_started
    if _warm_started:
        return
    _warm_started = True
    threading.Thread(target=_load, name="spanreel-prices", daemon=True).start()


def _load() -> None:
    try:
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()
    except Exception:
        _log.debug("spanreel: the genai-prices library could not be loaded; no costs", exc_info=True)
    finally:
        _warm.set()


def cost_usd(provider: str | None, model: str | None, usage: Mapping[str, Any]) -> float | None:
    """The call's cost in USD, or ``None`` (no model, no token usage, or unknown to the library).

    ``usage`` holds the span's ``gen_ai.usage.*`` attributes: ``input_tokens`` (all input,
    cached included — the conventions' and the library's meaning), ``output_tokens``,
    ``cache_read.input_tokens``, ``cache_creation.input_tokens``.
    """
    if not provider or not model:
        return None
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id is None:
        return None
    input_tokens = usage.get(ga.GEN_AI_USAGE_INPUT_TOKENS)
    output_tokens = usage.get(ga.GEN_AI_USAGE_OUTPUT_TOKENS)
    if input_tokens is None and output_tokens is None:
        return None
    cache_read = usage.get(ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    cache_write = usage.get(ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
    day = datetime.now(tz=UTC).date()
    key = (provider_id, model, input_tokens, output_tokens, cache_read, cache_write, day)
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    price = _calculate(provider_id, model, input_tokens, output_tokens, cache_read, cache_write)
    with _memo_lock:
        _memo[key] = price
        if len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return price


def _calculate(
    provider_id: str, model: str, input_tokens: Any, output_tokens: Any, cache_read: Any, cache_write: Any
) -> float | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - it is a dependency
        return None
    values = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }
    try:
        usage = Usage(**{k: v for k, v in values.items() if isinstance(v, int) and v >= 0})
        result = calc_price(usage, model, provider_id=provider_id)
    except LookupError:
        return None  # unknown model (or provider): no cost, not a guess
    except Exception:
        _log.debug("spanreel: genai-prices could not price %s/%s", provider_id, model, exc_info=True)
        return None
    return float(result.total_price)
