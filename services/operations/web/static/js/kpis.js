// The KPI strip (alert counts per domain) and the indicator tiles (domain KPIs), rendered from
// /api/v1/kpis. Nothing here knows a domain by name: a new domain's KPIs appear as they arrive.

import { fill, h } from "./dom.js";
import { absoluteTime, duration, relativeTime, titleCase, value } from "./format.js";
import { SEVERITIES, SEVERITY_LABEL } from "./model.js";

const WORST_FIRST = [...SEVERITIES].reverse();
const SEVERITY_SHORT = { critical: "crit", major: "maj", minor: "min", warning: "warn", info: "info" };
const STALE_MS = 2 * 60 * 60 * 1000;

export function renderKpiStrip(container, kpis) {
  const alerts = (kpis && kpis.alerts) || {};
  const byDomain = alerts.by_domain || {};
  const domains = Object.keys(byDomain).sort();
  const total = { active: 0, unacknowledged: 0, by_severity: {} };
  for (const domain of domains) {
    const d = byDomain[domain] || {};
    total.active += d.active || 0;
    total.unacknowledged += d.unacknowledged || 0;
    for (const [sev, n] of Object.entries(d.by_severity || {})) total.by_severity[sev] = (total.by_severity[sev] || 0) + n;
  }
  const median = alerts.median_time_to_acknowledge_s;

  fill(container,
    h("div", { class: "kpi kpi--summary", "data-kpi": "active" },
      h("div", { class: "kpi-label" }, "Active alerts"),
      h("div", { class: "kpi-value" }, String(total.active)),
      severityBar(total.by_severity, total.active)),
    h("div", { class: ["kpi", "kpi--summary", total.unacknowledged ? "kpi--alarm" : ""], "data-kpi": "unacknowledged" },
      h("div", { class: "kpi-label" }, "Unacknowledged"),
      h("div", { class: "kpi-value" }, String(total.unacknowledged)),
      h("div", { class: "kpi-sub" }, total.unacknowledged ? "need an operator" : "all seen")),
    h("div", { class: "kpi kpi--summary", "data-kpi": "median-tta" },
      h("div", { class: "kpi-label" }, "Median time to ack"),
      h("div", { class: "kpi-value" }, median === null || median === undefined ? "—" : duration(median)),
      h("div", { class: "kpi-sub" }, "acknowledged alerts")),
    h("div", { class: "kpi-divider", "aria-hidden": "true" }),
    ...(domains.length
      ? domains.map((domain) => domainCard(domain, byDomain[domain] || {}))
      : [h("div", { class: "kpi kpi--empty" }, h("div", { class: "kpi-label" }, "Domains"), h("div", { class: "kpi-sub" }, "No alerts from any domain"))]),
  );
}

function domainCard(domain, d) {
  const bySeverity = d.by_severity || {};
  return h("div", { class: "kpi kpi--domain", "data-kpi-domain": domain },
    h("div", { class: "kpi-label" }, titleCase(domain)),
    h("div", { class: "kpi-line" },
      h("span", { class: "kpi-value" }, String(d.active || 0)),
      h("span", { class: ["kpi-unacked", d.unacknowledged ? "has-unacked" : ""] }, `${d.unacknowledged || 0} unacked`)),
    h("div", { class: "sev-counts" }, WORST_FIRST.filter((sev) => bySeverity[sev]).map((sev) =>
      h("span", { class: `sev-count sev-${sev}`, title: `${bySeverity[sev]} ${SEVERITY_LABEL[sev]}` },
        String(bySeverity[sev]), h("span", { class: "sev-count-label" }, SEVERITY_LABEL[sev]),
        h("span", { class: "sev-count-short" }, SEVERITY_SHORT[sev]))),
    !d.active ? h("span", { class: "kpi-sub" }, "all clear") : null));
}

function severityBar(bySeverity, total) {
  return h("div", { class: "sev-bar", role: "img", "aria-label": WORST_FIRST.map((s) => `${bySeverity[s] || 0} ${s}`).join(", ") },
    total ? WORST_FIRST.filter((sev) => bySeverity[sev]).map((sev) =>
      h("span", { class: `sev-bar-seg bg-${sev}`, style: { flexGrow: String(bySeverity[sev]) }, title: `${bySeverity[sev]} ${SEVERITY_LABEL[sev]}` }))
      : h("span", { class: "sev-bar-seg bg-none", style: { flexGrow: "1" } }));
}

/**
 * Indicator tiles grouped by domain, then by display name. District-level values of other
 * cities are left out so the wall matches the map. Within a group, district values come first
 * (e.g. the NowCast AQI per district), then one tile per entity naming its district (e.g. a
 * station's exceedances this year, its band saying "n of N allowed").
 */
export function renderIndicators(container, kpis, cityId) {
  const indicators = ((kpis && kpis.indicators) || [])
    .filter((i) => !i.district || !cityId || i.district.city_id === cityId);
  if (!indicators.length) {
    fill(container, h("div", { class: "empty empty--small" }, "No indicators published yet."));
    return;
  }
  const domains = new Map();
  for (const indicator of indicators) {
    const byName = domains.get(indicator.domain) || new Map();
    const name = indicator.display_name || indicator.kpi_id;
    byName.set(name, [...(byName.get(name) || []), indicator]);
    domains.set(indicator.domain, byName);
  }
  const now = Date.now();
  fill(container, ...[...domains.keys()].sort().map((domain) =>
    h("section", { class: "ind-domain", "data-indicator-domain": domain },
      h("h3", { class: "section-title" }, titleCase(domain)),
      [...domains.get(domain).entries()].map(([name, items]) => {
        items.sort((a, b) => Number(Boolean(a.entity)) - Number(Boolean(b.entity)) || scopeName(a).localeCompare(scopeName(b)));
        const worst = Math.max(...items.map((i) => Number(i.band_level) || 0));
        return h("div", { class: "ind-group", "data-kpi-id": items[0].kpi_id },
          h("div", { class: "ind-group-head" },
            h("span", { class: "ind-name" }, name),
            h("span", { class: "ind-scope" }, scopeLabel(items)),
            h("span", { class: `ind-worst band-${clampBand(worst)}` }, `worst: ${worstLabel(items)}`)),
          h("div", { class: "ind-tiles" }, items.map((item) => tile(item, now))));
      }))));
}

function tile(item, now) {
  const level = clampBand(item.band_level);
  const stale = item.observe_time && now - Date.parse(item.observe_time) > STALE_MS;
  return h("div", {
    class: ["ind-tile", `band-${level}`, stale ? "is-stale" : ""],
    "data-band-level": level,
    "data-scope": item.entity ? "entity" : item.district ? "district" : "city",
    title: `${scopeName(item)}: ${value(item.value)} ${item.unit || ""} ${item.band ? `(${item.band})` : ""}\nobserved ${absoluteTime(item.observe_time)}`,
  },
  h("div", { class: "ind-tile-name" }, shortScope(item)),
  item.entity && item.district ? h("div", { class: "ind-tile-district" }, districtName(item.district)) : null,
  h("div", { class: "ind-tile-value" }, value(item.value), item.unit ? h("span", { class: "unit" }, ` ${item.unit}`) : null),
  h("div", { class: "ind-tile-band" }, item.band || " "),
  h("div", { class: "ind-tile-time" }, stale ? `stale · ${relativeTime(item.observe_time, now)}` : relativeTime(item.observe_time, now)));
}

function scopeLabel(items) {
  const districts = items.some((i) => i.district && !i.entity);
  const entity = items.find((i) => i.entity);
  const kind = (entity && entity.entity.kind) || "entity";
  if (districts && entity) return `by district and ${kind}`;
  if (entity) return `per ${kind}`;
  return districts ? "by district, now" : "now";
}

function districtName(district) {
  return district.display_name || district.district_id;
}

function clampBand(level) {
  const n = Math.round(Number(level) || 0);
  return Math.min(5, Math.max(0, n));
}

function worstLabel(items) {
  const worst = items.reduce((a, b) => ((Number(b.band_level) || 0) > (Number(a.band_level) || 0) ? b : a));
  return `${worst.band || value(worst.value)} · ${shortScope(worst)}`;
}

function scopeName(item) {
  // An entity's tile names the entity (its district is on the line below); a district value, the district.
  if (item.entity) return item.entity.entity_id || item.entity.id || JSON.stringify(item.entity);
  if (item.district) return districtName(item.district);
  return item.kpi_id;
}

function shortScope(item) {
  return scopeName(item).split(" / ")[0];
}
