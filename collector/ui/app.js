// spanreel trace viewer: a hash router, the traces list and the sessions list. Pages: #/ (traces,
// filters in the hash query), #/sessions, #/trace/<id>[?span=<id>], #/session/<id>,
// #/compare/<trace id>. Both lists page with the API's keyset cursor (?cursor= in the hash).
import { ApiError, getJSON, health, setToken, takeTokenFromHash } from "./api.js";
import { errorBox, h, link, loading, pill, replace } from "./dom.js";
import { DASH, fmtAgo, fmtCost, fmtDuration, fmtInt, fmtTime, shortId } from "./format.js";
import { renderTrace } from "./trace.js";
import { renderSession } from "./session.js";
import { renderCompare } from "./compare.js";

const main = document.getElementById("main");

// -- routing -------------------------------------------------------------------------------

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?", 2);
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { segments, params: new URLSearchParams(query) };
}

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

let renderSeq = 0;

async function route() {
  const seq = ++renderSeq;
  const { segments, params } = parseHash();
  const stale = () => seq !== renderSeq;
  document.getElementById("nav-traces").classList.toggle("active", segments.length === 0 || segments[0] === "traces");
  document.getElementById("nav-sessions").classList.toggle("active", segments[0] === "sessions" || segments[0] === "session");
  replace(main, loading());
  try {
    const [page, id] = segments;
    if (!page || page === "traces") await renderTraces(main, params, stale);
    else if (page === "sessions") await renderSessions(main, params, stale);
    else if (page === "trace" && id) await renderTrace(main, id, params, stale);
    else if (page === "session" && id) await renderSession(main, id, stale);
    else if (page === "compare" && id) await renderCompare(main, id, stale);
    else replace(main, errorBox("This page does not exist.", link("#/", "Go to the traces list")));
  } catch (error) {
    if (stale()) return;
    if (error instanceof ApiError && error.status === 401) replace(main, tokenForm(error.message));
    else if (error instanceof ApiError && error.status === 404) replace(main, h("div", { class: "notice" }, error.message, " ", link("#/", "Back to the traces list"), " · ", link("#/sessions", "the sessions list")));
    else replace(main, errorBox(error instanceof Error ? error.message : String(error), h("button", { class: "btn btn-small", type: "button", onclick: route }, "Retry")));
    if (!(error instanceof ApiError)) console.error(error);
  }
}

function tokenForm(message) {
  const input = h("input", { type: "password", class: "input", placeholder: "access token", autocomplete: "off", "aria-label": "Access token" });
  const form = h(
    "form",
    { class: "card token-form" },
    h("h2", {}, "Access token needed"),
    h("p", {}, "This collector requires a token (", message, "). Open the viewer with ", h("code", {}, "spanreel ui"), ", which passes it along, or paste it here:"),
    h("div", { class: "row" }, input, h("button", { class: "btn btn-primary", type: "submit" }, "Continue")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    route();
  });
  return form;
}

// -- paging --------------------------------------------------------------------------------

// The cursors of the pages before the one shown, so "← Newer" can go back; kept while the list
// and its filters (`key`) stay the same and a cursor is given.
const cursorStack = { key: null, cursors: [] };

function keepCursors(key, cursor) {
  if (cursorStack.key !== key || !cursor) {
    cursorStack.key = key;
    cursorStack.cursors = [];
  }
}

/** "← Newer · Page n · Older →" for a list page; `hashFor(cursor)` is the hash of another page. */
function pager(cursor, nextCursor, hashFor, olderLabel) {
  const label = !cursor ? "Newest" : cursorStack.cursors.length ? `Page ${cursorStack.cursors.length + 1}` : olderLabel;
  const older = nextCursor
    ? h("button", { type: "button", class: "btn", onclick: () => { cursorStack.cursors.push(cursor); navigate(hashFor(nextCursor)); } }, "Older →")
    : null;
  const newer = cursor
    ? h("button", { type: "button", class: "btn", onclick: () => { const prev = cursorStack.cursors.pop() || ""; navigate(hashFor(prev)); } }, "← Newer")
    : null;
  return h("div", { class: "pager" }, newer, h("span", { class: "muted" }, label), older, h("button", { type: "button", class: "btn btn-ghost", onclick: route, title: "Reload" }, "Refresh"));
}

// -- traces list ---------------------------------------------------------------------------

const RANGES = [
  ["", "Any time"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["custom", "Custom range…"],
];
const RANGE_MS = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
const FILTER_KEYS = ["service", "model", "session", "status", "range", "since", "until", "q"];

let filterOptions = null;

function localInputValue(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const off = d.getTimezoneOffset() * 60e3;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

function filtersHash(filters, cursor) {
  const q = new URLSearchParams();
  for (const key of FILTER_KEYS) if (filters[key]) q.set(key, filters[key]);
  if (cursor) q.set("cursor", cursor);
  const text = q.toString();
  return text ? `#/traces?${text}` : "#/";
}

function apiParams(filters, cursor) {
  const params = { service: filters.service, model: filters.model, session: filters.session, status: filters.status, q: filters.q, cursor };
  if (RANGE_MS[filters.range]) params.since = new Date(Date.now() - RANGE_MS[filters.range]).toISOString();
  else if (filters.range === "custom") {
    params.since = filters.since;
    params.until = filters.until;
  }
  return params;
}

function select(name, label, options, value, onChange) {
  const el = h("select", { class: "input", name, "aria-label": label, onchange: onChange }, options.map(([v, text]) => h("option", { value: v }, text)));
  el.value = value || "";
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), el);
}

async function renderTraces(root, params, stale) {
  const filters = Object.fromEntries(FILTER_KEYS.map((k) => [k, params.get(k) || ""]));
  const cursor = params.get("cursor") || "";
  keepCursors(["traces", ...FILTER_KEYS.map((k) => filters[k])].join("\u0000"), cursor);
  const [options, page] = await Promise.all([
    filterOptions ? Promise.resolve(filterOptions) : getJSON("/api/ui/filters"),
    getJSON("/api/ui/traces", apiParams(filters, cursor)),
  ]);
  if (stale()) return;
  filterOptions = options;

  const apply = (changes) => navigate(filtersHash({ ...filters, ...changes }, ""));
  const searchInput = h("input", { class: "input search", type: "search", name: "q", placeholder: "Search messages, or paste a trace id", value: filters.q, "aria-label": "Search in messages" });
  const sessionInput = h("input", { class: "input", type: "text", name: "session", placeholder: "session id", value: filters.session, "aria-label": "Session" });
  const sinceInput = h("input", { class: "input", type: "datetime-local", name: "since", value: localInputValue(filters.since), "aria-label": "From" });
  const untilInput = h("input", { class: "input", type: "datetime-local", name: "until", value: localInputValue(filters.until), "aria-label": "To" });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h("label", { class: "field field-grow" }, h("span", { class: "field-label" }, "Search"), searchInput),
    select("service", "Service", [["", "All services"], ...options.services.map((s) => [s, s])], filters.service, (e) => apply({ service: e.target.value })),
    select("model", "Model", [["", "All models"], ...options.models.map((m) => [m, m])], filters.model, (e) => apply({ model: e.target.value })),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Session"), sessionInput),
    select("status", "Status", [["", "Any status"], ["ok", "OK"], ["error", "Has errors"]], filters.status, (e) => apply({ status: e.target.value })),
    select("range", "Time", RANGES, filters.range, (e) => apply({ range: e.target.value, since: "", until: "" })),
    filters.range === "custom" ? [h("label", { class: "field" }, h("span", { class: "field-label" }, "From"), sinceInput), h("label", { class: "field" }, h("span", { class: "field-label" }, "To"), untilInput)] : null,
    h("div", { class: "field field-actions" }, h("button", { class: "btn btn-primary", type: "submit" }, "Apply"), Object.values(filters).some(Boolean) ? h("a", { class: "btn", href: "#/" }, "Clear") : null),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = searchInput.value.trim();
    if (/^[0-9a-fA-F]{32}$/.test(text)) return navigate(`#/trace/${text.toLowerCase()}`);
    const toIso = (v) => (v ? new Date(v).toISOString() : "");
    apply({ q: text, session: sessionInput.value.trim(), since: toIso(sinceInput.value), until: toIso(untilInput.value) });
  });
  sessionInput.addEventListener("change", () => apply({ session: sessionInput.value.trim() }));

  replace(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Traces"), h("span", { class: "muted" }, "Newest first")),
    form,
    page.traces.length ? tracesTable(page.traces) : emptyTraces(Object.values(filters).some(Boolean)),
    page.traces.length ? pager(cursor, page.next_cursor, (c) => filtersHash(filters, c), "Older traces") : null,
  );
}

function emptyTraces(filtered) {
  if (filtered) return h("div", { class: "empty" }, h("p", {}, "No traces match these filters."), h("a", { class: "btn", href: "#/" }, "Clear filters"));
  return h(
    "div",
    { class: "empty" },
    h("p", { class: "empty-title" }, "No traces yet"),
    h("p", {}, "Record an app's LLM calls with ", h("code", {}, "SPANREEL_ENABLED=1 python your_app.py"), " while this collector runs, or try ", h("code", {}, "spanreel demo"), "."),
  );
}

function tracesTable(traces) {
  const maxDuration = Math.max(1, ...traces.map((t) => Number(t.duration_ns) || 0));
  const head = h("thead", {}, h("tr", {}, ["Trace", "Started", "Duration", "LLM calls", "Tokens", "Cost", "Errors"].map((c, i) => h("th", { class: i > 1 ? "num" : null, scope: "col" }, c))));
  const rows = traces.map((t) => {
    const href = `#/trace/${encodeURIComponent(t.trace_id)}`;
    const nameCell = h(
      "td",
      { class: "cell-name" },
      h("a", { class: "trace-link", href }, t.root_name || h("span", { class: "muted" }, "(root span not received)")),
      h(
        "div",
        { class: "sub" },
        t.service_name ? h("span", { class: "svc" }, t.service_name) : null,
        h("span", { class: "mono muted", title: t.trace_id }, shortId(t.trace_id)),
        (t.session_ids || (t.session_id ? [t.session_id] : [])).map((sid) => link(`#/session/${encodeURIComponent(sid)}`, `session ${sid}`, { class: "chip", title: "Open this session" })),
        t.replay_of ? pill("replay", "accent", `Replay of ${t.replay_of}`) : null,
      ),
    );
    const bar = h("div", { class: "mini-bar" }, h("span", { style: { width: `${Math.max(2, (Number(t.duration_ns) / maxDuration) * 100)}%` } }));
    return h(
      "tr",
      { class: t.errors ? "row-error" : null, dataset: { traceId: t.trace_id } },
      nameCell,
      h("td", { class: "nowrap", title: t.start_time }, fmtTime(t.start_time), h("div", { class: "sub muted" }, fmtAgo(t.start_time))),
      h("td", { class: "num nowrap" }, fmtDuration(t.duration_ns), bar),
      h("td", { class: "num" }, fmtInt(t.llm_calls)),
      h("td", { class: "num", title: t.total_tokens === null ? null : `${fmtInt(t.input_tokens)} in · ${fmtInt(t.output_tokens)} out` }, fmtInt(t.total_tokens)),
      h("td", { class: "num" }, fmtCost(t.cost_usd)),
      h("td", { class: "num" }, t.errors ? pill(String(t.errors), "error") : h("span", { class: "muted" }, DASH)),
    );
  });
  const table = h("table", { class: "table traces-table" }, head, h("tbody", {}, rows));
  table.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-trace-id]");
    if (!row || event.target.closest("a, button")) return;
    navigate(`#/trace/${encodeURIComponent(row.dataset.traceId)}`);
  });
  return h("div", { class: "card table-wrap" }, table);
}

// -- sessions list -------------------------------------------------------------------------

function sessionsHash(cursor) {
  return cursor ? `#/sessions?${new URLSearchParams({ cursor })}` : "#/sessions";
}

async function renderSessions(root, params, stale) {
  const cursor = params.get("cursor") || "";
  keepCursors("sessions", cursor);
  const page = await getJSON("/api/ui/sessions", { cursor });
  if (stale()) return;
  replace(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Sessions"), h("span", { class: "muted" }, "Newest first · every trace of a session, totalled")),
    page.sessions.length ? sessionsTable(page.sessions) : emptySessions(),
    page.sessions.length ? pager(cursor, page.next_cursor, sessionsHash, "Older sessions") : null,
  );
}

function emptySessions() {
  return h(
    "div",
    { class: "empty" },
    h("p", { class: "empty-title" }, "No sessions yet"),
    h(
      "p",
      {},
      "A session groups the traces recorded inside ",
      h("code", {}, 'with spanreel.session("support-chat", session_id="ticket-42"):'),
      " (or carrying a ",
      h("code", {}, "session.id"),
      " from baggage or another instrumentation). Record one while this collector runs, and it is listed here.",
    ),
  );
}

function sessionsTable(sessions) {
  const maxDuration = Math.max(1, ...sessions.map((s) => Number(s.duration_ns) || 0));
  const columns = ["Session", "Name", "User", "Started", "Duration", "Traces", "LLM calls", "Tokens", "Cost", "Errors"];
  const head = h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { class: i > 3 ? "num" : null, scope: "col" }, c))));
  const muted = (text) => h("span", { class: "muted" }, text);
  const rows = sessions.map((s) => {
    const noTokens = s.input_tokens === null && s.output_tokens === null;
    const bar = h("div", { class: "mini-bar" }, h("span", { style: { width: `${Math.max(2, (Number(s.duration_ns) / maxDuration) * 100)}%` } }));
    return h(
      "tr",
      { class: s.error_count ? "row-error" : null, dataset: { sessionId: s.session_id } },
      h(
        "td",
        { class: "cell-name" },
        link(`#/session/${encodeURIComponent(s.session_id)}`, s.session_id, { class: "trace-link mono", title: "Open this session" }),
        s.service_name ? h("div", { class: "sub" }, h("span", { class: "svc" }, s.service_name)) : null,
      ),
      h("td", {}, s.session_name || muted(DASH)),
      h("td", {}, s.user_id || muted(DASH)),
      h("td", { class: "nowrap", title: s.start_time }, fmtTime(s.start_time), h("div", { class: "sub muted" }, fmtAgo(s.start_time))),
      h("td", { class: "num nowrap" }, fmtDuration(s.duration_ns), bar),
      h("td", { class: "num" }, fmtInt(s.trace_count)),
      h("td", { class: "num" }, fmtInt(s.llm_calls)),
      h("td", { class: "num nowrap" }, noTokens ? DASH : `${fmtInt(s.input_tokens)} in · ${fmtInt(s.output_tokens)} out`),
      h("td", { class: "num" }, fmtCost(s.cost_usd)),
      h("td", { class: "num" }, s.error_count ? pill(String(s.error_count), "error") : muted(DASH)),
    );
  });
  const table = h("table", { class: "table sessions-table" }, head, h("tbody", {}, rows));
  table.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-session-id]");
    if (!row || event.target.closest("a, button")) return;
    navigate(`#/session/${encodeURIComponent(row.dataset.sessionId)}`);
  });
  return h("div", { class: "card table-wrap" }, table);
}

// -- start ---------------------------------------------------------------------------------

async function start() {
  takeTokenFromHash();
  window.addEventListener("hashchange", route);
  route();
  const info = await health();
  document.getElementById("db-path").textContent = info.db_path || "";
}

start();
