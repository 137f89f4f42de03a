// The trace page: header, replay command, span waterfall and the selected span's details.
import { getJSON, health } from "./api.js";
import { renderConversation } from "./chat.js";
import { copyButton, h, link, pill, replace } from "./dom.js";
import { DASH, fmtAgo, fmtCost, fmtDuration, fmtInt, fmtTime, shellQuote, shortId, valueText } from "./format.js";

/** Header facts shared with other pages: [label, value] pairs rendered as a definition row. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([label, value]) => h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value))));
}

export function replayCommand(traceId, dbPath) {
  return `spanreel replay ${traceId}${dbPath ? ` --db ${shellQuote(dbPath)}` : ""}`;
}

function buildTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, { span: s, children: [] }]));
  const roots = [];
  for (const node of byId.values()) {
    const parent = node.span.parent_span_id && byId.get(node.span.parent_span_id);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  const byStart = (a, b) => (a.span.offset_ns ?? 0) - (b.span.offset_ns ?? 0);
  for (const node of byId.values()) node.children.sort(byStart);
  roots.sort(byStart);
  return roots;
}

function flatten(roots, collapsed) {
  const rows = [];
  const walk = (node, depth) => {
    rows.push({ node, depth });
    if (!collapsed.has(node.span.span_id)) for (const child of node.children) walk(child, depth + 1);
  };
  for (const root of roots) walk(root, 0);
  return rows;
}

function spanKind(span) {
  if (span.status_code === "ERROR") return "error";
  if (span.is_llm) return "llm";
  return "other";
}

function waterfall(data, state, onSelect) {
  const spans = data.spans;
  const total = Math.max(1, Number(data.trace.duration_ns) || 0, ...spans.map((s) => (Number(s.offset_ns) || 0) + (Number(s.duration_ns) || 0)));
  const roots = buildTree(spans);
  const container = h("div", { class: "waterfall", role: "tree", "aria-label": "Span tree" });
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const axis = h(
    "div",
    { class: "wf-row wf-axis" },
    h("div", { class: "wf-name muted" }, `${spans.length} span${spans.length === 1 ? "" : "s"}`),
    h("div", { class: "wf-track" }, ticks.map((t) => h("span", { class: "wf-tick", style: { left: `${t * 100}%` } }, t ? fmtDuration(t * total) : "0"))),
  );
  const body = h("div", { class: "wf-body" });
  const draw = () => {
    const rows = flatten(roots, state.collapsed).map(({ node, depth }) => {
      const s = node.span;
      const left = ((Number(s.offset_ns) || 0) / total) * 100;
      const width = Math.max(0.4, ((Number(s.duration_ns) || 0) / total) * 100);
      const caret = node.children.length
        ? h("button", { type: "button", class: "wf-caret", "aria-label": state.collapsed.has(s.span_id) ? "Expand" : "Collapse", onclick: (e) => { e.stopPropagation(); state.collapsed.has(s.span_id) ? state.collapsed.delete(s.span_id) : state.collapsed.add(s.span_id); draw(); } }, state.collapsed.has(s.span_id) ? "▸" : "▾")
        : h("span", { class: "wf-caret wf-caret-none" });
      // duration label: right of the bar, else left of it, else inside it
      let label = "wf-label";
      let labelPos = { left: `${left + width}%` };
      if (left + width > 80 && left >= 22) {
        label = "wf-label wf-label-left";
        labelPos = { right: `${100 - left}%` };
      } else if (left + width > 80) {
        label = "wf-label wf-label-inside";
        labelPos = { right: `${100 - left - width}%` };
      }
      const meta = s.is_llm ? [s.response_model || s.request_model, s.input_tokens != null || s.output_tokens != null ? `${fmtInt((s.input_tokens || 0) + (s.output_tokens || 0))} tok` : null].filter(Boolean).join(" · ") : s.service_name !== data.trace.service_name ? s.service_name : "";
      return h(
        "div",
        { class: `wf-row wf-${spanKind(s)}${state.selected === s.span_id ? " selected" : ""}`, role: "treeitem", tabindex: "0", "aria-selected": String(state.selected === s.span_id), dataset: { spanId: s.span_id }, onclick: () => onSelect(s.span_id), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(s.span_id); } } },
        h(
          "div",
          { class: "wf-name", style: { paddingLeft: `${8 + depth * 16}px` }, title: s.name },
          caret,
          h("span", { class: `wf-dot wf-dot-${spanKind(s)}` }),
          h("span", { class: "wf-span-name" }, s.name || "(unnamed)"),
          meta ? h("span", { class: "wf-meta" }, meta) : null,
        ),
        h("div", { class: "wf-track" }, h("div", { class: "wf-bar", style: { left: `${left}%`, width: `${width}%` } }), h("span", { class: label, style: labelPos }, fmtDuration(s.duration_ns))),
      );
    });
    replace(body, rows);
  };
  draw();
  container.append(axis, body);
  return { element: container, redraw: draw };
}

function kvTable(object, { emptyText = "None" } = {}) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h("p", { class: "muted" }, emptyText);
  return h(
    "table",
    { class: "kv" },
    h(
      "tbody",
      {},
      entries.map(([key, value]) => {
        const text = valueText(value);
        const long = text.length > 400 || text.split("\n").length > 8;
        return h("tr", {}, h("th", { scope: "row", class: "mono" }, key), h("td", {}, long ? h("details", { class: "long-value" }, h("summary", {}, `${text.slice(0, 120).replace(/\s+/g, " ")}… (${fmtInt(text.length)} chars)`), h("pre", { class: "code" }, text)) : h("span", { class: typeof value === "string" ? "kv-str" : "kv-val mono" }, text)));
      }),
    ),
  );
}

function spanDetails(span, data) {
  const tabs = [];
  if (span.is_llm) tabs.push(["conversation", "Conversation", () => renderConversation(span.conversation)]);
  if (span.is_llm || Object.keys(span.genai).length) tabs.push(["genai", "GenAI", () => genaiTab(span)]);
  tabs.push(["attributes", "Attributes", () => h("div", {}, kvTable(span.attributes), h("h4", {}, "Resource"), kvTable(span.resource_attributes))]);
  tabs.push(["events", `Events (${span.events.length})`, () => eventsTab(span)]);
  tabs.push(["links", `Links (${span.links.length})`, () => linksTab(span)]);
  const content = h("div", { class: "tab-content" });
  const bar = h("div", { class: "tabs", role: "tablist" });
  const show = (key) => {
    for (const button of bar.children) button.setAttribute("aria-selected", String(button.dataset.tab === key));
    const tab = tabs.find((t) => t[0] === key) || tabs[0];
    replace(content, tab[2]());
  };
  for (const [key, label] of tabs) bar.append(h("button", { type: "button", role: "tab", class: "tab", dataset: { tab: key }, onclick: () => show(key) }, label));
  const status = span.status_code === "ERROR" ? pill("error", "error", span.status_message || "status ERROR") : span.status_code === "OK" ? pill("ok", "ok") : null;
  const head = h(
    "div",
    { class: "detail-head" },
    h("h2", {}, span.name || "(unnamed)", " ", status),
    facts([
      ["Duration", fmtDuration(span.duration_ns)],
      ["Starts at", `+${fmtDuration(span.offset_ns)}`],
      ["Kind", span.kind || DASH],
      span.service_name ? ["Service", span.service_name] : null,
      span.is_llm ? ["Model", span.response_model || span.request_model || DASH] : null,
      span.is_llm ? ["Tokens", `${fmtInt(span.input_tokens)} in · ${fmtInt(span.output_tokens)} out`] : null,
      span.cost_usd != null ? ["Cost", fmtCost(span.cost_usd)] : null,
      ["Span id", h("span", { class: "mono" }, span.span_id)],
    ]),
    span.status_code === "ERROR" && span.status_message ? h("div", { class: "notice notice-error" }, span.status_message) : null,
    span.replay_of_span_id && data.replay_of ? h("p", { class: "small" }, "Replay of span ", link(`#/trace/${encodeURIComponent(data.replay_of)}?span=${encodeURIComponent(span.replay_of_span_id)}`, span.replay_of_span_id, { class: "mono" }), " in the original trace.") : null,
  );
  show(tabs[0][0]);
  return h("div", { class: "card detail", dataset: { spanId: span.span_id } }, head, bar, content);
}

function genaiTab(span) {
  const pairs = { ...span.genai };
  const tools = span.tools.length ? h("div", {}, h("h4", {}, "Tools offered"), h("ul", { class: "tools" }, span.tools.map((t) => h("li", {}, h("code", {}, t.name), t.description ? ` — ${t.description}` : "")))) : null;
  return h("div", {}, kvTable(pairs, { emptyText: "No GenAI attributes." }), tools);
}

function eventsTab(span) {
  if (!span.events.length) return h("p", { class: "muted" }, "No events.");
  const startNs = BigInt(Math.round((Date.parse(span.start_time.replace(/(\.\d{3})\d+/, "$1")) || 0))) * 1000000n;
  return h(
    "ol",
    { class: "events" },
    span.events.map((event) => {
      let at = "";
      try {
        at = `+${fmtDuration(Number(BigInt(event.time_unix_nano) - startNs))}`;
      } catch {
        at = "";
      }
      return h("li", {}, h("div", { class: "event-head" }, h("strong", {}, event.name), at ? h("span", { class: "muted small" }, at) : null), kvTable(event.attributes, { emptyText: "" }));
    }),
  );
}

function linksTab(span) {
  if (!span.links.length) return h("p", { class: "muted" }, "No links.");
  return h(
    "ul",
    { class: "links" },
    span.links.map((l) => h("li", {}, link(`#/trace/${encodeURIComponent(l.trace_id)}?span=${encodeURIComponent(l.span_id)}`, `trace ${shortId(l.trace_id)} · span ${l.span_id}`, { class: "mono" }), Object.keys(l.attributes || {}).length ? kvTable(l.attributes) : null)),
  );
}

export async function renderTrace(root, traceId, params, stale) {
  const [data, info] = await Promise.all([getJSON(`/api/ui/traces/${encodeURIComponent(traceId)}`), health()]);
  if (stale()) return;
  const t = data.trace;
  const spansById = new Map(data.spans.map((s) => [s.span_id, s]));
  const wanted = params.get("span");
  const firstLlm = data.spans.find((s) => s.is_llm && s.conversation.length) || data.spans.find((s) => s.is_llm);
  const state = { collapsed: new Set(), selected: spansById.has(wanted) ? wanted : (firstLlm || data.spans[0] || {}).span_id };
  const detailPane = h("div", { class: "detail-pane" });
  const select = (spanId) => {
    state.selected = spanId;
    const span = spansById.get(spanId);
    replace(detailPane, span ? spanDetails(span, data) : h("p", { class: "muted" }, "Select a span."));
    wf.redraw();
    const hash = `#/trace/${encodeURIComponent(t.trace_id)}?span=${encodeURIComponent(spanId)}`;
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  };
  const wf = waterfall(data, state, select);
  const command = replayCommand(t.trace_id, info.db_path);

  const relations = [];
  if (data.replay_of) {
    relations.push(h("div", { class: "relation" }, pill("replay", "accent"), " Replay of ", link(`#/trace/${encodeURIComponent(data.replay_of)}`, data.replay_of, { class: "mono" }), " · ", link(`#/compare/${encodeURIComponent(t.trace_id)}`, "Compare with the original", { class: "strong" })));
  }
  if (data.replays.length) {
    relations.push(
      h(
        "div",
        { class: "relation" },
        h("span", {}, `Replayed ${data.replays.length} time${data.replays.length === 1 ? "" : "s"}: `),
        data.replays.map((r, i) => [i ? ", " : "", link(`#/compare/${encodeURIComponent(r.trace_id)}`, `${fmtTime(r.start_time)} (${shortId(r.trace_id)})`, { title: "Compare this replay with the original" })]),
      ),
    );
  }
  replace(
    root,
    h("nav", { class: "crumbs" }, link("#/", "Traces"), " / ", h("span", {}, t.root_name || shortId(t.trace_id))),
    h(
      "section",
      { class: "card trace-head" },
      h("div", { class: "trace-title" }, h("h1", {}, t.root_name || "(root span not received)"), t.errors ? pill(`${t.errors} error${t.errors === 1 ? "" : "s"}`, "error") : pill("ok", "ok")),
      facts([
        ["Trace id", h("span", { class: "mono" }, t.trace_id, " ", copyButton(() => t.trace_id))],
        ["Service", t.service_name || DASH],
        ["Started", h("span", { title: t.start_time }, fmtTime(t.start_time), h("span", { class: "muted" }, ` (${fmtAgo(t.start_time)})`))],
        ["Duration", fmtDuration(t.duration_ns)],
        ["Spans", fmtInt(t.span_count)],
        ["LLM calls", fmtInt(t.llm_calls)],
        ["Tokens", t.total_tokens == null ? DASH : `${fmtInt(t.input_tokens)} in · ${fmtInt(t.output_tokens)} out`],
        ["Cost", fmtCost(t.cost_usd)],
        (t.session_ids || []).length ? [t.session_ids.length > 1 ? "Sessions" : "Session", t.session_ids.map((sid, i) => [i ? ", " : null, link(`#/session/${encodeURIComponent(sid)}`, sid)])] : null,
      ]),
      relations,
      h("div", { class: "command" }, h("span", { class: "command-label" }, "Replay it"), h("code", { class: "command-text" }, command), copyButton(() => command)),
      data.truncated ? h("div", { class: "notice" }, `Only the first ${fmtInt(data.spans.length)} spans are shown.`) : null,
    ),
    h("div", { class: "trace-body" }, h("section", { class: "card wf-card" }, h("h3", { class: "card-title" }, "Timeline"), wf.element), detailPane),
  );
  if (state.selected) select(state.selected);
}
