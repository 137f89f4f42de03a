"""Cascade planning (pure): which recorded call's output each later request contains.

A later request *depends on* an earlier call when one of its assistant messages is that call's
recorded output (:func:`spanreel.replay._messages.turn_matches`: the same tool call ids, else the
same tool calls, else the same text). In cascade mode the replay substitutes the earlier call's
*new* output there, so a change flows through the conversation; the dependent call waits for
its sources. When several earlier calls produced the same output, the latest one before the
later call is the source. Calls without dependencies can run concurrently.

Detection is by content match, indexed by tool call id, tool-call signature and normalised text,
so planning a session of *n* calls with *m* assistant messages in total costs O(n + m).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_OUTPUT_MESSAGES

from ._messages import (
    ApiShape,
    ModelOutput,
    ToolCall,
    assistant_turns,
    canonical_arguments,
    detect_shape,
    outputs_from_attribute,
    turn_matches,
)
from ._plan import PlannedCall

__all__ = ["Dependency", "find_dependencies", "recorded_outputs", "request_shape", "waves"]


@dataclass(frozen=True, slots=True)
class Dependency:
    """Call ``source`` (an index) produced, as choice ``choice``, the assistant message at
    ``message_index`` of a later call's request."""

    message_index: int
    source: int
    choice: int = 0


def recorded_outputs(call: PlannedCall) -> list[ModelOutput]:
    """The recorded output of a call, one :class:`ModelOutput` per choice (``[]`` if not captured)."""
    return outputs_from_attribute(call.span.attributes.get(GEN_AI_OUTPUT_MESSAGES))


def request_shape(call: PlannedCall) -> ApiShape | None:
    """The wire shape of a call's recorded request (``None``: not replayable or not a chat body)."""
    if call.request is None:
        return None
    return detect_shape(call.request.json_body, call.request.url, call.span.provider)


def _calls_key(calls: Sequence[ToolCall]) -> str:
    return "\x1f".join(f"{c.name}\x1e{canonical_arguments(c.arguments)}" for c in calls)


def _text_key(text: str | None) -> str:
    return " ".join((text or "").split())


def find_dependencies(calls: Sequence[PlannedCall]) -> dict[int, tuple[Dependency, ...]]:
    """For each replayable call (by index), the earlier calls its request contains, one
    :class:`Dependency` per matched assistant message, in message order. Calls without any are
    absent from the result. ``calls``: the plan in start-time order (:func:`plan_calls`)."""
    by_id: dict[str, tuple[int, int]] = {}
    by_calls: dict[str, tuple[int, int]] = {}
    by_text: dict[str, tuple[int, int]] = {}
    outputs: dict[int, list[ModelOutput]] = {}
    result: dict[int, tuple[Dependency, ...]] = {}
    for call in calls:
        shape = request_shape(call)
        if shape is not None:
            deps: list[Dependency] = []
            for turn in assistant_turns(call.request.json_body if call.request else None, shape):
                found = _lookup(turn.output, by_id, by_calls, by_text)
                if found is None:
                    continue
                source, choice = found
                if turn_matches(turn.output, outputs[source][choice]):
                    deps.append(Dependency(turn.message_index, source, choice))
            if deps:
                result[call.index] = tuple(deps)
        # index this call's output for later calls (a later duplicate overrides: latest wins)
        outputs[call.index] = recorded_outputs(call)
        for choice, out in enumerate(outputs[call.index]):
            for tc in out.tool_calls:
                if tc.id:
                    by_id[tc.id] = (call.index, choice)
            if out.tool_calls:
                by_calls[_calls_key(out.tool_calls)] = (call.index, choice)
            elif _text_key(out.text):
                by_text[_text_key(out.text)] = (call.index, choice)
    return result


def _lookup(
    turn: ModelOutput,
    by_id: Mapping[str, tuple[int, int]],
    by_calls: Mapping[str, tuple[int, int]],
    by_text: Mapping[str, tuple[int, int]],
) -> tuple[int, int] | None:
    if turn.tool_calls:
        for tc in turn.tool_calls:
            if tc.id and tc.id in by_id:
                return by_id[tc.id]
        return by_calls.get(_calls_key(turn.tool_calls))
    key = _text_key(turn.text)
    return by_text.get(key) if key else None


def waves(calls: Sequence[PlannedCall], deps: Mapping[int, Sequence[Dependency]]) -> dict[int, int]:
    """Each call's *wave*: 1 + the largest wave among its sources (1 without sources). Calls of
    one wave are independent of each other."""
    wave: dict[int, int] = {}
    for call in calls:
        sources = [d.source for d in deps.get(call.index, ())]
        wave[call.index] = 1 + max((wave.get(s, 1) for s in sources), default=0)
    return wave
