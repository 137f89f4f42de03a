"""Cost of peer-convention normalisation on the ingest path (``normalise_row``).

Prints rows/s of :func:`spanreel.collector._normalise.normalise_row` for span shapes the collector
sees — spanreel's own LLM spans, plain HTTP spans (no GenAI attribute: every lookup falls through
to the last peer source), and LLM spans from OpenInference, OpenLLMetry ≤ 0.54, OpenLIT, MLflow
and the anthropic SDK's own call span — beside a baseline measured in the same run: the same rows
through the OTel-names-only lookup the walking skeleton had. Also times ``normalise_messages`` /
``normalise_cost`` (on the ingest path for LLM calls only: the ``input_messages`` /
``output_messages`` / ``cost_usd`` columns).

Run: ``python bench/normalise_peers.py [--rows 20000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spanreel.collector._normalise import (
    LOOKUP_TABLES,
    Source,
    normalise_cost,
    normalise_messages,
    normalise_row,
)
from tests.test_collector_peers import (
    ANTHROPIC_SDK_MAX_TOKENS,
    MLFLOW_CHAT,
    OPENINFERENCE_CHAT,
    OPENLIT_CHAT,
    OPENLLMETRY_0_54_CHAT,
)

SPANREEL_CHAT: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 48,
    "server.address": "api.openai.com",
    "server.port": 443,
    "session.id": "s-1",
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"hello"}]}]',
    "spanreel.request.method": "POST",
    "spanreel.request.url": "https://api.openai.com/v1/chat/completions",
    "spanreel.request.body": '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
}
HTTP_CLIENT: dict[str, Any] = {
    "http.request.method": "POST",
    "url.full": "https://api.openai.com/v1/chat/completions",
    "server.address": "api.openai.com",
    "server.port": 443,
    "http.response.status_code": 200,
    "network.protocol.version": "1.1",
}
SHAPES = {
    "spanreel LLM span": SPANREEL_CHAT,
    "HTTP span (no GenAI)": HTTP_CLIENT,
    "OpenInference LLM": OPENINFERENCE_CHAT,
    "OpenLLMetry 0.54 LLM": OPENLLMETRY_0_54_CHAT,
    "OpenLIT LLM": OPENLIT_CHAT,
    "MLflow LLM": MLFLOW_CHAT,
    "anthropic SDK call span": ANTHROPIC_SDK_MAX_TOKENS,
}

# The skeleton's lookup: OTel GenAI names (and deprecated ones) only.
_OTEL_ONLY = {
    column: tuple(s for s in sources if isinstance(s, Source) and s.key.startswith(("gen_ai.", "session.id")))
    for column, sources in LOOKUP_TABLES.items()
}


def _baseline_row(row: dict[str, Any]) -> dict[str, Any]:
    attrs, resource = row["attributes"], row["resource_attributes"]
    for column, sources in _OTEL_ONLY.items():
        value = None
        for source in sources:
            value = source.read(attrs, resource)
            if value is not None:
                break
        row[column] = value
    return row


def _batch(attrs: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    return [
        {"attributes": copy.deepcopy(attrs), "resource_attributes": {"service.name": "x"}}
        for _ in range(rows)
    ]


def _once(fn: Callable[[dict[str, Any]], Any], batch: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for row in batch:
        fn(row)
    return len(batch) / (time.perf_counter() - t0)


def _rates(
    fns: list[Callable[[dict[str, Any]], Any]], attrs: dict[str, Any], rows: int, repeat: int
) -> list[float]:
    """Median rows/s of each function, runs interleaved so machine load hits them alike."""
    batch = _batch(attrs, rows)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            samples[i].append(_once(fn, batch))
    return [statistics.median(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"normalise_row, rows/s (median of {args.repeat} interleaved runs of {args.rows} rows; one thread)")
    print(f"{'span shape':<24} {'OTel-only baseline':>20} {'with peers':>12} {'ratio':>7}")
    for label, attrs in SHAPES.items():
        base, new = _rates([_baseline_row, normalise_row], attrs, args.rows, args.repeat)
        print(f"{label:<24} {base:>20,.0f} {new:>12,.0f} {new / base:>7.2f}")
    print("\nLLM calls only (input_messages, output_messages, cost_usd), calls/s:")
    for label, attrs in SHAPES.items():
        msgs, cost = _rates(
            [
                lambda row: normalise_messages(row["attributes"]),
                lambda row: normalise_cost(row["attributes"]),
            ],
            attrs,
            args.rows // 4,
            args.repeat,
        )
        print(f"{label:<24} normalise_messages {msgs:>10,.0f}   normalise_cost {cost:>10,.0f}")


if __name__ == "__main__":
    main()
