"""Replay speed: concurrency on a recorded session, and cascade planning on a long conversation.

Prints, measured in the same run:

1. wall time to replay a recorded session of ``--calls`` independent streamed calls (the real
   ``openai`` SDK recorded them against ``FakeLLMServer`` with ``--chunk-delay`` seconds per
   chunk, i.e. a slow provider) with ``--concurrency`` 1 (the baseline: the skeleton's
   sequential replay) and 2, 4, 8, and the speed-up ratio of each against the baseline;
2. cascade planning (:func:`spanreel.replay.prepare_replay`, pure) for a synthetic agent
   conversation of ``--turns`` calls where every request carries the whole history (so the
   number of assistant messages to match grows quadratically), against verbatim planning of
   the same spans as the baseline; time per call and per assistant message.

Run: ``python bench/replay.py [--calls 12] [--chunk-delay 0.01] [--turns 400]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from openai import OpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.replay import SpanRecord, prepare_replay, replay_spans
from spanreel.replay._load import record_from_span_row
from spanreel.replay._safety import RetryPolicy


def _record(llm: FakeLLMServer, calls: int) -> list[SpanRecord]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    client = OpenAI(base_url=llm.base_url, api_key="bench")
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        with tracer.start_as_current_span("batch"):
            for i in range(calls):
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": f"question {i}"}]
                )
                for _ in stream:
                    pass
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    return [_to_record(s) for s in memory.get_finished_spans()]


def _to_record(span: Any) -> SpanRecord:
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from spanreel.replay._otlp_file import decode_trace_document

    doc = json_format.MessageToDict(encode_spans([span]))
    (row,) = decode_trace_document(json.dumps(doc))
    return record_from_span_row(row)


def _conversation(turns: int) -> list[SpanRecord]:
    """``turns`` calls; call k's request holds the system prompt, k user messages and the k-1
    earlier answers."""
    spans = [record_from_span_row(_row("a" * 16, None, "agent", 0, {}))]
    history: list[dict[str, Any]] = [{"role": "system", "content": "be brief"}]
    for k in range(turns):
        history.append({"role": "user", "content": f"question {k}"})
        answer = f"answer number {k} with some words in it"
        attrs = {
            SPANREEL_REQUEST_BODY: json.dumps({"model": "m", "messages": history}),
            SPANREEL_REQUEST_URL: "https://api.openai.com/v1/chat/completions",
            "gen_ai.operation.name": "chat",
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
            ),
        }
        spans.append(record_from_span_row(_row(f"{k + 1:016x}", "a" * 16, "chat m", k + 1, attrs)))
        history.append({"role": "assistant", "content": answer})
    return spans


def _row(span_id: str, parent: str | None, name: str, start: int, attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": "b" * 32,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": "CLIENT",
        "service_name": "bench",
        "scope_name": "spanreel",
        "start_time_unix_nano": 1_000_000_000 + start * 1000,
        "end_time_unix_nano": 1_000_000_000 + start * 1000 + 500,
        "attributes": attrs,
        "operation": "chat" if attrs else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--chunk-delay", type=float, default=0.01)
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(f"1. replay of {args.calls} independent streamed calls (chunk delay {args.chunk_delay}s)")
    with FakeLLMServer(chunk_delay=args.chunk_delay) as llm:
        spans = _record(llm, args.calls)
        times: dict[int, float] = {}
        for concurrency in (1, 2, 4, 8):
            samples = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = replay_spans(
                    spans,
                    base_url=llm.base_url,
                    concurrency=concurrency,
                    span_exporter=InMemorySpanExporter(),
                    retry=RetryPolicy(max_retries=0),
                )
                samples.append(time.perf_counter() - t0)
                assert result.ok and all(c.output_changed is False for c in result.calls)
            times[concurrency] = statistics.median(samples)
        for concurrency, seconds in times.items():
            label = "baseline" if concurrency == 1 else f"{times[1] / seconds:.2f}x faster"
            print(f"   --concurrency {concurrency}: {seconds * 1000:8.1f} ms  ({label})")

    print(f"2. planning a {args.turns}-call conversation (every request carries the whole history)")
    convo = _conversation(args.turns)
    messages = args.turns * (args.turns - 1) // 2
    plan_times: dict[str, float] = {}
    for mode in ("verbatim", "cascade"):
        samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            plan = prepare_replay(convo, mode=mode)  # type: ignore[arg-type]
            samples.append(time.perf_counter() - t0)
        plan_times[mode] = statistics.median(samples)
        if mode == "cascade":
            assert len(plan.dependencies) == args.turns - 1
    base, cascade = plan_times["verbatim"], plan_times["cascade"]
    print(f"   verbatim plan (baseline): {base * 1000:8.1f} ms")
    print(
        f"   cascade plan:             {cascade * 1000:8.1f} ms  ({cascade / base:.2f}x the baseline; "
        f"{(cascade - base) / max(1, messages) * 1e6:.2f} µs per assistant message matched, "
        f"{messages} messages)"
    )


if __name__ == "__main__":
    main()
