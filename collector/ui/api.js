// Fetches from the collector's JSON endpoints. When the collector requires a token, the page
// gets it once in its URL fragment (/ui/#token=…, never sent to the server), keeps it in
// sessionStorage and sends it as "Authorization: Bearer".

const TOKEN_KEY = "spanreel.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Move a token from the URL fragment to sessionStorage and drop it from the address bar. */
export function takeTokenFromHash() {
  const hash = window.location.hash;
  const match = hash.match(/[#&?]token=([^&]*)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  let rest = hash.replace(/([#&?])token=[^&]*&?/, "$1").replace(/[?&]$/, "");
  if (rest === "#" || rest === "") rest = "#/";
  history.replaceState(null, "", window.location.pathname + window.location.search + rest);
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

/** GET path?params as JSON; throws ApiError (status 0 when the collector did not answer). */
export async function getJSON(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiError(0, "The collector did not answer. Is it still running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

let healthPromise = null;

/** The collector's /api/health answer ({db_path, version, …}), fetched once; {} if unavailable. */
export function health() {
  if (!healthPromise) healthPromise = getJSON("/api/health").catch(() => ({}));
  return healthPromise;
}
