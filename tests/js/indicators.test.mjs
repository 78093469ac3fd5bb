// Indicator tiles as the environment publishes them: the NowCast AQI per district (and per
// station), and each station's exceedances this year against its allowance.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { installFakeDom } from "./fake-dom.mjs";

let renderIndicators;
before(async () => {
  installFakeDom();
  ({ renderIndicators } = await import("../../services/operations/web/static/js/kpis.js"));
});

const NOW = new Date().toISOString();
const ANFA = { city_id: "casablanca", district_id: "anfa", display_name: "Anfa" };
const MAARIF = { city_id: "casablanca", district_id: "maarif", display_name: "Maârif" };
const OTHER_CITY = { city_id: "berkane", district_id: "centre", display_name: "Centre" };

function station(id) {
  return { domain: "environment", kind: "station", entity_id: id };
}

function nowcast(district, entity, aqi, band, level) {
  return { domain: "environment", kpi_id: "aqi-nowcast", display_name: "NowCast AQI (US EPA, PM2.5/PM10)",
    district, entity, value: aqi, unit: "", band, band_level: level, observe_time: NOW };
}

function exceedances(district, id, count, allowed, level) {
  return { domain: "environment", kpi_id: "exceedances/eu-2024-2881/pm10-24h",
    display_name: "PM10 1-day limit 45 µg/m³ (eu-2024-2881): exceedances this year",
    district, entity: station(id), value: count, unit: "", band: `${count} of ${allowed} allowed`,
    band_level: level, observe_time: NOW };
}

function all(node, predicate, found = []) {
  for (const child of node.children || []) {
    if (predicate(child)) found.push(child);
    all(child, predicate, found);
  }
  return found;
}

function byClass(node, name) {
  return all(node, (el) => (el.getAttribute("class") || "").split(" ").includes(name));
}

function render(indicators, cityId = "casablanca") {
  const container = globalThis.document.createElement("div");
  renderIndicators(container, { indicators }, cityId);
  return container;
}

describe("renderIndicators with environment KPIs", () => {
  test("shows the NowCast per district first, then per station with its district", () => {
    const container = render([
      nowcast(ANFA, station("cas-air-anfa"), 71, "Moderate", 1),
      nowcast(ANFA, null, 104, "Unhealthy for Sensitive Groups", 2),
      nowcast(ANFA, station("cas-air-casa-port"), 104, "Unhealthy for Sensitive Groups", 2),
      nowcast(MAARIF, null, 40, "Good", 0),
      nowcast(OTHER_CITY, null, 12, "Good", 0),
    ]);
    const [group] = byClass(container, "ind-group");
    assert.equal(group.getAttribute("data-kpi-id"), "aqi-nowcast");
    assert.equal(byClass(group, "ind-scope")[0].textContent, "by district and station");
    const tiles = byClass(group, "ind-tile");
    assert.deepEqual(tiles.map((t) => [t.getAttribute("data-scope"), byClass(t, "ind-tile-name")[0].textContent]), [
      ["district", "Anfa"],
      ["district", "Maârif"],
      ["entity", "cas-air-anfa"],
      ["entity", "cas-air-casa-port"],
    ]);  // Berkane's district is another city's: not on this city's wall
    assert.equal(byClass(tiles[0], "ind-tile-value")[0].textContent, "104");
    assert.equal(byClass(tiles[0], "ind-tile-band")[0].textContent, "Unhealthy for Sensitive Groups");
    assert.equal(byClass(tiles[2], "ind-tile-district")[0].textContent, "Anfa");
    assert.equal(byClass(tiles[0], "ind-tile-district").length, 0);
    assert.match(byClass(group, "ind-worst")[0].textContent, /Unhealthy for Sensitive Groups · Anfa/);
  });

  test("shows each station's exceedances this year as count of allowance, coloured by how much is used", () => {
    const container = render([
      exceedances(ANFA, "cas-air-anfa", 20, 18, 4),
      exceedances(MAARIF, "cas-air-maarif", 3, 18, 0),
    ]);
    const [group] = byClass(container, "ind-group");
    assert.equal(byClass(group, "ind-scope")[0].textContent, "per station");
    const tiles = byClass(group, "ind-tile");
    assert.deepEqual(tiles.map((t) => [
      byClass(t, "ind-tile-name")[0].textContent,
      byClass(t, "ind-tile-district")[0].textContent,
      byClass(t, "ind-tile-value")[0].textContent,
      byClass(t, "ind-tile-band")[0].textContent,
      t.getAttribute("data-band-level"),
    ]), [
      ["cas-air-anfa", "Anfa", "20", "20 of 18 allowed", "4"],
      ["cas-air-maarif", "Maârif", "3", "3 of 18 allowed", "0"],
    ]);
  });
});
