// The map layers' pure part: grouping features into layers, hiding layers, colours and tooltips.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  featureTipLines, layerOf, levelSeverity, polylinePoints, visibleFeatures,
} from "../../services/operations/web/static/js/mapfeatures.js";

const layers = [
  { name: "Buses", domain: "mobility", kinds: ["bus"] },
  { name: "Containers", domain: "waste", kinds: ["container"] },
  { name: "Collection routes", domain: "waste", kinds: ["collection-route"] },
];

function feature(id, overrides = {}) {
  return {
    feature_id: id, domain: "mobility", kind: "bus", label: id, city_id: "casa",
    points: [[33.5, -7.6]], level: "ok", status: "on time", details: {}, ...overrides,
  };
}

describe("levelSeverity", () => {
  test("maps levels onto the alert severity colours, unknown to none", () => {
    assert.equal(levelSeverity("critical"), "critical");
    assert.equal(levelSeverity("warning"), "major");
    assert.equal(levelSeverity("watch"), "warning");
    assert.equal(levelSeverity("ok"), "info");
    assert.equal(levelSeverity("unknown"), "none");
    assert.equal(levelSeverity(undefined), "none");
  });
});

describe("layerOf", () => {
  test("finds the layer by domain and kind, so two layers of one domain stay apart", () => {
    assert.equal(layerOf(feature("r", { domain: "waste", kind: "collection-route" }), layers), "Collection routes");
    assert.equal(layerOf(feature("c", { domain: "waste", kind: "container" }), layers), "Containers");
    assert.equal(layerOf(feature("x", { domain: "energy", kind: "streetlight" }), layers), null);
  });
});

describe("visibleFeatures", () => {
  const route = feature("route", { domain: "waste", kind: "collection-route", points: [[33.5, -7.6], [33.6, -7.5]] });
  const body = {
    layers,
    features: [
      feature("late", { level: "critical" }), feature("fine"), route,
      feature("far", { city_id: "rabat" }), feature("nowhere", { points: [] }),
    ],
  };

  test("keeps the city's features, lines beneath and the worst point on top", () => {
    assert.deepEqual(visibleFeatures(body, new Set(), "casa").map((f) => f.feature_id), ["route", "fine", "late"]);
  });

  test("leaves out a hidden layer's features", () => {
    assert.deepEqual(visibleFeatures(body, new Set(["Buses"]), "casa").map((f) => f.feature_id), ["route"]);
  });

  test("copes with no answer yet", () => {
    assert.deepEqual(visibleFeatures(null, new Set(), "casa"), []);
  });
});

describe("polylinePoints and featureTipLines", () => {
  test("project each vertex and round to a tenth of a pixel", () => {
    assert.equal(polylinePoints([[1, 2], [3, 4]], ([lat, lon]) => [lon * 10.04, lat * 2]), "20.1,2.0 40.2,6.0");
  });

  test("name the feature, its status and its details", () => {
    const lines = featureTipLines(feature("bus-12", { label: "Bus 12 (route 3)", status: "+4 min late",
      details: { Route: "3", Stop: "Gare" } }));
    assert.deepEqual(lines, ["Bus 12 (route 3)", "+4 min late", "Route: 3", "Stop: Gare"]);
  });
});
