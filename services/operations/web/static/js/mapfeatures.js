// The map layers' pure part: which layer a feature belongs to, which are shown, how each is
// coloured and what its tooltip says. map.js draws; main.js polls /api/v1/map/features.

/**
 * A feature's level in the alert severity colours the map already uses, so "red" means the
 * same on a bus marker as on an alert marker.
 */
const LEVEL_SEVERITY = {
  critical: "critical",
  warning: "major",
  watch: "warning",
  ok: "info",
};

export function levelSeverity(level) {
  return LEVEL_SEVERITY[level] || "none";
}

const LEVEL_RANK = { unknown: 0, ok: 1, watch: 2, warning: 3, critical: 4 };

/** The layer that shows a feature: its domain's layer whose current kinds include the feature's. */
export function layerOf(feature, layers) {
  const layer = layers.find((l) => l.domain === feature.domain && (l.kinds || []).includes(feature.kind));
  return layer ? layer.name : null;
}

/**
 * The features to draw for one city, without the hidden layers' ones; lines first (beneath),
 * then points with the worst last, so it sits on top where markers overlap.
 */
export function visibleFeatures(body, hidden, cityId) {
  const layers = (body && body.layers) || [];
  const shown = ((body && body.features) || []).filter((feature) =>
    Array.isArray(feature.points) && feature.points.length > 0
    && (!cityId || feature.city_id === cityId)
    && !hidden.has(layerOf(feature, layers)));
  const rank = (feature) => (feature.points.length > 1 ? -1 : LEVEL_RANK[feature.level] ?? 0);
  return shown.sort((a, b) => rank(a) - rank(b));
}

/** SVG "x,y x,y" for a line's vertices, through the map's projection. */
export function polylinePoints(points, project) {
  return points.map((point) => project(point).map((n) => n.toFixed(1)).join(",")).join(" ");
}

/** Tooltip lines: [label, status, ...details as "key: value"]. */
export function featureTipLines(feature) {
  const details = Object.entries(feature.details || {}).map(([key, value]) => `${key}: ${value}`);
  return [feature.label || feature.feature_id, feature.status || "", ...details].filter(Boolean);
}
