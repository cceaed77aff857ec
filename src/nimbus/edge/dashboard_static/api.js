// The platform API, called with the platform's token. The token comes in the URL's fragment
// (`#token=...`, which browsers never send to a server), is kept in this tab's sessionStorage
// and removed from the address bar, so it does not end up in history, logs or screenshots.

const KEY = "nimbus.token";
export const BASE = "/_nimbus";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Take a token given in the fragment; true when one is known. */
export function takeToken() {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem(KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return Boolean(sessionStorage.getItem(KEY));
}

export function setToken(token) {
  sessionStorage.setItem(KEY, token.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/** Call the API; resolves to its JSON, or rejects with an ApiError carrying its message. */
export async function api(path, options = {}) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  const response = await fetch(BASE + path, { ...options, headers, cache: "no-store" });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

/** Like api(), but null when the endpoint does not exist on this platform (an older one). */
export async function optional(path) {
  try {
    return await api(path);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}
