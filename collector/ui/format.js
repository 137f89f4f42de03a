// Formatting of the API's values. Times are ISO-8601 UTC strings with up to 9 fraction digits;
// durations are integer nanoseconds.

export const DASH = "—";

/** ISO-8601 (any precision) -> Date (millisecond precision). */
export function toDate(iso) {
  if (!iso) return null;
  const date = new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(iso) {
  const d = toDate(iso);
  if (!d) return DASH;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local "HH:MM:SS.mmm". */
export function fmtClock(iso) {
  const d = toDate(iso);
  if (!d) return DASH;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function fmtAgo(iso, now = Date.now()) {
  const d = toDate(iso);
  if (!d) return "";
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 0) return "in the future";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Nanoseconds -> "850 µs", "12.3 ms", "1.24 s", "2 min 5 s". */
export function fmtDuration(ns) {
  if (ns === null || ns === undefined) return DASH;
  const ms = Number(ns) / 1e6;
  if (ms < 1) return `${Math.round(Number(ns) / 1e3)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 59.995) return `${s.toFixed(2)} s`;
  const total = Math.round(s); // whole seconds first, so 119.6 s is "2 min 0 s", not "1 min 60 s"
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${total % 60} s`;
}

export function fmtInt(n) {
  return n === null || n === undefined ? DASH : Number(n).toLocaleString("en-US");
}

/** US dollars; "—" when unknown. */
export function fmtCost(usd) {
  if (usd === null || usd === undefined) return DASH;
  const v = Number(usd);
  if (v === 0) return "$0";
  if (v >= 1) return `$${v.toFixed(2)}`;
  // two significant digits for small amounts: $0.50, $0.012, $0.000061
  const digits = Math.min(8, Math.max(2, 1 - Math.floor(Math.log10(v))));
  return `$${v.toFixed(digits)}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : DASH;
}

/** Quote a word for a POSIX shell when needed. */
export function shellQuote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${String(word).replace(/'/g, `'\\''`)}'`;
}

/** Display text for an attribute value. */
export function valueText(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}
