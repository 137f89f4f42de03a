"""Opt-in GenAI client metrics (OpenTelemetry GenAI semantic conventions, "Generative AI metrics"):

- ``gen_ai.client.token.usage`` — histogram, unit ``{token}``, one point per token type
  (``gen_ai.token.type`` = ``input`` / ``output``) for calls that reported usage; bucket
  boundaries [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
  16777216, 67108864];
- ``gen_ai.client.operation.duration`` — histogram, unit ``s``, one point per call (the whole
  stream for streamed calls); bucket boundaries [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
  1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]; ``error.type`` on failed calls.

Attributes: ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``server.address``, ``server.port`` (those the span has).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.metrics import Histogram, Meter, MeterProvider, get_meter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue

from spanreel import __version__

TOKEN_USAGE_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

_METRIC_KEYS = (
    ga.GEN_AI_OPERATION_NAME,
    ga.GEN_AI_PROVIDER_NAME,
    ga.GEN_AI_REQUEST_MODEL,
    ga.GEN_AI_RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
)
_TOKEN_TYPE_INPUT = ga.GenAiTokenTypeValues.INPUT.value
_TOKEN_TYPE_OUTPUT = ga.GenAiTokenTypeValues.OUTPUT.value


class GenAIMetrics:
    """The two GenAI client histograms on a meter (scope ``spanreel``)."""

    __slots__ = ("duration", "token_usage")

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter: Meter = get_meter("spanreel", __version__, meter_provider=meter_provider)
        self.token_usage: Histogram = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_USAGE_BUCKETS),
        )
        self.duration: Histogram = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def record(
        self, attributes: Mapping[str, AttributeValue], duration_s: float, error_type: str | None
    ) -> None:
        """Record one finished call from its span attributes."""
        base: dict[str, AttributeValue] = {k: attributes[k] for k in _METRIC_KEYS if k in attributes}
        timing = dict(base)
        if error_type is not None:
            timing[ERROR_TYPE] = error_type
        self.duration.record(duration_s, timing)
        for key, token_type in (
            (ga.GEN_AI_USAGE_INPUT_TOKENS, _TOKEN_TYPE_INPUT),
            (ga.GEN_AI_USAGE_OUTPUT_TOKENS, _TOKEN_TYPE_OUTPUT),
        ):
            value = attributes.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self.token_usage.record(value, {**base, ga.GEN_AI_TOKEN_TYPE: token_type})
