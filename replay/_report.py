"""The replay report: a rich table pairing each original LLM call with its replay, or JSON.

JSON shape (``spanreel replay --json``; flat ``original_*`` / ``new_*`` pairs so that
``jq '.calls[] | .new_output'`` and CI checks stay simple)::

    {
      "original_trace_id": "…32 hex…",
      "replay_trace_id": "…32 hex…" | null,          # null: nothing was replayable
      "edits": {"model": str | null, "system": str | null, "base_url": str | null},
      "calls": [
        {"index": 1, "name": "chat gpt-4o-mini",
         "status": "ok" | "error" | "skipped", "error": str | null, "skip_reason": str | null,
         "url": str | null, "http_status": int | null,
         "original_span_id": str, "new_span_id": str | null,
         "original_model": str | null, "new_model": str | null,
         "original_output": str | null, "new_output": str | null, "output_changed": bool | null,
         "original_input_tokens": int | null, "new_input_tokens": int | null,
         "original_output_tokens": int | null, "new_output_tokens": int | null,
         "original_latency_ms": float | null, "new_latency_ms": float | null,
         "original_finish_reasons": [str], "new_finish_reasons": [str],
         "original_status": "ok" | "error"}
      ],
      "totals": {"calls", "replayed", "skipped", "errors", "changed",
                 "original_input_tokens", "new_input_tokens", "original_output_tokens",
                 "new_output_tokens", "original_latency_ms", "new_latency_ms"},
      "export": {"endpoint": str, "ok": bool, "error": str | null} | null,
      "warnings": [str]
    }

Outputs are the text of ``gen_ai.output.messages`` (see :func:`spanreel.replay._execute.output_text`);
tokens are counts; latencies are span durations in milliseconds. Totals sum over replayed calls
only, so original and new figures compare like with like (``null`` when no call had the figure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ._execute import CallResult, CallSide, ReplayResult

__all__ = ["render_report", "report_to_json"]


def _sum(values: Iterable[int | float | None]) -> int | float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _totals(result: ReplayResult) -> dict[str, Any]:
    replayed = [c for c in result.calls if c.replay is not None]
    original = [c.original for c in replayed]
    new = [c.replay for c in replayed if c.replay is not None]
    return {
        "calls": len(result.calls),
        "replayed": len(replayed),
        "skipped": len(result.calls) - len(replayed),
        "errors": result.errors,
        "changed": sum(1 for c in replayed if c.output_changed),
        "original_input_tokens": _sum(s.input_tokens for s in original),
        "new_input_tokens": _sum(s.input_tokens for s in new),
        "original_output_tokens": _sum(s.output_tokens for s in original),
        "new_output_tokens": _sum(s.output_tokens for s in new),
        "original_latency_ms": _round(_sum(s.latency_ms for s in original)),
        "new_latency_ms": _round(_sum(s.latency_ms for s in new)),
    }


def _call_json(call: CallResult) -> dict[str, Any]:
    orig, new = call.original, call.replay
    return {
        "index": call.index,
        "name": call.name,
        "status": call.status,
        "error": new.error if new is not None else None,
        "skip_reason": call.skip_reason,
        "url": call.url,
        "http_status": call.http_status,
        "original_span_id": orig.span_id,
        "new_span_id": new.span_id if new else None,
        "original_model": orig.model,
        "new_model": new.model if new else None,
        "original_output": orig.output,
        "new_output": new.output if new else None,
        "output_changed": call.output_changed,
        "original_input_tokens": orig.input_tokens,
        "new_input_tokens": new.input_tokens if new else None,
        "original_output_tokens": orig.output_tokens,
        "new_output_tokens": new.output_tokens if new else None,
        "original_latency_ms": _round(orig.latency_ms),
        "new_latency_ms": _round(new.latency_ms) if new else None,
        "original_finish_reasons": list(orig.finish_reasons),
        "new_finish_reasons": list(new.finish_reasons) if new else [],
        "original_status": orig.status,
    }


def report_to_json(result: ReplayResult) -> dict[str, Any]:
    """The report as a JSON-safe dict (shape in the module docstring)."""
    return {
        "original_trace_id": result.original_trace_id,
        "replay_trace_id": result.replay_trace_id,
        "edits": {"model": result.edits.model, "system": result.edits.system, "base_url": result.base_url},
        "calls": [_call_json(c) for c in result.calls],
        "totals": _totals(result),
        "export": asdict(result.export) if result.export is not None else None,
        "warnings": list(result.warnings),
    }


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


def _status_text(call: CallResult) -> Text:
    if call.status == "skipped":
        return Text("skipped", style="yellow")
    if call.status == "error":
        return Text("error", style="bold red")
    if call.output_changed is None:
        return Text("ok", style="green")
    return Text("changed", style="cyan") if call.output_changed else Text("same", style="green")


def _output_cell(side: CallSide | None, fallback: str | None = None) -> Text:
    if side is None:
        return Text(fallback or "", style="yellow")
    if side.error and side.status == "error":
        return Text(side.error, style="red")
    if side.output is None:
        return Text("(not recorded)", style="dim")
    return Text(side.output)


def render_report(result: ReplayResult) -> Group:
    """A rich renderable: header, one row per call (outputs side by side, wrapped), totals."""
    header = Text.assemble(
        ("replay of ", "dim"),
        (result.original_trace_id, "bold"),
        (f"  ({result.root_name})", "dim"),
    )
    edits = [
        f"{name}={value!r}"
        for name, value in (
            ("base_url", result.base_url),
            ("model", result.edits.model),
            ("system", result.edits.system),
        )
        if value is not None
    ]
    if edits:
        header.append("\nedits: " + ", ".join(edits), style="dim")

    table = Table(show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("call", overflow="fold", ratio=1)
    table.add_column("original output", overflow="fold", ratio=3)
    table.add_column("new output", overflow="fold", ratio=3)
    table.add_column("tokens in/out", no_wrap=True)
    table.add_column("latency ms", no_wrap=True)
    table.add_column("finish", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for call in result.calls:
        orig, new = call.original, call.replay
        table.add_row(
            str(call.index),
            call.name,
            _output_cell(orig),
            _output_cell(new, f"not replayed: {call.skip_reason}"),
            _arrow(_tokens(orig), _tokens(new)),
            _arrow(orig.latency_ms, new.latency_ms if new else None, "{:.0f}"),
            _arrow(
                ",".join(orig.finish_reasons) or None,
                (",".join(new.finish_reasons) or None) if new else None,
            ),
            _status_text(call),
        )

    t = _totals(result)
    totals = Text.assemble(
        ("totals: ", "bold"),
        f"{t['replayed']}/{t['calls']} calls replayed, {t['changed']} changed, ",
        (f"{t['errors']} errors", "bold red" if t["errors"] else ""),
        f", {t['skipped']} skipped; tokens in "
        f"{_arrow(t['original_input_tokens'], t['new_input_tokens'])}, out "
        f"{_arrow(t['original_output_tokens'], t['new_output_tokens'])}; latency "
        f"{_arrow(t['original_latency_ms'], t['new_latency_ms'], '{:.0f}')} ms",
    )
    footer = Text.assemble(
        ("replay trace: ", "dim"),
        (result.replay_trace_id or "(none: nothing was replayed)", "bold"),
    )
    return Group(header, table, totals, footer)


def print_report(result: ReplayResult, console: Console) -> None:
    """Print :func:`render_report` to ``console``."""
    console.print(render_report(result))
