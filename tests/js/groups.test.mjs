// Correlated alert groups: the order the groups panel lists them in.
import assert from "node:assert/strict";
import { test } from "node:test";

import { orderGroups } from "../../services/operations/web/static/js/groups.js";

const group = (key, activeCount) => ({ group_key: key, active_count: activeCount });

test("groups with active alerts come first, each half in the server's order", () => {
  const groups = [group("quiet-1", 0), group("busy-1", 3), group("quiet-2", 0), group("busy-2", 1)];
  assert.deepEqual(orderGroups(groups).map((g) => g.group_key), ["busy-1", "busy-2", "quiet-1", "quiet-2"]);
});

test("the server's list is left as it was", () => {
  const groups = [group("quiet", 0), group("busy", 2)];
  orderGroups(groups);
  assert.deepEqual(groups.map((g) => g.group_key), ["quiet", "busy"]);
});

test("no groups, or none sent, is an empty list", () => {
  assert.deepEqual(orderGroups([]), []);
  assert.deepEqual(orderGroups(null), []);
  assert.deepEqual(orderGroups(undefined), []);
});
