"""Speed of the offline tools: ``serve-recorded`` answering the ``openai`` SDK, the matcher, export.

Prints, measured in the same run (figures are medians of ``--repeat`` rounds):

1. SDK round trips per second against :class:`~spanreel.replay.RecordedServer` serving N recorded
   calls, beside the same SDK calls against :class:`~spanreel.fakellm.FakeLLMServer` (the
   baseline: a server that computes its answers), JSON and streamed;
2. the matcher on a recording of ``--recorded`` calls: a hit (canonical JSON + dict lookup) and a
   miss (closest-request search), in microseconds, beside ``json.loads`` of the same body;
3. export of ``--spans`` synthetic span rows to openai-jsonl, otlp-json and parquet, in spans per
   second, beside ``json.dumps`` of the same rows (the baseline).

Run: ``python bench/offline.py [--calls 200] [--recorded 2000] [--spans 20000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openai import OpenAI
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL
from spanreel.fakellm import FakeLLMServer, generate_answer
from spanreel.replay import RecordedServer, RecordingIndex, SpanRecord, exchanges_from_spans
from spanreel.replay._export import export_text, write_parquet
from spanreel.replay._messages import ApiShape

T0 = 1_795_308_420_000_000_000


def _body(i: int, history: int = 4) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are a careful debater."}]
    for turn in range(history):
        messages.append({"role": "user", "content": f"Question {i}.{turn}: tabs or spaces, and why?"})
        messages.append({"role": "assistant", "content": f"Answer {i}.{turn}: " + "spaces " * 40})
    messages.append({"role": "user", "content": f"Final question {i}?"})
    return {"model": "gpt-4o-mini", "temperature": 0.2, "messages": messages}


def _span(i: int, body: dict[str, Any]) -> SpanRecord:
    text = generate_answer(body)
    attrs = {
        SPANREEL_REQUEST_BODY: json.dumps(body),
        SPANREEL_REQUEST_URL: "https://api.openai.com/v1/chat/completions",
        ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}]
        ),
        ga.GEN_AI_RESPONSE_ID: f"chatcmpl-{i}",
        ga.GEN_AI_USAGE_INPUT_TOKENS: 100,
        ga.GEN_AI_USAGE_OUTPUT_TOKENS: len(text.split()),
    }
    start = T0 + i * 1_000_000
    return SpanRecord(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id=f"{i + 1:016x}",
        parent_span_id=None,
        name="chat gpt-4o-mini",
        kind="CLIENT",
        service_name="bench",
        start_time_ns=start,
        end_time_ns=start + 500_000,
        scope_name="spanreel",
        attributes=attrs,
        operation="chat",
    )


def _median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench_serving(calls: int, repeat: int) -> None:
    bodies = [_body(i) for i in range(calls)]
    exchanges, _ = exchanges_from_spans([_span(i, b) for i, b in enumerate(bodies)])

    def run(base_url: str, stream: bool) -> None:
        client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        for body in bodies:
            if stream:
                for _ in client.chat.completions.create(**body, stream=True):
                    pass
            else:
                client.chat.completions.create(**body)

    print(f"1. openai SDK round trips, {calls} distinct calls (sequential, one client)")
    with FakeLLMServer() as fake, RecordedServer(exchanges) as recorded:
        for stream in (False, True):
            run(fake.base_url, stream)  # warm up both
            run(recorded.openai_base_url, stream)
            base = calls / _median_seconds(lambda s=stream: run(fake.base_url, s), repeat)
            ours = calls / _median_seconds(lambda s=stream: run(recorded.openai_base_url, s), repeat)
            kind = "stream" if stream else "JSON  "
            print(
                f"   {kind}  FakeLLMServer (baseline) {base:7.0f} req/s   serve-recorded {ours:7.0f} req/s"
                f"   ratio {ours / base:.2f}"
            )


def bench_matcher(recorded: int, repeat: int) -> None:
    bodies = [_body(i) for i in range(recorded)]
    exchanges, _ = exchanges_from_spans([_span(i, b) for i, b in enumerate(bodies)])
    index = RecordingIndex(exchanges)
    probe = bodies[recorded // 2]
    raw = json.dumps(probe)
    miss = json.loads(raw)
    miss["messages"][-1]["content"] += " (changed)"
    n = 2000
    loads = _median_seconds(lambda: [json.loads(raw) for _ in range(n)], repeat) / n * 1e6
    hit = (
        _median_seconds(lambda: [index.answer(ApiShape.OPENAI_CHAT, probe) for _ in range(n)], repeat)
        / n
        * 1e6
    )
    closest = _median_seconds(lambda: index.closest(ApiShape.OPENAI_CHAT, miss), repeat) * 1e6
    found = index.closest(ApiShape.OPENAI_CHAT, miss)
    assert found is not None and found.exchange.index == recorded // 2 + 1
    print(f"2. matcher, {recorded} recorded calls, body {len(raw)} bytes")
    print(f"   json.loads of the body (baseline) {loads:8.1f} µs")
    print(f"   hit  (canonical JSON + lookup)    {hit:8.1f} µs   ratio {hit / loads:.1f}")
    print(f"   miss (closest-request search)     {closest:8.1f} µs   ratio {closest / loads:.0f}")


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        span = _span(i, _body(i % 50, history=1))
        rows.append(
            {
                "trace_id": f"{i // 10:032x}",
                "span_id": span.span_id,
                "parent_span_id": None,
                "trace_state": "",
                "name": span.name,
                "kind": span.kind,
                "service_name": "bench",
                "scope_name": "spanreel",
                "scope_version": "0.1.0",
                "start_time_unix_nano": span.start_time_ns,
                "end_time_unix_nano": span.end_time_ns,
                "duration_ns": span.duration_ns,
                "status_code": "UNSET",
                "status_message": "",
                "attributes": dict(span.attributes),
                "resource_attributes": {"service.name": "bench"},
                "events": [],
                "links": [],
                "operation": "chat",
                "provider": "openai",
                "request_model": "gpt-4o-mini",
                "response_model": "gpt-4o-mini",
                "input_tokens": 100,
                "output_tokens": 40,
                "finish_reasons": ["stop"],
                "session_id": None,
                "conversation_id": None,
                "received_at": span.end_time_ns // 1000,
            }
        )
    return rows


def bench_export(spans: int, repeat: int) -> None:
    rows = _rows(spans)
    base = spans / _median_seconds(lambda: json.dumps(rows), repeat)
    print(f"3. export of {spans} LLM span rows")
    print(f"   json.dumps of the rows (baseline) {base:9.0f} spans/s")
    for fmt in ("openai-jsonl", "otlp-json"):
        rate = spans / _median_seconds(lambda f=fmt: export_text(rows, f), repeat)
        print(f"   {fmt:<32} {rate:9.0f} spans/s   ratio {rate / base:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "spans.parquet"
        rate = spans / _median_seconds(lambda: write_parquet(rows, out), repeat)
        print(f"   {'parquet':<32} {rate:9.0f} spans/s   ratio {rate / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="SDK calls per serving round")
    parser.add_argument("--recorded", type=int, default=2000, help="recorded calls in the matcher benchmark")
    parser.add_argument("--spans", type=int, default=20000, help="span rows in the export benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    args = parser.parse_args()
    bench_serving(args.calls, args.repeat)
    bench_matcher(args.recorded, args.repeat)
    bench_export(args.spans, args.repeat)


if __name__ == "__main__":
    main()
