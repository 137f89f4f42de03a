// The session page: the traces of a session in time order, each with its totals and LLM calls.
import { getJSON } from "./api.js";
import { h, link, pill, replace } from "./dom.js";
import { DASH, fmtAgo, fmtCost, fmtDuration, fmtInt, fmtTime, shortId } from "./format.js";
import { facts } from "./trace.js";

function callRow(traceId, call) {
  return h(
    "li",
    { class: `call${call.status_code === "ERROR" ? " call-error" : ""}` },
    h(
      "div",
      { class: "call-head" },
      link(`#/trace/${encodeURIComponent(traceId)}?span=${encodeURIComponent(call.span_id)}`, call.name || "LLM call"),
      call.model ? h("span", { class: "muted" }, call.model) : null,
      h("span", { class: "muted" }, fmtDuration(call.duration_ns)),
      h("span", { class: "muted" }, `${fmtInt(call.input_tokens)} in · ${fmtInt(call.output_tokens)} out`),
      call.status_code === "ERROR" ? pill("error", "error") : null,
    ),
    call.output_preview ? h("div", { class: "call-preview" }, call.output_preview) : null,
  );
}

export async function renderSession(root, sessionId, stale) {
  const data = await getJSON("/api/ui/session", { id: sessionId });
  if (stale()) return;
  const totals = data.totals;
  const items = data.traces.map((t, i) =>
    h(
      "li",
      { class: "card session-trace", dataset: { traceId: t.trace_id } },
      h(
        "div",
        { class: "session-trace-head" },
        h("span", { class: "step" }, String(i + 1)),
        h("div", { class: "grow" }, link(`#/trace/${encodeURIComponent(t.trace_id)}`, t.root_name || shortId(t.trace_id), { class: "trace-link" }), h("div", { class: "sub muted" }, fmtTime(t.start_time), " · ", t.service_name || DASH, " · ", h("span", { class: "mono" }, shortId(t.trace_id)), t.replay_of ? [" · ", pill("replay", "accent")] : null)),
        h("dl", { class: "mini-facts" }, [["Duration", fmtDuration(t.duration_ns)], ["LLM calls", fmtInt(t.llm_calls)], ["Tokens", fmtInt(t.total_tokens)], ["Cost", fmtCost(t.cost_usd)], ["Errors", t.errors ? pill(String(t.errors), "error") : DASH]].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
      ),
      t.other_sessions && t.other_sessions.length
        ? h("div", { class: "small muted" }, "This trace also holds ", t.other_sessions.map((sid, j) => [j ? ", " : null, link(`#/session/${encodeURIComponent(sid)}`, sid)]), "; only this session's calls are counted here.")
        : null,
      t.calls.length ? h("ul", { class: "calls" }, t.calls.map((c) => callRow(t.trace_id, c))) : null,
    ),
  );
  replace(
    root,
    h("nav", { class: "crumbs" }, link("#/sessions", "Sessions"), " / ", h("span", {}, "Session")),
    h(
      "section",
      { class: "card trace-head" },
      h("div", { class: "trace-title" }, h("h1", {}, "Session ", h("span", { class: "mono" }, data.session_id))),
      facts([
        ["Traces", fmtInt(totals.traces)],
        ["First", data.traces.length ? `${fmtTime(data.traces[0].start_time)} (${fmtAgo(data.traces[0].start_time)})` : DASH],
        ["LLM calls", fmtInt(totals.llm_calls)],
        ["Tokens", `${fmtInt(totals.input_tokens)} in · ${fmtInt(totals.output_tokens)} out`],
        ["Cost", fmtCost(totals.cost_usd)],
        ["Errors", totals.errors ? pill(String(totals.errors), "error") : "0"],
        ["Time in traces", fmtDuration(totals.duration_ns)],
      ]),
      h("div", { class: "small" }, link(`#/traces?session=${encodeURIComponent(data.session_id)}`, "Show these traces in the list")),
      data.truncated ? h("div", { class: "notice" }, `Only the first ${fmtInt(data.traces.length)} traces are shown.`) : null,
    ),
    h("ol", { class: "session-list" }, items),
  );
}
