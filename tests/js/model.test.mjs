// The alert vocabulary, board order and filters of the dashboard.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  DEFAULT_FILTERS,
  compareAlerts,
  districtKey,
  isAcknowledged,
  matchesFilters,
  matchesScope,
  severityRank,
  worse,
} from "../../services/operations/web/static/js/model.js";

const alert = (fields = {}) => ({
  alert_id: "env-1",
  domain: "environment",
  severity: "major",
  status: "active_unacknowledged",
  active: true,
  rule_id: "pm25-hourly",
  message: "PM2.5 above the hourly limit",
  source: { domain: "environment", kind: "air-station", entity_id: "casa-maarif-01" },
  district: { city_id: "casablanca", district_id: "maarif", display_name: "Maârif" },
  group_key: "pm25-hourly/casablanca/maarif",
  raise_time: "2025-03-04T10:00:00Z",
  ...fields,
});

const filters = (fields = {}) => ({ ...DEFAULT_FILTERS, ...fields });

describe("severity", () => {
  test("ranks run from info to critical; an unknown severity ranks below all", () => {
    assert.deepEqual(["info", "warning", "minor", "major", "critical"].map(severityRank), [0, 1, 2, 3, 4]);
    assert.equal(severityRank("bogus"), -1);
  });

  test("worse() picks the higher severity and treats null as none", () => {
    assert.equal(worse("minor", "critical"), "critical");
    assert.equal(worse("critical", "minor"), "critical");
    assert.equal(worse(null, "info"), "info");
    assert.equal(worse("warning", null), "warning");
    assert.equal(worse(null, null), null);
  });
});

test("an alert is acknowledged in both acknowledged statuses, active or cleared", () => {
  assert.equal(isAcknowledged(alert({ status: "active_acknowledged" })), true);
  assert.equal(isAcknowledged(alert({ status: "cleared_acknowledged" })), true);
  assert.equal(isAcknowledged(alert({ status: "active_unacknowledged" })), false);
  assert.equal(isAcknowledged(alert({ status: "cleared_unacknowledged" })), false);
});

describe("board order", () => {
  const ids = (alerts, mode) => [...alerts].sort(compareAlerts(mode)).map((a) => a.alert_id);

  test("by severity: active first, worst first, unacknowledged first, then newest, then id", () => {
    const alerts = [
      alert({ alert_id: "cleared-critical", severity: "critical", active: false, status: "cleared_unacknowledged" }),
      alert({ alert_id: "minor", severity: "minor" }),
      alert({ alert_id: "major-acked", status: "active_acknowledged" }),
      alert({ alert_id: "major-old", raise_time: "2025-03-04T09:00:00Z" }),
      alert({ alert_id: "major-b" }),
      alert({ alert_id: "major-a" }),
      alert({ alert_id: "critical", severity: "critical" }),
    ];
    assert.deepEqual(ids(alerts, "severity"),
      ["critical", "major-a", "major-b", "major-old", "major-acked", "minor", "cleared-critical"]);
  });

  test("by newest: active first, then by raise time whatever the severity", () => {
    const alerts = [
      alert({ alert_id: "old-critical", severity: "critical", raise_time: "2025-03-04T08:00:00Z" }),
      alert({ alert_id: "cleared-new", active: false, raise_time: "2025-03-04T12:00:00Z" }),
      alert({ alert_id: "new-info", severity: "info", raise_time: "2025-03-04T11:00:00Z" }),
    ];
    assert.deepEqual(ids(alerts, "newest"), ["new-info", "old-critical", "cleared-new"]);
  });
});

test("a district's key is '<city_id>/<district_id>', and empty without a district", () => {
  assert.equal(districtKey({ city_id: "casablanca", district_id: "maarif" }), "casablanca/maarif");
  assert.equal(districtKey(null), "");
  assert.equal(districtKey(undefined), "");
});

describe("matchesScope", () => {
  test("the default filters match every alert", () => {
    assert.equal(matchesScope(alert(), filters()), true);
    assert.equal(matchesScope(alert({ active: false }), filters()), true);
  });

  test("domain must be equal", () => {
    assert.equal(matchesScope(alert(), filters({ domain: "environment" })), true);
    assert.equal(matchesScope(alert(), filters({ domain: "mobility" })), false);
  });

  test("minimum severity keeps that severity and worse", () => {
    assert.equal(matchesScope(alert({ severity: "major" }), filters({ min_severity: "major" })), true);
    assert.equal(matchesScope(alert({ severity: "critical" }), filters({ min_severity: "major" })), true);
    assert.equal(matchesScope(alert({ severity: "minor" }), filters({ min_severity: "major" })), false);
  });

  test("district is matched on city and district, and excludes alerts without one", () => {
    assert.equal(matchesScope(alert(), filters({ district: "casablanca/maarif" })), true);
    assert.equal(matchesScope(alert(), filters({ district: "rabat/maarif" })), false);
    assert.equal(matchesScope(alert({ district: null }), filters({ district: "casablanca/maarif" })), false);
  });

  test("group key must be equal", () => {
    assert.equal(matchesScope(alert(), filters({ group_key: "pm25-hourly/casablanca/maarif" })), true);
    assert.equal(matchesScope(alert(), filters({ group_key: "pm25-hourly/casablanca/anfa" })), false);
  });

  test("search looks in the message, source id, source kind, source domain and rule, ignoring case", () => {
    for (const q of ["hourly LIMIT", "CASA-MAARIF", "air-station", "Environment", "pm25-HOURLY"]) {
      assert.equal(matchesScope(alert({ rule_id: "pm25-hourly" }), filters({ q })), true, q);
    }
    assert.equal(matchesScope(alert(), filters({ q: "noise" })), false);
  });

  test("search trims the needle, and a blank search matches everything", () => {
    assert.equal(matchesScope(alert(), filters({ q: "  maarif-01  " })), true);
    assert.equal(matchesScope(alert(), filters({ q: "   " })), true);
  });

  test("search copes with an alert without source or message", () => {
    const bare = alert({ source: undefined, message: undefined });
    assert.equal(matchesScope(bare, filters({ q: "pm25" })), true);
    assert.equal(matchesScope(bare, filters({ q: "casa" })), false);
  });

  test("every filter must hold", () => {
    const all = filters({ domain: "environment", min_severity: "minor", district: "casablanca/maarif", q: "pm2.5" });
    assert.equal(matchesScope(alert(), all), true);
    assert.equal(matchesScope(alert({ severity: "info" }), all), false);
  });

  test("state is not part of the scope (the map applies it itself)", () => {
    assert.equal(matchesScope(alert({ active: false }), filters({ state: "active" })), true);
  });
});

describe("matchesFilters", () => {
  const cleared = alert({ active: false, status: "cleared_unacknowledged" });

  test("the active view hides cleared alerts unless they are lingering", () => {
    assert.equal(matchesFilters(alert(), filters({ state: "active" })), true);
    assert.equal(matchesFilters(cleared, filters({ state: "active" })), false);
    assert.equal(matchesFilters(cleared, filters({ state: "active" }), true), true);
  });

  test("the cleared view hides active alerts", () => {
    assert.equal(matchesFilters(cleared, filters({ state: "cleared" })), true);
    assert.equal(matchesFilters(alert(), filters({ state: "cleared" })), false);
  });

  test("any other state shows both, within the scope", () => {
    assert.equal(matchesFilters(cleared, filters({ state: "all" })), true);
    assert.equal(matchesFilters(alert(), filters({ state: "all" })), true);
    assert.equal(matchesFilters(alert(), filters({ state: "all", domain: "waste" })), false);
  });
});

test("DEFAULT_FILTERS cannot be changed by accident", () => {
  assert.equal(Object.isFrozen(DEFAULT_FILTERS), true);
  assert.equal(DEFAULT_FILTERS.state, "active");
});
