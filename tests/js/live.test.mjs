// The live SSE stream: resume cursor, reconnect with backoff, heartbeat watchdog. EventSource is
// replaced by a fake the test drives by hand, and the clock is node:test's mock timers.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { createLiveStream } from "../../services/operations/web/static/js/live.js";

class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static opened = [];

  constructor(url) {
    this.url = new URL(url, "http://dashboard.test");
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = new Map();
    FakeEventSource.opened.push(this);
  }

  addEventListener(type, fn) {
    this.listeners.set(type, [...(this.listeners.get(type) || []), fn]);
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  emit(type, event = {}) {
    if (type === "open") this.readyState = FakeEventSource.OPEN;
    for (const fn of this.listeners.get(type) || []) fn(event);
  }

  /** The server answered with an error status: the browser gives up on this source. */
  refuse() {
    this.readyState = FakeEventSource.CLOSED;
    this.emit("error");
  }
}

const latest = () => FakeEventSource.opened.at(-1);

let calls;
let stream;

beforeEach(() => {
  FakeEventSource.opened = [];
  globalThis.EventSource = FakeEventSource;
  mock.timers.enable({ apis: ["setInterval", "setTimeout", "Date"], now: 1_000_000 });
  calls = { alerts: [], states: [], reconnected: 0, gaveUp: 0 };
  stream = createLiveStream({
    getToken: () => "tok+en/1",
    onAlert: (payload) => calls.alerts.push(payload),
    onState: (state, label) => calls.states.push([state, label]),
    onReconnected: () => { calls.reconnected += 1; },
    onGaveUp: () => { calls.gaveUp += 1; },
  });
});

afterEach(() => {
  stream.dispose();
  mock.timers.reset();
  mock.restoreAll();
  delete globalThis.EventSource;
});

test("the first connection passes the token and reports connecting, then live", () => {
  stream.start();
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(latest().url.pathname, "/api/v1/stream");
  assert.equal(latest().url.searchParams.get("access_token"), "tok+en/1");
  assert.equal(latest().url.searchParams.has("last_event_id"), false);
  latest().emit("open");
  assert.deepEqual(calls.states, [["reconnecting", "Connecting…"], ["connected", "Live"]]);
  assert.equal(calls.reconnected, 0);
});

test("alert events reach onAlert in the order they arrive", () => {
  stream.start();
  latest().emit("open");
  for (const revision of [1, 2, 3]) {
    latest().emit("alert", { lastEventId: String(revision), data: JSON.stringify({ alert: { alert_id: "a", revision } }) });
  }
  assert.deepEqual(calls.alerts.map((p) => p.alert.revision), [1, 2, 3]);
});

test("an event that is not JSON, or carries no alert, is skipped", () => {
  const warn = mock.method(console, "warn", () => {});
  stream.start();
  latest().emit("alert", { data: "{not json" });
  latest().emit("alert", { data: JSON.stringify({ heartbeat: true }) });
  assert.equal(calls.alerts.length, 0);
  assert.equal(warn.mock.callCount(), 1);
});

describe("resume", () => {
  test("after a refusal, it reconnects itself with the last cursor and reports the gap", () => {
    stream.start();
    latest().emit("open");
    latest().emit("alert", { lastEventId: "41", data: JSON.stringify({ alert: { alert_id: "a", revision: 1 } }) });
    latest().emit("alert", { lastEventId: "42", data: JSON.stringify({ alert: { alert_id: "a", revision: 2 } }) });
    latest().refuse();
    assert.equal(calls.gaveUp, 1);
    assert.equal(FakeEventSource.opened.length, 1, "waits before reconnecting");

    mock.timers.tick(1000);
    assert.equal(FakeEventSource.opened.length, 2);
    assert.equal(latest().url.searchParams.get("last_event_id"), "42");
    assert.equal(latest().url.searchParams.get("access_token"), "tok+en/1");
    latest().emit("open");
    assert.equal(calls.reconnected, 1, "the page re-reads the list to cover the gap");
    assert.deepEqual(calls.states.at(-1), ["connected", "Live"]);
  });

  test("an event without an id keeps the previous cursor", () => {
    stream.start();
    latest().emit("alert", { lastEventId: "7", data: JSON.stringify({ alert: { alert_id: "a" } }) });
    latest().emit("alert", { lastEventId: "", data: JSON.stringify({ alert: { alert_id: "b" } }) });
    latest().refuse();
    mock.timers.tick(1000);
    assert.equal(latest().url.searchParams.get("last_event_id"), "7");
  });

  test("a transient error is left to the browser's own reconnect", () => {
    stream.start();
    latest().emit("open");
    latest().emit("error"); // readyState stays CONNECTING: the browser retries with Last-Event-ID
    mock.timers.tick(60_000);
    assert.equal(FakeEventSource.opened.length, 1);
    assert.equal(calls.gaveUp, 0);
    assert.deepEqual(calls.states.at(-1), ["reconnecting", "Reconnecting…"]);
  });

  test("backoff grows while refusals continue, and resets once a connection opens", () => {
    stream.start();
    const waits = [];
    for (let i = 0; i < 7; i += 1) {
      latest().refuse();
      const before = FakeEventSource.opened.length;
      let waited = 0;
      while (FakeEventSource.opened.length === before) {
        mock.timers.tick(500);
        waited += 500;
      }
      waits.push(waited);
    }
    assert.deepEqual(waits, [1000, 2000, 5000, 10000, 20000, 30000, 30000]);
    latest().emit("open");
    latest().refuse();
    mock.timers.tick(1000);
    assert.equal(FakeEventSource.opened.length, 9);
  });

  test("events from a replaced connection are ignored", () => {
    stream.start();
    const old = latest();
    old.refuse();
    mock.timers.tick(1000);
    old.emit("alert", { lastEventId: "99", data: JSON.stringify({ alert: { alert_id: "late" } }) });
    old.emit("open");
    assert.equal(calls.alerts.length, 0);
    assert.equal(calls.reconnected, 0);
  });
});

describe("heartbeat watchdog", () => {
  test("once heartbeats have been seen, 45 s of silence forces a reconnect", () => {
    stream.start();
    latest().emit("open");
    latest().emit("heartbeat");
    mock.timers.tick(45_000);
    assert.equal(FakeEventSource.opened.length, 1);
    mock.timers.tick(5_000);
    assert.equal(FakeEventSource.opened[0].readyState, FakeEventSource.CLOSED);
    mock.timers.tick(1_000);
    assert.equal(FakeEventSource.opened.length, 2);
  });

  test("without heartbeats from the server, silence is not an error", () => {
    stream.start();
    latest().emit("open");
    mock.timers.tick(5 * 60_000);
    assert.equal(FakeEventSource.opened.length, 1);
  });
});

test("stop() closes the stream and cancels a pending reconnect", () => {
  stream.start();
  latest().refuse();
  stream.stop();
  mock.timers.tick(60_000);
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(latest().readyState, FakeEventSource.CLOSED);
});
