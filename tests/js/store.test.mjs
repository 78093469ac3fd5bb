// The dashboard's alert store: REST snapshots merged with live SSE updates and action replies.
import assert from "node:assert/strict";
import { beforeEach, describe, mock, test } from "node:test";

import { AlertStore, LINGER_MS } from "../../services/operations/web/static/js/store.js";

function alert(id, revision, fields = {}) {
  return { alert_id: id, revision, active: true, status: "active_unacknowledged", ...fields };
}

/** Every "change" event's flash list, in order. */
function recordChanges(store) {
  const changes = [];
  store.addEventListener("change", (event) => changes.push(event.detail.flash));
  return changes;
}

let store;
beforeEach(() => {
  store = new AlertStore();
});

describe("snapshot", () => {
  test("a snapshot fills the store and announces a change without flashing rows", () => {
    const changes = recordChanges(store);
    store.applySnapshot([alert("a", 1), alert("b", 2)], store.mark());
    assert.deepEqual([...store.values()].map((a) => a.alert_id), ["a", "b"]);
    assert.equal(store.get("b").revision, 2);
    assert.deepEqual(changes, [[]]);
  });

  test("a snapshot replaces what the store held when nothing changed live since the request", () => {
    store.applySnapshot([alert("a", 1)], store.mark());
    store.applySnapshot([alert("a", 2, { message: "newer" })], store.mark());
    assert.equal(store.get("a").message, "newer");
  });

  test("an alert updated live while the request was in flight keeps its live version", () => {
    const mark = store.mark();
    store.applyLive(alert("a", 3, { message: "live" }));
    store.applySnapshot([alert("a", 2, { message: "read before the update" })], mark);
    assert.equal(store.get("a").message, "live");
    assert.equal(store.get("a").revision, 3);
  });

  test("a live update received before the request was sent does not protect the alert", () => {
    store.applyLive(alert("a", 1, { message: "live" }));
    const mark = store.mark();
    store.applySnapshot([alert("a", 1, { message: "acknowledged since", status: "active_acknowledged" })], mark);
    assert.equal(store.get("a").status, "active_acknowledged");
  });

  test("an authoritative active list drops active alerts it lacks: they cleared unseen", () => {
    store.applySnapshot([alert("a", 1), alert("b", 1)], store.mark());
    store.applySnapshot([alert("a", 1)], store.mark(), { authoritativeActive: true });
    assert.equal(store.get("b"), undefined);
    assert.ok(store.get("a"));
  });

  test("an authoritative active list keeps cleared alerts and alerts raised live after the request", () => {
    store.applySnapshot([alert("cleared", 4, { active: false, status: "cleared_unacknowledged" })], store.mark());
    const mark = store.mark();
    store.applyLive(alert("fresh", 1));
    store.applySnapshot([], mark, { authoritativeActive: true });
    assert.ok(store.get("cleared"));
    assert.ok(store.get("fresh"));
  });

  test("a partial list (not authoritative) never drops alerts", () => {
    store.applySnapshot([alert("a", 1), alert("b", 1)], store.mark());
    store.applySnapshot([alert("a", 1)], store.mark());
    assert.ok(store.get("b"));
  });
});

describe("live updates", () => {
  test("a live update flashes its row", () => {
    const changes = recordChanges(store);
    store.applyLive(alert("a", 1));
    assert.deepEqual(changes, [["a"]]);
  });

  test("updates applied in order leave the newest revision", () => {
    for (const revision of [1, 2, 3]) store.applyLive(alert("a", revision, { message: `rev ${revision}` }));
    assert.equal(store.get("a").revision, 3);
    assert.equal(store.get("a").message, "rev 3");
  });

  test("an update older than the stored revision is ignored and announces nothing", () => {
    store.applyLive(alert("a", 3, { message: "rev 3" }));
    const changes = recordChanges(store);
    store.applyLive(alert("a", 2, { message: "rev 2, late" }));
    assert.equal(store.get("a").message, "rev 3");
    assert.deepEqual(changes, []);
  });

  test("a live revision older than the snapshot's is ignored", () => {
    store.applySnapshot([alert("a", 5, { message: "snapshot" })], store.mark());
    store.applyLive(alert("a", 4, { message: "stale stream" }));
    assert.equal(store.get("a").message, "snapshot");
    assert.equal(store.get("a").revision, 5);
  });

  test("the same revision is applied, since actions change an alert without a new revision", () => {
    store.applyLive(alert("a", 2));
    store.applyLive(alert("a", 2, { status: "active_acknowledged", acknowledged_by: "op" }));
    assert.equal(store.get("a").status, "active_acknowledged");
  });

  test("a duplicate delivery leaves one alert with the same content", () => {
    const event = alert("a", 2, { message: "once" });
    store.applyLive(event);
    store.applyLive({ ...event });
    assert.equal([...store.values()].length, 1);
    assert.deepEqual(store.get("a"), event);
  });
});

describe("action replies", () => {
  test("an action's reply is applied without flashing the row", () => {
    store.applySnapshot([alert("a", 1)], store.mark());
    const changes = recordChanges(store);
    const mark = store.mark();
    store.applyLive(alert("a", 1, { status: "active_acknowledged" }), { mark, flash: false });
    assert.equal(store.get("a").status, "active_acknowledged");
    assert.deepEqual(changes, [[]]);
  });

  test("a reply does not overwrite a live update that arrived after the action was sent", () => {
    const mark = store.mark();
    store.applyLive(alert("a", 2, { message: "cleared live", active: false, status: "cleared_acknowledged" }));
    store.applyLive(alert("a", 2, { message: "reply", status: "active_acknowledged" }), { mark, flash: false });
    assert.equal(store.get("a").message, "cleared live");
  });
});

describe("resume after a reconnect", () => {
  test("the re-read list fills the gap, and the stream carries on from there", () => {
    store.applySnapshot([alert("a", 1), alert("b", 1)], store.mark());
    store.applyLive(alert("a", 2));
    // Stream lost. Meanwhile "a" moved to revision 4 and "b" cleared and left the active list.
    const mark = store.mark();
    store.applyLive(alert("c", 1)); // replayed by the resumed stream while the list is in flight
    store.applySnapshot([alert("a", 4)], mark, { authoritativeActive: true });
    assert.equal(store.get("a").revision, 4);
    assert.equal(store.get("b"), undefined);
    assert.ok(store.get("c"));
    store.applyLive(alert("a", 3)); // a late replay older than the list is ignored
    assert.equal(store.get("a").revision, 4);
    store.applyLive(alert("a", 5));
    assert.equal(store.get("a").revision, 5);
  });
});

describe("lingering cleared alerts", () => {
  test("an alert that clears live lingers for LINGER_MS, then leaves", () => {
    mock.method(Date, "now", () => 1_000);
    try {
      store.applyLive(alert("a", 1));
      store.applyLive(alert("a", 2, { active: false, status: "cleared_unacknowledged" }));
    } finally {
      mock.restoreAll();
    }
    assert.equal(store.nextLingerExpiry(), 1_000 + LINGER_MS);
    assert.equal(store.isLingering("a", 1_000 + LINGER_MS - 1), true);
    assert.equal(store.isLingering("a", 1_000 + LINGER_MS), false);
    assert.equal(store.nextLingerExpiry(), null);
  });

  test("an alert that arrives already cleared does not linger", () => {
    store.applyLive(alert("a", 2, { active: false, status: "cleared_unacknowledged" }));
    assert.equal(store.isLingering("a"), false);
    assert.equal(store.nextLingerExpiry(), null);
  });

  test("the next expiry is the earliest of several", () => {
    const now = mock.method(Date, "now", () => 5_000);
    try {
      store.applyLive(alert("late", 1));
      store.applyLive(alert("early", 1));
      store.applyLive(alert("early", 2, { active: false }));
      now.mock.mockImplementation(() => 9_000);
      store.applyLive(alert("late", 2, { active: false }));
    } finally {
      mock.restoreAll();
    }
    assert.equal(store.nextLingerExpiry(), 5_000 + LINGER_MS);
  });
});

test("marks increase, so later requests are told apart from earlier ones", () => {
  const first = store.mark();
  assert.ok(store.mark() > first);
});

test("clear() forgets alerts, live stamps and lingering", () => {
  const mark = store.mark();
  store.applyLive(alert("a", 1));
  store.applyLive(alert("a", 2, { active: false }));
  const changes = recordChanges(store);
  store.clear();
  assert.equal([...store.values()].length, 0);
  assert.equal(store.nextLingerExpiry(), null);
  assert.deepEqual(changes, [[]]);
  store.applySnapshot([alert("a", 1)], mark);
  assert.ok(store.get("a"), "a snapshot older than the cleared live update applies again");
});
