// Calls to CityHex (this page's own origin) with the signed-in key as a Bearer credential.
// Every answer that is not 2xx becomes an ApiError carrying the API's {status, code, message}.

const KEY = "cityhex.key";

/** The API key kept in this browser (null when signed out). */
export function storedKey() {
  return localStorage.getItem(KEY);
}

/** Keep (or, with null, forget) the API key. */
export function storeKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** An error answer of the API, or a request that never reached it (status 0: offline). */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The headers of a request: the Bearer key, then the given ones. */
export function authHeaders(extra = {}) {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

/**
 * One request. `body` (an object) is sent as JSON, a FormData as it is. Resolves to
 * {data, etag, status}; rejects with an ApiError (status 0 when the network failed).
 */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal };
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
