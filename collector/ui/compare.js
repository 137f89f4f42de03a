// The replay comparison: a replay and its original side by side, changed outputs highlighted.
import { getJSON } from "./api.js";
import { renderMessage } from "./chat.js";
import { h, link, pill, replace } from "./dom.js";
import { diffWords } from "./diff.js";
import { DASH, fmtCost, fmtDuration, fmtInt, fmtTime, shortId } from "./format.js";
import { facts } from "./trace.js";

/** Output text with the words only on this side marked (side: "del" for original, "add" for replay). */
function diffText(pieces, side) {
  return h(
    "div",
    { class: "diff-text" },
    pieces.filter((p) => p.op === "same" || p.op === side).map((p) => (p.op === "same" ? p.text : h(side === "del" ? "del" : "ins", { class: `diff-${side}` }, p.text))),
  );
}

function sideFacts(side) {
  return h(
    "div",
    { class: "side-facts" },
    h("span", {}, side.model || DASH),
    h("span", {}, fmtDuration(side.duration_ns)),
    h("span", {}, `${fmtInt(side.input_tokens)} in · ${fmtInt(side.output_tokens)} out`),
    side.cost_usd !== null && side.cost_usd !== undefined ? h("span", {}, fmtCost(side.cost_usd)) : null,
    side.finish_reasons && side.finish_reasons.length ? h("span", {}, side.finish_reasons.join(", ")) : null,
    side.status_code === "ERROR" ? pill("error", "error", side.status_message) : null,
  );
}

function inputText(side) {
  return side.input.map((m) => `${m.role}: ${m.parts.map((p) => p.content ?? p.arguments ?? p.response ?? "").join("\n")}`).join("\n\n");
}

function callCard(call, originalId, replayId) {
  const o = call.original;
  const r = call.replay;
  let badge;
  if (!r) badge = pill("not replayed", "warn");
  else if (call.failed) badge = pill("replay failed", "error", call.error);
  else badge = call.output_changed ? pill("output changed", "accent") : pill("same output", "ok");
  const title = (o || r).name;
  let left = h("p", { class: "muted" }, "Not stored.");
  let right = h("p", { class: "muted" }, "This call was not replayed (its request was not recorded, e.g. content capture was off).");
  if (o && r && call.failed) {
    left = h("div", { class: "diff-text" }, o.output_text ?? DASH);
    right = h("p", { class: "replay-error" }, call.error);
  } else if (o && r) {
    const pieces = call.output_changed ? diffWords(o.output_text ?? "", r.output_text ?? "") : null;
    left = pieces ? diffText(pieces, "del") : h("div", { class: "diff-text" }, o.output_text ?? DASH);
    right = pieces ? diffText(pieces, "add") : h("div", { class: "diff-text" }, r.output_text ?? DASH);
  } else if (o) {
    left = h("div", { class: "diff-text" }, o.output_text ?? DASH);
  } else if (r) {
    right = call.failed ? h("p", { class: "replay-error" }, call.error) : h("div", { class: "diff-text" }, r.output_text ?? DASH);
  }
  const column = (side, traceId, body, label) =>
    h(
      "div",
      { class: "compare-col" },
      h("div", { class: "compare-col-head" }, h("span", { class: "compare-label" }, label), side ? link(`#/trace/${encodeURIComponent(traceId)}?span=${encodeURIComponent(side.span_id)}`, "open span", { class: "small" }) : null),
      side ? sideFacts(side) : null,
      body,
    );
  let inputs = null;
  if (o && r && call.input_changed) {
    const pieces = diffWords(inputText(o), inputText(r));
    inputs = h(
      "details",
      { class: "input-diff" },
      h("summary", {}, "The request changed — show the input messages"),
      h("div", { class: "compare-grid" }, h("div", { class: "compare-col" }, pieces ? diffText(pieces, "del") : o.input.map(renderMessage)), h("div", { class: "compare-col" }, pieces ? diffText(pieces, "add") : r.input.map(renderMessage))),
    );
  }
  return h(
    "section",
    { class: `card compare-call${call.output_changed ? " changed" : ""}`, dataset: { index: String(call.index) } },
    h("div", { class: "compare-call-head" }, h("span", { class: "step" }, String(call.index)), h("strong", {}, title), badge, call.input_changed ? pill("input changed", "neutral") : null),
    h("div", { class: "compare-grid" }, column(o, originalId, left, "Original"), column(r, replayId, right, "Replay")),
    inputs,
  );
}

/**
 * One total, original → replay, over the calls replayed with the figure on both sides (as the
 * `spanreel replay` report): "(1 of 2 calls)" when not every replayed call, "unknown" when none.
 */
function totalFigure(t, key, format) {
  const covered = t.compared_calls[key];
  if (!covered) return "unknown";
  const text = `${format(t[`original_${key}`])} → ${format(t[`new_${key}`])}`;
  return covered === t.replayed ? text : `${text} (${covered} of ${t.replayed} calls)`;
}

function comparedTotals(t) {
  if (!t.replayed) return h("p", { class: "muted compare-totals" }, "No call was replayed successfully: no totals to compare.");
  return h(
    "div",
    { class: "compare-totals" },
    h("h3", {}, "Totals of the calls replayed (original → replay)"),
    facts([
      ["Tokens in", totalFigure(t, "input_tokens", fmtInt)],
      ["Tokens out", totalFigure(t, "output_tokens", fmtInt)],
      ["Call time", totalFigure(t, "duration_ns", fmtDuration)],
      ["Cost", totalFigure(t, "cost_usd", fmtCost)],
    ]),
  );
}

export async function renderCompare(root, traceId, stale) {
  const data = await getJSON(`/api/ui/compare/${encodeURIComponent(traceId)}`);
  if (stale()) return;
  const o = data.original;
  const r = data.replay;
  const t = data.totals;
  const traceFacts = (trace) =>
    facts([
      ["Trace", link(`#/trace/${encodeURIComponent(trace.trace_id)}`, shortId(trace.trace_id), { class: "mono", title: trace.trace_id })],
      ["Started", fmtTime(trace.start_time)],
      ["Duration", fmtDuration(trace.duration_ns)],
    ]);
  replace(
    root,
    h("nav", { class: "crumbs" }, link("#/", "Traces"), " / ", link(`#/trace/${encodeURIComponent(o.trace_id)}`, o.root_name || shortId(o.trace_id)), " / ", h("span", {}, "Replay comparison")),
    h(
      "section",
      { class: "card trace-head" },
      h("div", { class: "trace-title" }, h("h1", {}, "Replay comparison"), h("span", { class: "muted" }, `${t.calls} call${t.calls === 1 ? "" : "s"} · ${t.replayed} replayed${t.failed ? ` · ${t.failed} failed` : ""} · ${t.changed} changed · ${t.skipped} not replayed`)),
      h("div", { class: "compare-grid" }, h("div", {}, h("h3", {}, "Original"), traceFacts(o)), h("div", {}, h("h3", {}, "Replay"), traceFacts(r))),
      comparedTotals(t),
    ),
    data.calls.length ? data.calls.map((c) => callCard(c, o.trace_id, r.trace_id)) : h("div", { class: "empty" }, "Neither trace has LLM calls."),
  );
}
