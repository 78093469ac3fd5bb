// REST client: bearer auth on every call, JSON in and out, errors carry the server's "detail".

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

/** FastAPI sends {"detail": "text"} or, for validation errors, {"detail": [{"loc", "msg"}]}. */
function detailOf(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => [(e.loc || []).filter((p) => p !== "body").join("."), e.msg]
      .filter(Boolean).join(": ")).join("; ");
  }
  return `HTTP ${status}`;
}

/**
 * @param {() => string|null} getToken
 * @param {(error: ApiError) => void} onUnauthorized called on any 401, before the promise rejects
 */
export function createApi({ getToken, onUnauthorized }) {
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit",
      });
    } catch {
      throw new ApiError(0, "The operations service is unreachable");
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, detailOf(json, response.status));
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return json;
  }

  return {
    get: (path, params) => request("GET", withQuery(path, params)),
    post: (path, body) => request("POST", path, body ?? {}),
    del: (path) => request("DELETE", path),
  };
}

export function withQuery(path, params) {
  if (!params) return path;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
