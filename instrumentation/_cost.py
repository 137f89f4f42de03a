"""The cost of a call in USD from the maintained price library `genai-prices`
(https://github.com/pydantic/genai-prices, its bundled price data; nothing is fetched at run time).

:func:`cost_usd` maps ``gen_ai.provider.name`` to the library's provider id, asks it for the
model (the response model, else the request model) and the price in force now, and returns
``None`` when the library does not know the provider or the model — an unknown model gets no
cost, never a guess. At an unknown host (a proxy, a local server) the provider is the API shape
spoken (``openai``), so a model that OpenAI prices gets OpenAI's price.

Speed (this runs when every LLM call ends): the library's own calculation costs ~75 µs per
call, and token counts differ from call to call, so memoising by usage does not help. Instead:

- the model lookup is memoised per (price data, provider, model), unknown models included;
- the price in force is resolved per call (:meth:`ModelInfo.get_prices` — start-date and
  time-of-day prices, e.g. off-peak discounts, are honoured), except for a model with one
  unconditional price, whose affine form (below) is then used without reading the clock;
- for a price made of flat per-unit rates (no tiers), the cost is an affine function of the
  token counts on the valid domain, where every part fits in what it is part of: cached +
  cache-write + audio input ≤ input (counted apart: a conservative bound, as the library may
  price cached and audio input as separate parts), cached audio ≤ cached and ≤ audio input,
  1-hour cache writes ≤ cache writes, audio output ≤ output. Its coefficients are
  measured once per (price, reported token kinds) with the library itself, in exact ``Decimal``
  arithmetic, and checked against the library's own result for the first real usage; a price
  that does not check out, a tiered price, or a usage outside that domain is priced by the
  library call by call (memoised per exact usage).

Service tiers: an OpenAI call on the ``flex`` or ``priority`` tier (``openai.response.service_tier``,
else ``openai.request.service_tier``) is priced at that tier's rates: the library's price variants
(``price_context={"service_tier": …}``). A tier the library has no variant for (``default``,
``scale``) gets the standard price.

The library is imported lazily (it takes ~0.2 s): :func:`warm_up` starts that on a daemon thread
when the first LLM call begins; :func:`load_now` does it at once (replay, before it times calls).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes.openai_attributes import (
    OPENAI_REQUEST_SERVICE_TIER,
    OPENAI_RESPONSE_SERVICE_TIER,
)

from spanreel._attributes import (
    SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS,
    SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS,
    SPANREEL_USAGE_INPUT_AUDIO_TOKENS,
    SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS,
    SPANREEL_USAGE_WEB_SEARCHES,
)

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, PriceContext, PriceVariant, Provider

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

#: genai-prices ``Usage`` field ← span attribute, in a fixed order.
_USAGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("input_tokens", ga.GEN_AI_USAGE_INPUT_TOKENS),
    ("output_tokens", ga.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cache_read_tokens", ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_write_tokens", ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
    ("web_searches", SPANREEL_USAGE_WEB_SEARCHES),  # a price per 1,000 searches
    # parts of the counts above, billed at their own rates where the model has them
    ("input_audio_tokens", SPANREEL_USAGE_INPUT_AUDIO_TOKENS),
    ("output_audio_tokens", SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS),
    ("cache_audio_read_tokens", SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS),
    ("cache_write_1h_tokens", SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS),
)
#: The span attributes :func:`cost_usd` reads (besides the service tier).
USAGE_ATTRIBUTES: tuple[str, ...] = tuple(attribute for _, attribute in _USAGE_FIELDS)
#: Parts of the input tokens: not priceable without ``input_tokens``.
_INPUT_PARTS = frozenset(
    {
        "cache_read_tokens",
        "cache_write_tokens",
        "input_audio_tokens",
        "cache_audio_read_tokens",
        "cache_write_1h_tokens",
    }
)
#: Where the affine coefficients are measured: far inside the valid domain (each part well within
#: the count it is part of, so every probe moved by ``_PROBE_STEP`` stays inside too).
_PROBE_BASE = {
    "input_tokens": 10_000_000,
    "output_tokens": 1_000_000,
    "cache_read_tokens": 100_000,
    "cache_write_tokens": 100_000,
    "input_audio_tokens": 100_000,
}
_PROBE_CACHE = 1_000
_PROBE_STEP = 1_000

_CACHE_SIZE = 4096
#: (id(price data), provider id, model) → (price data, (provider, model) or None when unknown).
_models: dict[tuple[int, str, str], tuple[DataSnapshot, tuple[Provider, ModelInfo] | None]] = {}
#: (id(model price), usage fields) → (model price, affine form or None when not affine).
_forms: dict[tuple[int, tuple[str, ...]], tuple[ModelPrice, _Affine | None]] = {}
#: (id(model price), usage values) → (model price, cost) for prices priced call by call.
_exact: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[ModelPrice, float | None]] = {}
#: (id(price data), provider id, model, service tier, usage fields) → (price data, affine form), for
#: models with one unconditional price (no start dates, no time-of-day prices): priced without the
#: clock.
_constant: dict[tuple[int, str, str, str | None, tuple[str, ...]], tuple[DataSnapshot, _Affine]] = {}
#: (id(model), service tier) → (model, the model's price variants for that tier).
_tier_variants: dict[tuple[int, str], tuple[ModelInfo, tuple[PriceVariant, ...]]] = {}
#: (id(standard price), service tier, which of the tier's variants are in force) → (standard price,
#: the tier's price).
_tiers: dict[tuple[int, str, tuple[bool, ...]], tuple[ModelPrice, ModelPrice]] = {}
_warm_started = False
_data_snapshot: ModuleType | None = None


class _Affine:
    """cost(usage) = ``base`` + Σ ``coefficients[f]`` × (usage[f] − ``origin[f]``), in USD."""

    __slots__ = ("base", "coefficients", "origin")

    def __init__(self, base: Decimal, origin: dict[str, int], coefficients: dict[str, Decimal]) -> None:
        self.base = base
        self.origin = origin
        self.coefficients = coefficients

    def __call__(self, usage: Mapping[str, int]) -> Decimal:
        total = self.base
        for name, coefficient in self.coefficients.items():
            total += coefficient * (usage[name] - self.origin[name])
        return total


def warm_up() -> None:
    """Import the price library and load its bundled data on a daemon thread (once)."""
    global _warm_started
    if _warm_started:
        return
    _warm_started = True
    threading.Thread(target=_load, name="spanreel-prices", daemon=True).start()


def load_now() -> None:
    """Import the price library and load its bundled data on this thread, now (~0.2 s once; a
    no-op after). For a process that times LLM calls itself (replay): otherwise the first calls
    pay the import, which :func:`warm_up` starts in the background when the first call begins."""
    global _warm_started
    _warm_started = True
    _load()


def _load() -> None:
    try:
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()
    except Exception:
        _log.debug("spanreel: the genai-prices library could not be loaded; no costs", exc_info=True)


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()  # rare (thousands of distinct models/prices): start again
    cache[key] = value


def cost_usd(
    provider: str | None, model: str | None, usage: Mapping[str, Any], *, service_tier: str | None = None
) -> float | None:
    """The call's cost in USD, or ``None`` (no model, no token usage, or unknown to the library).

    ``usage`` holds the span's ``gen_ai.usage.*`` attributes: ``input_tokens`` (all input,
    cached included — the conventions' and the library's meaning), ``output_tokens``,
    ``cache_read.input_tokens``, ``cache_creation.input_tokens``, and spanreel's
    ``spanreel.usage.web_searches`` and audio token counts (``spanreel.usage.input_audio_tokens``,
    ``output_audio_tokens``, ``cache_read_audio_tokens``: parts of the counts above, at the audio
    rates where the model has them; cached input with no cached audio count is priced as cached
    text) and 1-hour cache writes (``spanreel.usage.cache_creation_1h_tokens``, part of the cache
    writes, at the 1-hour rate); values that are not non-negative integers are ignored. The
    service tier is ``usage``'s ``openai.response.service_tier``, else its
    ``openai.request.service_tier``, else ``service_tier``.
    """
    if not provider or not model:
        return None
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id is None:
        return None
    values: dict[str, int] = {}
    for name, attribute in _USAGE_FIELDS:
        value = usage.get(attribute)
        if type(value) is int and value >= 0:
            values[name] = value
    if "input_tokens" not in values and "output_tokens" not in values:
        return None
    if "input_audio_tokens" in values and "cache_read_tokens" in values:
        # The library wants the cached audio part explicitly when both are reported (Gemini lists
        # it in cacheTokensDetails when there is some; OpenAI chat never reports one).
        values.setdefault("cache_audio_read_tokens", 0)
    tier = usage.get(OPENAI_RESPONSE_SERVICE_TIER) or usage.get(OPENAI_REQUEST_SERVICE_TIER) or service_tier
    try:
        return _cost(provider_id, model, values, tier if isinstance(tier, str) and tier else None)
    except Exception:
        _log.debug("spanreel: genai-prices could not price %s/%s", provider_id, model, exc_info=True)
        return None


def _snapshots() -> ModuleType | None:
    """``genai_prices.data_snapshot``, imported on first use (an import statement per call costs
    more than the rest of a memoised price lookup)."""
    global _data_snapshot
    if _data_snapshot is None:
        try:
            from genai_prices import data_snapshot
        except ImportError:  # pragma: no cover - it is a dependency
            return None
        _data_snapshot = data_snapshot
    return _data_snapshot


def _cost(provider_id: str, model: str, values: dict[str, int], tier: str | None = None) -> float | None:
    module = _data_snapshot or _snapshots()
    if module is None:  # pragma: no cover - it is a dependency
        return None
    snapshot: DataSnapshot = module.get_snapshot()
    fields = tuple(values)
    constant = _constant.get((id(snapshot), provider_id, model, tier, fields))
    if constant is not None and constant[0] is snapshot and _affine_domain(values):
        return float(constant[1](values))
    key = (id(snapshot), provider_id, model)
    entry = _models.get(key)
    if entry is None or entry[0] is not snapshot:
        try:
            entry = (snapshot, snapshot.find_provider_model(model, None, provider_id, None))
        except LookupError:
            entry = (snapshot, None)  # unknown model (or provider): no cost, not a guess
        _remember(_models, key, entry)
    found = entry[1]
    if found is None:
        return None
    provider, info = found
    now = datetime.now(tz=UTC)
    price = standard = info.get_prices(now)
    context: PriceContext | None = None
    timeless = True
    if tier is not None:
        variant, timeless = _tier_price(info, standard, tier, now)
        if variant is not None:
            price, context = variant, {"service_tier": tier}
    if _affine_domain(values):
        form = _form(price, fields, provider, info, now, values, context)
        if form is not None:
            if info.prices is standard and timeless:  # one price at all times: skip the clock
                _remember(_constant, (id(snapshot), provider_id, model, tier, fields), (snapshot, form))
            return float(form(values))
    exact_key = (id(price), tuple(values.items()))
    hit = _exact.get(exact_key)
    if hit is not None and hit[0] is price:
        return hit[1]
    cost = _library_cost(info, provider, now, values, context)
    _remember(_exact, exact_key, (price, None if cost is None else float(cost)))
    return None if cost is None else float(cost)


def _tier_price(
    info: ModelInfo, standard: ModelPrice, tier: str, now: datetime
) -> tuple[ModelPrice | None, bool]:
    """The price of ``tier`` (the library's price variants for it; ``None``: none), and whether it
    holds at all times (no variant of the tier has a start date or time of day). Memoised per
    standard price, tier and which of the tier's variants are in force now, so the price is one
    object and the forms below are memoised for it too."""
    context = {"service_tier": tier}
    key = (id(info), tier)
    found = _tier_variants.get(key)
    if found is None or found[0] is not info:
        matching = tuple(
            v for v in info.price_variants or () if all(context.get(k) == w for k, w in v.when.items())
        )
        found = (info, matching)
        _remember(_tier_variants, key, found)
    variants = found[1]
    if not variants:
        return None, True
    in_force = tuple(v.constraint is None or v.constraint.active(now) for v in variants)
    price_key = (id(standard), tier, in_force)
    entry = _tiers.get(price_key)
    if entry is None or entry[0] is not standard:
        entry = (standard, info.get_prices(now, context))
        _remember(_tiers, price_key, entry)
    return entry[1], all(v.constraint is None for v in variants)


def _affine_domain(values: Mapping[str, int]) -> bool:
    """Whether the affine forms apply: cached, cache-write and audio input within the input (their
    sum: a conservative bound), cached audio within both cached and audio input, 1-hour cache
    writes within the cache writes, audio output within the output."""
    if "input_tokens" not in values and _INPUT_PARTS.intersection(values):
        return False
    cached = values.get("cache_read_tokens", 0)
    audio = values.get("input_audio_tokens", 0)
    if cached + values.get("cache_write_tokens", 0) + audio > values.get("input_tokens", 0):
        return False
    if "cache_audio_read_tokens" in values and values["cache_audio_read_tokens"] > min(cached, audio):
        return False
    if values.get("cache_write_1h_tokens", 0) > values.get("cache_write_tokens", 0):
        return False
    return values.get("output_audio_tokens", 0) <= values.get("output_tokens", 0)


def _library_cost(
    info: ModelInfo,
    provider: Provider,
    now: datetime,
    values: Mapping[str, int],
    context: PriceContext | None = None,
) -> Decimal | None:
    from genai_prices import Usage

    try:
        return info.calc_price(
            Usage(**values), provider, genai_request_timestamp=now, price_context=context
        ).total_price
    except LookupError:
        return None


def _form(
    price: ModelPrice,
    fields: tuple[str, ...],
    provider: Provider,
    info: ModelInfo,
    now: datetime,
    values: Mapping[str, int],
    context: PriceContext | None = None,
) -> _Affine | None:
    """The affine form of ``price`` (``context``'s variant of the model's price) for usages
    reporting ``fields`` (``None``: not affine)."""
    key = (id(price), fields)
    entry = _forms.get(key)
    if entry is not None and entry[0] is price:
        return entry[1]
    try:
        form = _measure(price, fields, provider, info, now, context)
        if form is not None and form(values) != _library_cost(info, provider, now, values, context):
            form = None
    except Exception:  # the library rejects a probe: price call by call instead
        form = None
    _remember(_forms, key, (price, form))
    return form


def _measure(
    price: ModelPrice,
    fields: tuple[str, ...],
    provider: Provider,
    info: ModelInfo,
    now: datetime,
    context: PriceContext | None,
) -> _Affine | None:
    from genai_prices.types import TieredPrices

    if any(isinstance(v, TieredPrices) for v in vars(price).values()):
        return None  # the rate depends on the total input: not affine
    origin = {f: _PROBE_BASE.get(f, _PROBE_CACHE) for f in fields}
    base = _library_cost(info, provider, now, origin, context)
    if base is None:
        return None
    coefficients: dict[str, Decimal] = {}
    for f in fields:
        moved = _library_cost(info, provider, now, {**origin, f: origin[f] + _PROBE_STEP}, context)
        if moved is None:
            return None
        coefficients[f] = (moved - base) / _PROBE_STEP
    return _Affine(base, origin, coefficients)
