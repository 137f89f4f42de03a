"""The debate app that ``spanreel demo`` runs in a child process.

It is ordinary ``openai`` SDK code: nothing here configures OpenTelemetry. spanreel records it only
because the parent starts it with ``SPANREEL_ENABLED=1`` (the start-up hook does the rest). The one
spanreel call, :func:`spanreel.session`, groups the calls into one session and one trace.

Environment: ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (read by the SDK),
``SPANREEL_DEMO_MODEL`` (debaters, default ``gpt-4o-mini``), ``SPANREEL_DEMO_JUDGE_MODEL``
(judge, default ``gpt-4.1-nano``), ``SPANREEL_DEMO_ROUNDS`` (default 2).
Prints the debate, then one machine-readable line ``SPANREEL_DEMO {"trace_id": …, "llm_calls": …}``.
"""

from __future__ import annotations

import json
import os
import sys

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import trace

import spanreel

TOPIC = "Cities should replace short-haul flights with high-speed rail."
SIDES = {
    "pro": "You argue FOR the motion. Be concise, concrete and persuasive; rebut the other side.",
    "con": "You argue AGAINST the motion. Be concise, concrete and persuasive; rebut the other side.",
}
JUDGE_SYSTEM = (
    "You are a strict, fair debate judge. Reply with one sentence of reasoning, then 'Score: N/10'."
)


def _argue(client: OpenAI, model: str, side: str, transcript: list[str], stream: bool) -> str:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SIDES[side]},
        {
            "role": "user",
            "content": f"Motion: {TOPIC}\nDebate so far:\n"
            + ("\n".join(transcript) if transcript else "(you open the debate)")
            + f"\nGive the {side.upper()} side's next argument in two or three sentences.",
        },
    ]
    print(f"\n[{side.upper()}] ", end="", flush=True)
    if not stream:
        reply = client.chat.completions.create(model=model, messages=messages, temperature=0.7)
        text = reply.choices[0].message.content or ""
        print(text, flush=True)
        return text
    parts: list[str] = []
    chunks = client.chat.completions.create(
        model=model,
        messages=messages,
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            print(chunk.choices[0].delta.content, end="", flush=True)
    print(flush=True)
    return "".join(parts)


def _judge(client: OpenAI, model: str, side: str, argument: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": JUDGE_SYSTEM},
            {
                "role": "user",
                "content": f"Score this {side.upper()} argument on the motion '{TOPIC}':\n{argument}",
            },
        ],
        temperature=0,
    )
    verdict = reply.choices[0].message.content or ""
    print(f"  [JUDGE] {verdict}", flush=True)
    return verdict


def main() -> int:
    model = os.environ.get("SPANREEL_DEMO_MODEL", "gpt-4o-mini")
    judge_model = os.environ.get("SPANREEL_DEMO_JUDGE_MODEL", "gpt-4.1-nano")
    rounds = int(os.environ.get("SPANREEL_DEMO_ROUNDS", "2"))
    client = OpenAI()
    transcript: list[str] = []
    calls = 0
    with spanreel.session("debate"):
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        print(f"Motion: {TOPIC}", flush=True)
        for round_no in range(rounds):
            for side in ("pro", "con"):
                argument = _argue(client, model, side, transcript, stream=(side == "pro"))
                transcript.append(f"{side.upper()} (round {round_no + 1}): {argument}")
                _judge(client, judge_model, side, argument)
                calls += 2
    print("SPANREEL_DEMO " + json.dumps({"trace_id": trace_id, "llm_calls": calls}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
