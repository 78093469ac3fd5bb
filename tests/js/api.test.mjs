// The dashboard's REST client: query strings, bearer auth, and the error text operators see.
import assert from "node:assert/strict";
import { afterEach, describe, mock, test } from "node:test";

import { ApiError, createApi, withQuery } from "../../services/operations/web/static/js/api.js";

describe("withQuery", () => {
  test("adds the parameters that have a value and leaves out the empty ones", () => {
    assert.equal(withQuery("/api/v1/alerts", { state: "active", domain: "", page_token: null, q: undefined, limit: 100 }),
      "/api/v1/alerts?state=active&limit=100");
  });

  test("encodes values, and returns the bare path without parameters", () => {
    assert.equal(withQuery("/x", { q: "a b&c" }), "/x?q=a+b%26c");
    assert.equal(withQuery("/x", {}), "/x");
    assert.equal(withQuery("/x"), "/x");
  });
});

describe("createApi", () => {
  afterEach(() => mock.restoreAll());

  function respond(status, body) {
    return mock.method(globalThis, "fetch", async () => new Response(body, { status }));
  }

  test("sends the bearer token and a JSON body, and returns the parsed reply", async () => {
    const fetch = respond(200, JSON.stringify({ alert: { alert_id: "a" } }));
    const api = createApi({ getToken: () => "secret", onUnauthorized: () => assert.fail("not a 401") });
    assert.deepEqual(await api.post("/api/v1/alerts/a/ack"), { alert: { alert_id: "a" } });
    const [path, init] = fetch.mock.calls[0].arguments;
    assert.equal(path, "/api/v1/alerts/a/ack");
    assert.equal(init.method, "POST");
    assert.equal(init.headers.Authorization, "Bearer secret");
    assert.equal(init.headers["Content-Type"], "application/json");
    assert.equal(init.body, "{}");
  });

  test("no token, no Authorization header; 204 is null", async () => {
    const fetch = respond(204, null);
    const api = createApi({ getToken: () => null, onUnauthorized: () => {} });
    assert.equal(await api.del("/api/v1/silences/s1"), null);
    assert.equal("Authorization" in fetch.mock.calls[0].arguments[1].headers, false);
  });

  test("an error carries the server's detail text", async () => {
    respond(409, JSON.stringify({ detail: "already resolved" }));
    const api = createApi({ getToken: () => "t", onUnauthorized: () => {} });
    await assert.rejects(api.get("/x"), (error) => error instanceof ApiError && error.status === 409 &&
      error.message === "already resolved");
  });

  test("a validation error lists each field and message, without the 'body' prefix", async () => {
    respond(422, JSON.stringify({ detail: [{ loc: ["body", "matchers", 0], msg: "bad op" }, { loc: [], msg: "too long" }] }));
    const api = createApi({ getToken: () => "t", onUnauthorized: () => {} });
    await assert.rejects(api.post("/api/v1/silences", {}), { message: "matchers.0: bad op; too long" });
  });

  test("a reply that is not JSON falls back to the status", async () => {
    respond(502, "<html>Bad gateway</html>");
    const api = createApi({ getToken: () => "t", onUnauthorized: () => {} });
    await assert.rejects(api.get("/x"), { status: 502, message: "HTTP 502" });
  });

  test("a 401 calls onUnauthorized before the promise rejects", async () => {
    respond(401, JSON.stringify({ detail: "token expired" }));
    const seen = [];
    const api = createApi({ getToken: () => "t", onUnauthorized: (error) => seen.push(error.status) });
    await assert.rejects(api.get("/x"), { status: 401 });
    assert.deepEqual(seen, [401]);
  });

  test("a network failure is an error with status 0", async () => {
    mock.method(globalThis, "fetch", async () => { throw new TypeError("fetch failed"); });
    const api = createApi({ getToken: () => "t", onUnauthorized: () => {} });
    await assert.rejects(api.get("/x"), { status: 0, message: "The operations service is unreachable" });
  });
});
