// The city map, drawn as SVG from /api/v1/geo district outlines. No tiles: an equirectangular
// projection (longitude scaled by cos(latitude)) fitted to the city's bounding box, in the
// container's own pixels so markers and labels keep their size at any panel width.

import { severityBadge, statusBadge } from "./badges.js";
import { clear, fill, h, s } from "./dom.js";
import { relativeTime, value } from "./format.js";
import { featureTipLines, layerOf, levelSeverity, polylinePoints, visibleFeatures } from "./mapfeatures.js";
import { isAcknowledged, severityRank, worse } from "./model.js";

const PADDING = 24;
const MARKER_GAP = 14; // px between marker centres: radius 6, a stroke and a hair of space
const LEGEND_SPACE = 30; // the legend overlays the bottom-left corner

export function createMap({ container, tooltip, summary, layerToggles, onSelect }) {
  let city = null;
  let alerts = [];
  let mapFeatures = null; // the last /api/v1/map/features answer
  const hiddenLayers = new Set();
  let selectedId = null;
  let size = { width: 0, height: 0 };

  new ResizeObserver(() => {
    const { clientWidth: width, clientHeight: height } = container;
    if (width !== size.width || height !== size.height) {
      size = { width, height };
      render();
    }
  }).observe(container);

  function projection() {
    const points = city.districts.flatMap((d) => d.polygon);
    const lats = points.map((p) => p[0]);
    const lons = points.map((p) => p[1]);
    const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const spanX = Math.max((maxLon - minLon) * kx, 1e-9);
    const spanY = Math.max(maxLat - minLat, 1e-9);
    const usableHeight = size.height - 2 * PADDING - LEGEND_SPACE;
    const scale = Math.min((size.width - 2 * PADDING) / spanX, usableHeight / spanY);
    const offsetX = (size.width - spanX * scale) / 2;
    const offsetY = PADDING + (usableHeight - spanY * scale) / 2;
    return ([lat, lon]) => [offsetX + (lon - minLon) * kx * scale, offsetY + (maxLat - lat) * scale];
  }

  let drawn = "";

  /** What the picture depends on; an SSE update that only changes a value redraws nothing. */
  function signature() {
    return JSON.stringify([city && city.id, size, selectedId, alerts.map((a) =>
      [a.alert_id, a.severity, a.status, a.location, a.district && a.district.district_id, a.message]),
    mapFeatures && mapFeatures.features, [...hiddenLayers]]);
  }

  function render() {
    const next = signature();
    if (next === drawn) return;
    drawn = next;
    clear(container);
    hideTooltip();
    summary.textContent = "";
    if (!city || !size.width || !size.height) return;
    if (!city.districts.length) {
      container.append(h("div", { class: "empty" }, "No districts defined for this city."));
      return;
    }
    const project = projection();
    const inCity = alerts.filter((a) => !a.district || a.district.city_id === city.id);
    const byDistrict = new Map();
    for (const alert of inCity) {
      if (!alert.district) continue;
      const entry = byDistrict.get(alert.district.district_id) || { worst: null, count: 0, unacked: 0 };
      entry.worst = worse(entry.worst, alert.severity);
      entry.count += 1;
      if (!isAcknowledged(alert)) entry.unacked += 1;
      byDistrict.set(alert.district.district_id, entry);
    }

    const svg = s("svg", {
      class: "map-svg", width: size.width, height: size.height,
      viewBox: `0 0 ${size.width} ${size.height}`, role: "presentation",
    });
    svg.append(s("defs", {},
      s("pattern", { id: "map-grid", width: 24, height: 24, patternUnits: "userSpaceOnUse" },
        s("path", { d: "M24 0H0V24", fill: "none", class: "map-grid-line" }))));
    svg.append(s("rect", { x: 0, y: 0, width: size.width, height: size.height, fill: "url(#map-grid)" }));

    const districts = s("g", { class: "districts" });
    const labels = s("g", { class: "district-labels" });
    for (const district of city.districts) {
      const stats = byDistrict.get(district.id);
      const points = district.polygon.map((p) => project(p).map((n) => n.toFixed(1)).join(",")).join(" ");
      const poly = s("polygon", {
        points, class: ["district", stats ? `fill-${stats.worst}` : "fill-none"],
        "data-district-id": district.id,
      });
      poly.addEventListener("mousemove", (event) => showTooltip(event, districtTip(district, stats)));
      poly.addEventListener("mouseleave", hideTooltip);
      districts.append(poly);
      // Labels sit under the outline, so they never hide the markers inside it.
      const projected = district.polygon.map(project);
      const bottom = Math.max(...projected.map((p) => p[1]));
      const [cx] = project(district.center);
      labels.append(s("text", { x: cx.toFixed(1), y: (bottom + 12).toFixed(1), class: "district-label", "text-anchor": "middle" },
        shortName(district.name),
        stats ? s("tspan", { class: `district-count txt-${stats.worst}`, dx: 5 }, String(stats.count)) : null));
    }
    svg.append(districts, labels, drawFeatures(project));

    const markers = s("g", { class: "markers" });
    // Pulses live in their own layer: inside a marker, their animation would make the marker's
    // box change every frame, which browsers' automation (and hit-testing) reads as "moving".
    const pulses = s("g", { class: "pulses", "aria-hidden": "true" });
    const located = inCity.filter((a) => a.location && Number.isFinite(Number(a.location.lat)));
    // Worst drawn last so it sits on top where markers overlap.
    located.sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
    const placed = [];
    for (const alert of located) {
      const [x, y] = place(project([Number(alert.location.lat), Number(alert.location.lon)]), placed);
      placed.push([x, y]);
      const urgent = !isAcknowledged(alert) && severityRank(alert.severity) >= severityRank("major");
      const g = s("g", {
        class: ["marker", `mk-${alert.severity}`, selectedId === alert.alert_id ? "is-selected" : "", urgent ? "is-urgent" : ""],
        transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
        "data-marker-alert-id": alert.alert_id, tabindex: "0", role: "button",
        "aria-label": `${alert.severity} alert: ${alert.message || alert.rule_id}`,
      },
      s("circle", { class: "marker-dot", r: selectedId === alert.alert_id ? 7.5 : 6 }));
      g.addEventListener("mousemove", (event) => showTooltip(event, alertTip(alert)));
      g.addEventListener("mouseleave", hideTooltip);
      g.addEventListener("click", () => onSelect(alert.alert_id));
      g.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(alert.alert_id);
        }
      });
      markers.append(g);
      if (urgent) pulses.append(s("circle", { class: `marker-pulse mk-${alert.severity}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }));
    }
    svg.append(pulses, markers);
    container.append(svg);
    const hit = byDistrict.size;
    summary.textContent = inCity.length
      ? `${inCity.length} active · ${hit} of ${city.districts.length} districts`
      : "No active alerts";
  }

  /** The domains' layers: beneath the alert markers, which stay what an operator acts on. */
  function drawFeatures(project) {
    const layer = s("g", { class: "map-features" });
    for (const feature of visibleFeatures(mapFeatures, hiddenLayers, city.id)) {
      const colour = `lv-${levelSeverity(feature.level)}`;
      const shape = feature.points.length > 1
        ? s("polyline", { class: ["feature-line", colour], points: polylinePoints(feature.points, project) })
        : circleAt(project(feature.points[0]), colour);
      shape.setAttribute("data-feature-id", feature.feature_id);
      shape.addEventListener("mousemove", (event) => showTooltip(event, featureTip(feature)));
      shape.addEventListener("mouseleave", hideTooltip);
      layer.append(shape);
    }
    return layer;
  }

  function circleAt([x, y], colour) {
    return s("circle", { class: ["feature-dot", colour], cx: x.toFixed(1), cy: y.toFixed(1), r: 3.5 });
  }

  function featureTip(feature) {
    const [title, ...rows] = featureTipLines(feature);
    return [
      h("div", { class: "tip-row" }, severityBadge(levelSeverity(feature.level) === "none" ? null : levelSeverity(feature.level)),
        ` ${layerOf(feature, mapFeatures.layers) || feature.kind}`),
      h("div", { class: "tip-title" }, title),
      ...rows.map((row) => h("div", { class: "tip-row" }, row)),
    ];
  }

  /** One toggle per declared layer; a layer with nothing to show yet still gets its toggle. */
  function renderToggles() {
    if (!layerToggles) return;
    const layers = (mapFeatures && mapFeatures.layers) || [];
    fill(layerToggles, ...layers.map((layer) => h("label", { class: "legend-item layer-toggle", title: layer.domain },
      h("input", {
        type: "checkbox", checked: !hiddenLayers.has(layer.name), "data-layer": layer.name,
        onchange: (event) => {
          if (event.target.checked) hiddenLayers.delete(layer.name);
          else hiddenLayers.add(layer.name);
          render();
        },
      }),
      layer.name)));
  }

  /**
   * Co-located sources (three sensors on one mast) would hide each other: a marker that would
   * overlap one already placed moves to the nearest free spot on a ring around its position.
   */
  function place([x, y], placed) {
    const free = ([px, py]) => placed.every(([qx, qy]) => Math.hypot(px - qx, py - qy) >= MARKER_GAP);
    if (free([x, y])) return [x, y];
    for (let ring = 1; ring <= 4; ring += 1) {
      const slots = 6 * ring;
      for (let i = 0; i < slots; i += 1) {
        const angle = (2 * Math.PI * i) / slots - Math.PI / 2;
        const candidate = [x + Math.cos(angle) * MARKER_GAP * ring, y + Math.sin(angle) * MARKER_GAP * ring];
        if (free(candidate)) return candidate;
      }
    }
    return [x, y];
  }

  function shortName(name) {
    // "Casa-Port / Ancienne Médina" reads as "Casa-Port" at map scale; the tooltip has the rest.
    return name.split(" / ")[0];
  }

  function districtTip(district, stats) {
    return [
      h("div", { class: "tip-title" }, district.name),
      stats
        ? h("div", { class: "tip-row" }, severityBadge(stats.worst),
          ` ${stats.count} active · ${stats.unacked} unacked`)
        : h("div", { class: "tip-row muted" }, "No active alerts"),
    ];
  }

  function alertTip(alert) {
    const source = alert.source || {};
    return [
      h("div", { class: "tip-row" }, severityBadge(alert.severity), " ", statusBadge(alert.status)),
      h("div", { class: "tip-title" }, alert.message || alert.rule_id),
      h("div", { class: "tip-row mono" }, `${source.kind || ""} ${source.entity_id || ""}`.trim()),
      h("div", { class: "tip-row" },
        `${value(alert.observed_value)} ${alert.unit || ""} (limit ${value(alert.threshold_value)}) · ${relativeTime(alert.raise_time)}`),
    ];
  }

  function showTooltip(event, content) {
    fill(tooltip, ...content);
    tooltip.hidden = false;
    const pad = 14;
    const { innerWidth, innerHeight } = window;
    const rect = tooltip.getBoundingClientRect();
    let left = event.clientX + pad;
    let top = event.clientY + pad;
    if (left + rect.width > innerWidth - 8) left = event.clientX - rect.width - pad;
    if (top + rect.height > innerHeight - 8) top = event.clientY - rect.height - pad;
    tooltip.style.left = `${Math.max(8, left)}px`;
    tooltip.style.top = `${Math.max(8, top)}px`;
  }

  function hideTooltip() {
    tooltip.hidden = true;
  }

  return {
    setCity(next) {
      city = next;
      render();
    },
    /** Active alerts to draw; the caller applies the board's non-state filters. */
    setAlerts(next) {
      alerts = next;
      render();
    },
    select(id) {
      selectedId = id;
      render();
    },
    /** The domains' map layers and their current features, as /api/v1/map/features answers. */
    setFeatures(next) {
      const layersChanged = JSON.stringify(next && next.layers) !== JSON.stringify(mapFeatures && mapFeatures.layers);
      mapFeatures = next;
      if (layersChanged) renderToggles();
      render();
    },
  };
}
