// Calls to CityHex (this page's own origin). Signing in exchanges the API key for a short-lived
// token (POST /auth/token); every request carries that token as a Bearer header. The token is
// kept in sessionStorage (this tab) and renewed before it expires with the key, which stays in
// memory for the page's life and in localStorage only when the user ticked "remember". A key
// the API refuses (revoked, rotated, expired) ends the session: the app is told (onSignedOut).
// Every answer that is not 2xx becomes an ApiError carrying the API's {status, code, message}.

const KEY = "cityhex.key";
const TOKEN = "cityhex.token";
/** Renew this long before the token's expiry (or at 4/5 of a shorter life). */
const RENEW_BEFORE_MS = 60000;

let key = localStorage.getItem(KEY);
let token = JSON.parse(sessionStorage.getItem(TOKEN) || "null"); // {value, expires} (ms)
let renewing = null;
let timer = null;
const signedOutListeners = new Set();

/** An error answer of the API, or a request that never reached it (status 0: offline). */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** Whether this browser holds a session (a token of this tab, or a remembered key). */
export function signedIn() {
  return Boolean(token || key);
}

/** Be told when the session ends because the API refused its key. */
export function onSignedOut(listener) {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

/** Forget the key and the token (signing out, or a key the API refused). */
export function signOut() {
  key = null;
  token = null;
  clearTimeout(timer);
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(TOKEN);
}

function ended() {
  signOut();
  for (const listener of signedOutListeners) listener();
}

/** Renew the token when it is near its end (while a key is at hand). */
function schedule() {
  clearTimeout(timer);
  if (!token || !key) return;
  const left = token.expires - Date.now();
  const wait = Math.max(1000, left - Math.min(RENEW_BEFORE_MS, left / 5));
  timer = setTimeout(() => renew().catch(() => {}), wait);
}

/** The exchange the page's bootstrap started for the remembered key, taken once (null when
 * there is none, or the key has changed since). */
function bootExchange() {
  const boot = window.cityhexBoot;
  const started = boot?.token && key === localStorage.getItem(KEY) ? boot.token : null;
  if (boot) boot.token = null;
  return started;
}

/** Exchange the key for a new token (one exchange at a time; the first may be the one the
 * page's bootstrap started). A refused key ends the session; a failed network leaves it as
 * it is. */
function renew() {
  renewing ??= (async () => {
    let response;
    try {
      const early = bootExchange();
      response = await (early ?? fetch("/auth/token", { method: "POST", headers: { Authorization: `Bearer ${key}` } }));
    } catch (error) {
      throw new ApiError(0, "offline", String(error.message || error));
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) ended();
      throw new ApiError(response.status, data.code || "error", data.message || response.statusText, data);
    }
    token = { value: data.access_token, expires: Date.now() + data.expires_in * 1000 };
    sessionStorage.setItem(TOKEN, JSON.stringify(token));
    schedule();
    return token;
  })().finally(() => { renewing = null; });
  return renewing;
}

/** Sign in with an API key: a token for it, the key kept in this browser only if `remember`. */
export async function signIn(newKey, remember) {
  signOut();
  if (window.cityhexBoot) window.cityhexBoot.token = null;
  key = newKey;
  if (remember) localStorage.setItem(KEY, newKey);
  await renew();
}

/** Who the token says the caller is ({role, name, inspector_id, sub}; null without a token):
 * the screen can start on it while /auth/me confirms (the API judges every request anyway);
 * `sub` (`key:N`) names the key, which the outbox sends its items with. */
export function tokenClaims() {
  if (!token) return null;
  try {
    const part = token.value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const { role, name, inspector_id: inspector, sub } = JSON.parse(atob(part));
    return { role, name, inspector_id: inspector ?? null, sub: sub ?? null };
  } catch {
    return null;
  }
}

/** The SHA-256 (hex) of the key at hand, null without one: names the key when no token
 * (and so no `sub`) is at hand, as on a start without network. */
export async function keyDigest() {
  if (!key || !crypto.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The headers of a request: the Bearer token, then the given ones. */
export function authHeaders(extra = {}) {
  return token ? { Authorization: `Bearer ${token.value}`, ...extra } : { ...extra };
}

/** authHeaders once the token is fresh (renewed first when it has expired and a key is at hand). */
export async function freshHeaders(extra = {}) {
  if (key && (!token || token.expires - Date.now() < 5000)) await renew().catch(() => {});
  return authHeaders(extra);
}

/**
 * One request. `body` (an object) is sent as JSON, a FormData as it is. Resolves to
 * {data, etag, status}; rejects with an ApiError (status 0 when the network failed). A 401
 * on a token renews it once with the key; without a key, or when the key is refused too,
 * the session ends.
 */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}, retried = false) {
  const init = { method, headers: await freshHeaders(headers), signal };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "offline", String(error.message || error));
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 && token) {
    if (key && !retried) {
      await renew(); // rejects (and ends the session) when the key is refused too
      return api(path, { method, body, headers, signal }, true);
    }
    ended();
  }
  if (!response.ok) {
    const message = (data && data.message) || response.statusText;
    throw new ApiError(response.status, (data && data.code) || "error", message, data);
  }
  return { data, etag: response.headers.get("etag"), status: response.status };
}

/** The version number an ETag names (`"7"` → 7). */
export function versionOf(etag) {
  return etag ? Number(etag.replace(/^W\//, "").replace(/"/g, "")) : null;
}

schedule();
