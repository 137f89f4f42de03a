"""The replay report: each original LLM call beside its replay — a rich table, or JSON — and the
CI verdict (``--fail-on``).

JSON shape (``spanreel replay --json``; flat ``original_*`` / ``new_*`` pairs so that
``jq '.calls[] | .new_output'`` and CI checks stay simple; docs/internals.md §4)::

    {
      "original_trace_id": "…32 hex…",                 # the first original trace
      "original_trace_ids": ["…"],                      # all of them (a session has several)
      "session_id": str | null,
      "replay_trace_id": "…32 hex…" | null,             # null: nothing was replayable
      "mode": "verbatim" | "cascade",
      "edits": {"model", "system", "system_append", "set": {…}, "only": [glob], "hook", "base_url"},
      "calls": [
        {"index": 1, "name": "chat gpt-4o-mini", "path": "agent/step 1/chat gpt-4o-mini",
         "trace_id": str, "status": "ok" | "error" | "skipped", "error": str | null,
         "skip_reason": str | null, "url": str | null, "http_status": int | null, "attempts": int,
         "original_span_id": str, "new_span_id": str | null,
         "original_model": str | null, "new_model": str | null,
         "original_output": str | null, "new_output": str | null, "output_changed": bool | null,
         "original_output_truncated": bool,             # recorded, but cut at record time (null output)
         "similarity": float | null,                    # 0..1, word-level; null when unknown
         "changed": bool | null,                        # similarity < similarity_threshold
         "diff": str | null,                            # unified diff original → new (null if equal)
         "original_input_tokens", "new_input_tokens", "input_tokens_delta",
         "original_output_tokens", "new_output_tokens", "output_tokens_delta": int | null,
         "original_latency_ms", "new_latency_ms", "latency_delta_ms": float | null,
         "original_cost_usd", "new_cost_usd", "cost_delta_usd": float | null,
         "original_finish_reasons": [str], "new_finish_reasons": [str], "finish_reason_changed": bool | null,
         "original_status": "ok" | "error", "depends_on": [int], "edited": bool,
         "divergences": [str], "notes": [str]}
      ],
      "totals": {"calls", "replayed", "skipped", "errors", "changed", "diverged",
                 "original_input_tokens", "new_input_tokens", "input_tokens_delta",
                 "original_output_tokens", "new_output_tokens", "output_tokens_delta",
                 "original_latency_ms", "new_latency_ms", "latency_delta_ms",
                 "original_cost_usd", "new_cost_usd", "cost_delta_usd",
                 "compared_calls": {"input_tokens", "output_tokens", "latency_ms", "cost_usd": int},
                 "mean_similarity"},
      "verdict": {"fail_on": "error" | "changed" | "never", "similarity_threshold": float,
                  "failed": bool, "reasons": [str]},
      "export": {"endpoint": str, "ok": bool, "error": str | null} | null,
      "warnings": [str]
    }

Outputs are the text of ``gen_ai.output.messages`` (see :func:`spanreel.replay._result.output_text`).
In ``totals``, ``replayed`` counts the calls whose replay succeeded, ``errors`` those sent (or
attempted) that failed, ``skipped`` those not replayable: ``calls`` = ``replayed`` + ``errors`` +
``skipped``.
URLs (``url``, ``edits.base_url``) are shown without credentials (user-info, key/token query
parameters); a failed call's ``error`` names the method and URL it tried. Tokens are counts;
latencies are milliseconds: the original span's duration, and the whole time the replayed call
took — with retries (``attempts`` > 1) from the first attempt's start to the last one's end,
waits included; costs US dollars (recorded on the span, else estimated with genai-prices).
Deltas are new − original; a call whose replay failed has no deltas (``null``). Each total sums
over the calls whose replay succeeded *and* that have the figure on both sides (a streamed
replay without usage has no new tokens, an unknown model no cost), so original and new figures
compare like with like; ``compared_calls`` says how many calls each figure covers (the text
report adds ``(1 of 2 calls)`` when not all) and the figures are ``null`` when it is 0.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from spanreel.instrumentation._http import sanitize_url

from ._cost import format_usd
from ._result import CallResult, CallSide, ReplayResult

__all__ = [
    "FailOn",
    "Verdict",
    "judge",
    "output_diff",
    "render_report",
    "report_to_json",
    "similarity",
]

FailOn = Literal["error", "changed", "never"]
#: Lines of each diff shown in the terminal report (the JSON always has the whole diff).
DIFF_LINES_SHOWN = 40


def _words(text: str) -> list[str]:
    return text.split()


def similarity(original: str | None, new: str | None) -> float | None:
    """How alike two outputs are, from 0.0 to 1.0: :class:`difflib.SequenceMatcher`'s ratio over
    their words (whitespace-insensitive; 1.0 for identical word sequences, also both empty).
    ``None`` when either is unknown."""
    if original is None or new is None:
        return None
    a, b = _words(original), _words(new)
    if a == b:
        return 1.0
    return round(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), 4)


def output_diff(original: str | None, new: str | None) -> str | None:
    """Unified diff (line-based, ``--- original`` / ``+++ replay``) or ``None`` when the texts
    are equal or either is unknown."""
    if original is None or new is None or original == new:
        return None
    lines = difflib.unified_diff(
        original.splitlines(), new.splitlines(), "original", "replay", lineterm="", n=2
    )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The CI outcome: ``failed`` and why (one line per reason)."""

    fail_on: FailOn
    similarity_threshold: float
    failed: bool
    reasons: tuple[str, ...]


def _changed(call: CallResult, threshold: float) -> bool | None:
    if call.replay is None or call.replay.status != "ok":
        return None
    score = similarity(call.original.output, call.replay.output)
    return None if score is None else score < threshold


def judge(result: ReplayResult, fail_on: FailOn = "error", similarity_threshold: float = 1.0) -> Verdict:
    """Whether the replay fails a CI check. ``fail_on``: ``"error"`` — a replayed call failed, or
    no call was replayed at all (every call skipped, or none found: the check compared nothing);
    ``"changed"`` — that, or a replayed output's :func:`similarity` to the original is below
    ``similarity_threshold`` (0..1; 1.0 means any change fails); ``"never"``."""
    reasons: list[str] = []
    if fail_on != "never" and not any(c.replay is not None for c in result.calls):
        reasons.append(_nothing_replayed(result))
    if fail_on != "never":
        for call in result.calls:
            if call.status == "error":
                reasons.append(
                    f"call {call.index} ({call.name}) failed: {call.replay.error if call.replay else ''}"
                )
    if fail_on == "changed":
        for call in result.calls:
            if _changed(call, similarity_threshold):
                score = similarity(call.original.output, call.replay.output if call.replay else None) or 0.0
                reasons.append(
                    f"call {call.index} ({call.name}) changed: "
                    f"similarity {score:.2f} < {similarity_threshold:g}"
                )
    return Verdict(fail_on, similarity_threshold, bool(reasons), tuple(reasons))


def _nothing_replayed(result: ReplayResult) -> str:
    """The verdict's reason when no call was sent: a check that compared nothing proves nothing."""
    if not result.calls:
        return "nothing was replayed: no LLM calls"
    reasons = sorted({c.skip_reason or "not replayable" for c in result.calls})
    shown = "; ".join(reasons[:3]) + (f"; … {len(reasons) - 3} more reasons" if len(reasons) > 3 else "")
    n = len(result.calls)
    return f"nothing was replayed: {n} of {n} call{'s' if n != 1 else ''} skipped ({shown})"


def _sum(values: Iterable[int | float | None]) -> int | float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _shown_url(url: str | None) -> str | None:
    return None if url is None else sanitize_url(url)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _delta(a: float | None, b: float | None, digits: int | None = None) -> Any:
    if a is None or b is None:
        return None
    return b - a if digits is None else round(b - a, digits)


#: The figures totalled: (CallSide attribute, totals key stem, delta key, decimal places or None).
_FIGURES: tuple[tuple[str, str, str, int | None], ...] = (
    ("input_tokens", "input_tokens", "input_tokens_delta", None),
    ("output_tokens", "output_tokens", "output_tokens_delta", None),
    ("latency_ms", "latency_ms", "latency_delta_ms", 3),
    ("cost_usd", "cost_usd", "cost_delta_usd", 8),
)


def _totals(result: ReplayResult, threshold: float) -> dict[str, Any]:
    replayed = [c for c in result.calls if c.replay is not None]
    succeeded = [c for c in replayed if c.status == "ok"]  # failed calls have no new figures
    scores = [
        s
        for c in replayed
        if (s := similarity(c.original.output, c.replay.output if c.replay else None)) is not None
    ]
    t: dict[str, Any] = {
        "calls": len(result.calls),
        "replayed": len(succeeded),
        "skipped": len(result.calls) - len(replayed),
        "errors": result.errors,
        "changed": sum(1 for c in replayed if _changed(c, threshold)),
        "diverged": sum(1 for c in replayed if c.divergences),
    }
    compared: dict[str, int] = {}
    for attr, stem, delta_key, digits in _FIGURES:
        # only the calls with the figure on both sides: a sum over other calls invents a delta
        pairs = [
            (a, b)
            for c in succeeded
            if c.replay is not None
            and (a := getattr(c.original, attr)) is not None
            and (b := getattr(c.replay, attr)) is not None
        ]
        compared[stem] = len(pairs)
        original, new = _sum(a for a, _ in pairs), _sum(b for _, b in pairs)
        if digits is not None:
            original, new = _round(original, digits), _round(new, digits)
        t[f"original_{stem}"], t[f"new_{stem}"] = original, new
        t[delta_key] = _delta(original, new, digits)
    t["compared_calls"] = compared
    t["mean_similarity"] = round(sum(scores) / len(scores), 4) if scores else None
    return t


def _call_json(call: CallResult, threshold: float) -> dict[str, Any]:
    orig, new = call.original, call.replay
    compared = new if new is not None and new.status == "ok" else None  # deltas of a success only
    new_finish = list(new.finish_reasons) if new else []
    return {
        "index": call.index,
        "name": call.name,
        "path": call.path,
        "trace_id": call.trace_id,
        "status": call.status,
        "error": new.error if new is not None else None,
        "skip_reason": call.skip_reason,
        "url": _shown_url(call.url),
        "http_status": call.http_status,
        "attempts": call.attempts,
        "original_span_id": orig.span_id,
        "new_span_id": new.span_id if new else None,
        "original_model": orig.model,
        "new_model": new.model if new else None,
        "original_output": orig.output,
        "original_output_truncated": orig.output_truncated,
        "new_output": new.output if new else None,
        "output_changed": call.output_changed,
        "similarity": similarity(orig.output, new.output) if new else None,
        "changed": _changed(call, threshold),
        "diff": output_diff(orig.output, new.output) if new else None,
        "original_input_tokens": orig.input_tokens,
        "new_input_tokens": new.input_tokens if new else None,
        "input_tokens_delta": _delta(orig.input_tokens, compared.input_tokens) if compared else None,
        "original_output_tokens": orig.output_tokens,
        "new_output_tokens": new.output_tokens if new else None,
        "output_tokens_delta": _delta(orig.output_tokens, compared.output_tokens) if compared else None,
        "original_latency_ms": _round(orig.latency_ms),
        "new_latency_ms": _round(new.latency_ms) if new else None,
        "latency_delta_ms": _delta(orig.latency_ms, compared.latency_ms, 3) if compared else None,
        "original_cost_usd": _round(orig.cost_usd, 8),
        "new_cost_usd": _round(new.cost_usd, 8) if new else None,
        "cost_delta_usd": _delta(orig.cost_usd, compared.cost_usd, 8) if compared else None,
        "original_finish_reasons": list(orig.finish_reasons),
        "new_finish_reasons": new_finish,
        "finish_reason_changed": (list(orig.finish_reasons) != new_finish)
        if new and new.status == "ok"
        else None,
        "original_status": orig.status,
        "depends_on": list(call.depends_on),
        "edited": call.edited,
        "divergences": list(call.divergences),
        "notes": list(call.notes),
    }


def report_to_json(
    result: ReplayResult, *, fail_on: FailOn = "error", similarity_threshold: float = 1.0
) -> dict[str, Any]:
    """The report as a JSON-safe dict (shape in the module docstring)."""
    verdict = judge(result, fail_on, similarity_threshold)
    return {
        "original_trace_id": result.original_trace_id,
        "original_trace_ids": list(result.original_trace_ids or (result.original_trace_id,)),
        "session_id": result.session_id,
        "replay_trace_id": result.replay_trace_id,
        "mode": result.mode,
        "edits": {**result.edits.describe(), "base_url": _shown_url(result.base_url)},
        "calls": [_call_json(c, similarity_threshold) for c in result.calls],
        "totals": _totals(result, similarity_threshold),
        "verdict": {
            "fail_on": verdict.fail_on,
            "similarity_threshold": verdict.similarity_threshold,
            "failed": verdict.failed,
            "reasons": list(verdict.reasons),
        },
        "export": asdict(result.export) if result.export is not None else None,
        "warnings": list(result.warnings),
    }


# --------------------------------------------------------------------------- terminal


def _arrow(a: Any, b: Any, fmt: str = "{}") -> str:
    left = "—" if a is None else fmt.format(a)
    right = "—" if b is None else fmt.format(b)
    return left if left == right and b is not None else f"{left} → {right}"


def _tokens(side: CallSide | None) -> str | None:
    if side is None or (side.input_tokens is None and side.output_tokens is None):
        return None
    i = "?" if side.input_tokens is None else side.input_tokens
    o = "?" if side.output_tokens is None else side.output_tokens
    return f"{i}/{o}"


def _latency_cell(call: CallResult) -> Text:
    """Original → new latency (ms); a failed replay has no figure to compare (``failed``), a
    retried one says how many attempts its figure covers."""
    orig, new = call.original, call.replay
    if new is not None and new.status == "error":
        left = "—" if orig.latency_ms is None else f"{orig.latency_ms:.0f}"
        return Text.assemble(f"{left} → ", ("failed", "red"))
    text = Text(_arrow(orig.latency_ms, new.latency_ms if new else None, "{:.0f}"))
    if new is not None and call.attempts > 1:
        text.append(f"\n{call.attempts} attempts", style="dim")
    return text


def _status_text(call: CallResult, threshold: float) -> Text:
    if call.status == "skipped":
        return Text("skipped", style="yellow")
    if call.status == "error":
        return Text("error", style="bold red")
    score = similarity(call.original.output, call.replay.output if call.replay else None)
    if score is None:
        return Text("ok", style="green")
    label = Text("changed" if score < threshold else "same", style="cyan" if score < threshold else "green")
    if score < 1.0:
        label.append(f" {score:.2f}", style="dim")
    if call.divergences:
        label.append("\ndiverged", style="magenta")
    return label


def _output_cell(side: CallSide | None, fallback: str | None = None) -> Text:
    if side is None:
        return Text(fallback or "", style="yellow")
    if side.error and side.status == "error":
        return Text(side.error, style="red")
    if side.output is None and side.output_truncated:
        return Text("(recorded, but truncated at record time: SPANREEL_CAPTURE_MAX_BYTES)", style="dim")
    if side.output is None:
        return Text("(not recorded)", style="dim")
    return Text(side.output)


def _call_label(call: CallResult) -> Text:
    text = Text(call.name)
    if call.depends_on:
        text.append(f"\n← {', '.join(map(str, call.depends_on))}", style="dim")
    if call.edited:
        text.append("\nedited", style="dim")
    return text


def _diff_block(call: CallResult) -> RenderableType | None:
    diff = output_diff(call.original.output, call.replay.output) if call.replay else None
    extra = [*call.divergences, *call.notes]
    if diff is None and not extra:
        return None
    out = Text()
    out.append(f"call {call.index} · {call.path or call.name}\n", style="bold")
    for line in extra:
        out.append(f"  ! {line}\n", style="magenta")
    if diff is not None:
        lines = diff.splitlines()
        for line in lines[:DIFF_LINES_SHOWN]:
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "cyan"
                if line.startswith("@@")
                else ""
            )
            out.append(line + "\n", style=style)
        if len(lines) > DIFF_LINES_SHOWN:
            out.append(f"  … {len(lines) - DIFF_LINES_SHOWN} more diff lines (--json has all)\n", style="dim")
    return out


def _total_figure(t: dict[str, Any], stem: str, unit: str = "") -> str:
    """``original → new`` of a total, over the calls with the figure on both sides: ``(1 of 2
    calls)`` when that is not every replayed call, ``unknown`` when it is none."""
    covered, replayed = t["compared_calls"][stem], t["replayed"]
    if not covered:
        return "unknown"
    original, new = t[f"original_{stem}"], t[f"new_{stem}"]
    if stem == "cost_usd":
        text = _arrow(format_usd(original), format_usd(new))
    elif stem == "latency_ms":
        text = _arrow(original, new, "{:.0f}")
    else:
        text = _arrow(original, new)
    text += unit
    return text if covered == replayed else f"{text} ({covered} of {replayed} calls)"


def render_report(
    result: ReplayResult, *, fail_on: FailOn = "error", similarity_threshold: float = 1.0, diffs: bool = True
) -> Group:
    """A rich renderable: header, one row per call (outputs side by side), diffs of changed calls
    and divergences (``diffs``), totals and the verdict."""
    what = f"session {result.session_id}" if result.session_id else result.original_trace_id
    header = Text.assemble(
        ("replay of ", "dim"), (what, "bold"), (f"  ({result.root_name}, {result.mode})", "dim")
    )
    edits = {**result.edits.describe(), "base_url": _shown_url(result.base_url)}
    shown = [f"{k}={v!r}" for k, v in edits.items() if v not in (None, [], {})]
    if shown:
        header.append("\nedits: " + ", ".join(shown), style="dim")

    table = Table(show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("call", overflow="fold", ratio=1)
    table.add_column("original output", overflow="fold", ratio=3)
    table.add_column("new output", overflow="fold", ratio=3)
    table.add_column("tokens in/out", no_wrap=True)
    table.add_column("latency ms", no_wrap=True)
    table.add_column("cost", no_wrap=True)
    table.add_column("finish", no_wrap=True)
    table.add_column("status", no_wrap=True)
    blocks: list[RenderableType] = []
    for call in result.calls:
        orig, new = call.original, call.replay
        table.add_row(
            str(call.index),
            _call_label(call),
            _output_cell(orig),
            _output_cell(new, f"not replayed: {call.skip_reason}"),
            _arrow(_tokens(orig), _tokens(new)),
            _latency_cell(call),
            _arrow(format_usd(orig.cost_usd), format_usd(new.cost_usd) if new else None),
            _arrow(
                ",".join(orig.finish_reasons) or None,
                (",".join(new.finish_reasons) or None) if new else None,
            ),
            _status_text(call, similarity_threshold),
        )
        if diffs:
            block = _diff_block(call)
            if block is not None:
                blocks.append(block)

    t = _totals(result, similarity_threshold)
    totals = Text.assemble(
        ("totals: ", "bold"),
        f"{t['replayed']}/{t['calls']} calls replayed, ",
        (f"{t['errors']} failed", "bold red" if t["errors"] else ""),
        f", {t['changed']} changed, {t['skipped']} skipped",
    )
    if t["replayed"]:  # figures of the calls replayed (succeeded) with the figure on both sides
        totals.append(
            f"; tokens in {_total_figure(t, 'input_tokens')}, out {_total_figure(t, 'output_tokens')}"
            f"; latency {_total_figure(t, 'latency_ms', ' ms')}"
        )
        any_cost = any(
            c.original.cost_usd is not None or (c.replay is not None and c.replay.cost_usd is not None)
            for c in result.calls
            if c.status == "ok"
        )
        if any_cost:
            totals.append(f"; cost {_total_figure(t, 'cost_usd')}")
    if t["diverged"]:
        totals.append(f"; {t['diverged']} diverged (tool calls)", style="magenta")
    parts: list[RenderableType] = [header, table, *blocks, totals]
    verdict = judge(result, fail_on, similarity_threshold)
    if verdict.failed:
        parts.append(Text(f"FAILED (--fail-on {fail_on}): " + "; ".join(verdict.reasons), style="bold red"))
    parts.append(
        Text.assemble(
            ("replay trace: ", "dim"),
            (result.replay_trace_id or "(none: nothing was replayed)", "bold"),
        )
    )
    return Group(*parts)


def print_report(result: ReplayResult, console: Console, **options: Any) -> None:
    """Print :func:`render_report` to ``console``."""
    console.print(render_report(result, **options))
