// Which operator actions the board and drawer offer for an alert.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ACTION_KINDS, actionEnabled, actionLabel } from "../../services/operations/web/static/js/actions.js";

const STATUSES = {
  active_unacknowledged: true,
  active_acknowledged: true,
  cleared_unacknowledged: false,
  cleared_acknowledged: false,
};

test("the four actions, in the order their buttons appear, with their labels", () => {
  assert.deepEqual(ACTION_KINDS, ["ack", "assign", "comment", "resolve"]);
  assert.deepEqual(ACTION_KINDS.map(actionLabel), ["Acknowledge", "Assign", "Comment", "Resolve"]);
});

test("acknowledge is offered only while unacknowledged, active or cleared", () => {
  const offered = Object.entries(STATUSES).filter(([status, active]) => actionEnabled("ack", { status, active }));
  assert.deepEqual(offered.map(([status]) => status), ["active_unacknowledged", "cleared_unacknowledged"]);
});

test("resolve is offered only while active", () => {
  for (const [status, active] of Object.entries(STATUSES)) {
    assert.equal(actionEnabled("resolve", { status, active }), active, status);
  }
});

test("assign and comment are always offered", () => {
  for (const [status, active] of Object.entries(STATUSES)) {
    assert.equal(actionEnabled("assign", { status, active }), true);
    assert.equal(actionEnabled("comment", { status, active }), true);
  }
});
