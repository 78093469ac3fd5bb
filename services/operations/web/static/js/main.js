// Entry point of the operations dashboard: signs in, loads the snapshot, follows the live stream
// and wires the panels together. Each panel lives in its own module; this one owns the state they
// share (token, filters, selected alert, selected city).

import { createActions } from "./actions.js";
import { createApi } from "./api.js";
import { askForToken, storedToken, storeToken, takeTokenFromFragment } from "./auth.js";
import { createBoard } from "./board.js";
import { debounce, fill, frameBatched, h } from "./dom.js";
import { createDrawer } from "./drawer.js";
import { clockTime } from "./format.js";
import { renderGroups } from "./groups.js";
import { renderIndicators, renderKpiStrip } from "./kpis.js";
import { createLiveStream } from "./live.js";
import { createMap } from "./map.js";
import { DEFAULT_FILTERS, isAcknowledged, matchesScope } from "./model.js";
import { createSilences } from "./silences.js";
import { AlertStore } from "./store.js";
import { toast } from "./toast.js";

const PAGE_SIZE = 100;
const MAX_ACTIVE_PAGES = 20; // 2,000 active alerts is beyond what a board can show usefully
const MAX_OTHER_PAGES = 5;
const AGGREGATES_EVERY_MS = 10_000;
const MAP_FEATURES_EVERY_MS = 5_000; // buses move: the map layers refresh faster than the aggregates
const SILENCES_EVERY_MS = 30_000;
const CITY_KEY = "madina.operations.city";

const state = {
  token: null,
  filters: { ...DEFAULT_FILTERS },
  sort: "severity",
  selectedId: null,
  geo: { cities: [] },
  cityId: null,
  cityChosen: false,
  kpis: null,
  groups: [],
  running: false,
  timers: [],
  loadGeneration: 0,
};

const store = new AlertStore();
const api = createApi({ getToken: () => state.token, onUnauthorized: () => signIn("Your token was rejected or has expired. Paste a new one.") });
const actions = createActions({ api, store, onPendingChange: (id) => { board.refreshRow(id); drawer.alertChanged(id); } });
const board = createBoard({ store, actions, getView: () => ({ filters: state.filters, sort: state.sort }), onSelect: (id) => selectAlert(id) });
const drawer = createDrawer({
  api, store, actions,
  onClose: () => selectAlert(null, { fromDrawer: true }),
  onSilenceSimilar: (alert) => {
    if (!alert) return;
    showTab("silences");
    silences.prefill(alert);
  },
});
const map = createMap({
  container: document.getElementById("city-map"), tooltip: document.getElementById("map-tooltip"),
  summary: document.getElementById("map-summary"), layerToggles: document.getElementById("map-layers"),
  onSelect: (id) => selectAlert(id, { scroll: true }),
});
const silences = createSilences({ api, onChange: () => refreshAggregates() });
const live = createLiveStream({
  getToken: () => state.token,
  onAlert: (payload) => {
    store.applyLive(payload.alert);
    drawer.alertChanged(payload.alert.alert_id);
    refreshAggregatesSoon();
  },
  onState: (liveState, label) => {
    const el = document.getElementById("live-indicator");
    el.dataset.state = liveState;
    el.querySelector(".live-label").textContent = label;
    el.title = liveState === "connected" ? "Receiving live updates" : "Live updates interrupted; retrying";
  },
  onReconnected: () => {
    loadAlerts();
    refreshAggregates();
  },
  onGaveUp: () => {
    // The stream was refused; a REST call tells a revoked token (401 → sign-in) from an outage.
    api.get("/api/v1/kpis").catch(() => {});
  },
});

// ---- rendering --------------------------------------------------------------------------------

const pendingFlash = new Set();
let lingerTimer = null;
const renderAll = frameBatched(() => {
  board.render([...pendingFlash]);
  pendingFlash.clear();
  map.setAlerts([...store.values()].filter((a) => a.active && matchesScope(a, state.filters)));
  updateTitle();
  updateDomainOptions();
  const next = store.nextLingerExpiry();
  clearTimeout(lingerTimer);
  if (next !== null) lingerTimer = setTimeout(renderAll, Math.max(0, next - Date.now()) + 50);
});

store.addEventListener("change", (event) => {
  for (const id of event.detail.flash) pendingFlash.add(id);
  renderAll();
});

function updateTitle() {
  let unacked = 0;
  for (const alert of store.values()) if (alert.active && !isAcknowledged(alert)) unacked += 1;
  document.title = `${unacked ? `(${unacked}) ` : ""}Madina · Operations Center`;
}

function updateDomainOptions() {
  const select = document.getElementById("filter-domain");
  const domains = new Set();
  for (const alert of store.values()) domains.add(alert.domain);
  for (const domain of Object.keys(state.kpis?.alerts?.by_domain || {})) domains.add(domain);
  for (const indicator of state.kpis?.indicators || []) domains.add(indicator.domain);
  if (state.filters.domain) domains.add(state.filters.domain);
  const wanted = ["", ...[...domains].filter(Boolean).sort()];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join("\n") === have.join("\n")) return;
  fill(select, ...wanted.map((d) => h("option", { value: d }, d ? d[0].toUpperCase() + d.slice(1) : "All domains")));
  select.value = state.filters.domain;
}

// ---- data -------------------------------------------------------------------------------------

async function fetchAll(params, maxPages) {
  const alerts = [];
  let pageToken = null;
  for (let page = 0; page < maxPages; page += 1) {
    const reply = await api.get("/api/v1/alerts", { ...params, limit: PAGE_SIZE, page_token: pageToken });
    alerts.push(...(reply.alerts || []));
    pageToken = reply.next_page_token;
    if (!pageToken) return { alerts, complete: true };
  }
  return { alerts, complete: false };
}

/**
 * Every active alert feeds the map and the counts, so it is always loaded whole; the board's
 * other filters apply in the browser. Cleared alerts are only fetched when the operator asks.
 */
async function loadAlerts() {
  const generation = ++state.loadGeneration;
  try {
    const mark = store.mark();
    const active = await fetchAll({ state: "active" }, MAX_ACTIVE_PAGES);
    if (generation !== state.loadGeneration) return;
    store.applySnapshot(active.alerts, mark, { authoritativeActive: active.complete });
    if (!active.complete) toast("info", "Showing the first alerts only", `More than ${PAGE_SIZE * MAX_ACTIVE_PAGES} active alerts; narrow the filters.`);
    if (state.filters.state !== "active") {
      const f = state.filters;
      const otherMark = store.mark();
      const other = await fetchAll({
        state: f.state, domain: f.domain, min_severity: f.min_severity,
        district: f.district ? f.district.split("/")[1] : "",
      }, MAX_OTHER_PAGES);
      if (generation !== state.loadGeneration) return;
      store.applySnapshot(other.alerts, otherMark);
    }
    chooseDefaultCity();
  } catch (error) {
    if (error.status !== 401) toast("error", "Could not load alerts", error.message);
  } finally {
    if (generation === state.loadGeneration) board.setLoading(false);
  }
}

async function refreshAggregates() {
  if (!state.running) return;
  const [kpis, groups] = await Promise.allSettled([api.get("/api/v1/kpis"), api.get("/api/v1/groups")]);
  if (!state.running) return;
  if (kpis.status === "fulfilled") {
    state.kpis = kpis.value;
    renderKpiStrip(document.getElementById("kpi-strip"), state.kpis);
    renderIndicators(document.getElementById("pane-indicators"), state.kpis, state.cityId);
    updateDomainOptions();
  }
  if (groups.status === "fulfilled") {
    state.groups = (groups.value && groups.value.groups) || [];
    renderGroupPane();
  }
}
const refreshAggregatesSoon = debounce(refreshAggregates, 800);

async function refreshMapFeatures() {
  if (!state.running || !state.cityId) return;
  try {
    const body = await api.get("/api/v1/map/features", { city: state.cityId });
    if (state.running) map.setFeatures(body);
  } catch {
    // The next poll tries again; the alerts on the map do not depend on it.
  }
}

function renderGroupPane() {
  renderGroups(document.getElementById("pane-groups"), state.groups, {
    districtName,
    activeKey: state.filters.group_key,
    onPick: (key) => setGroupFilter(key),
  });
  const active = state.groups.filter((g) => g.active_count > 0).length;
  document.getElementById("groups-count").textContent = active ? String(active) : "";
}

async function loadGeo() {
  try {
    state.geo = (await api.get("/api/v1/geo")) || { cities: [] };
  } catch (error) {
    if (error.status !== 401) toast("error", "Could not load the city map", error.message);
    return;
  }
  const cities = state.geo.cities || [];
  const saved = localStorage.getItem(CITY_KEY);
  state.cityChosen = Boolean(saved && cities.some((c) => c.id === saved));
  const select = document.getElementById("city-select");
  fill(select, ...cities.map((c) => h("option", { value: c.id }, c.name)));
  document.getElementById("city-select-wrap").hidden = cities.length < 2;
  setCity(state.cityChosen ? saved : cities[0]?.id);

  const districts = document.getElementById("filter-district");
  const option = (city, d) => h("option", { value: `${city.id}/${d.id}` }, d.name);
  fill(districts, h("option", { value: "" }, "All districts"),
    ...(cities.length === 1
      ? cities[0].districts.map((d) => option(cities[0], d))
      : cities.map((city) => h("optgroup", { label: city.name }, city.districts.map((d) => option(city, d))))));
  districts.value = state.filters.district;
  chooseDefaultCity();
}

/** Without a saved choice, open on the city with the most active alerts. */
function chooseDefaultCity() {
  if (state.cityChosen || !(state.geo.cities || []).length) return;
  const counts = new Map();
  for (const alert of store.values()) {
    if (alert.active && alert.district) counts.set(alert.district.city_id, (counts.get(alert.district.city_id) || 0) + 1);
  }
  const busiest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
  if (busiest && busiest[0] !== state.cityId && state.geo.cities.some((c) => c.id === busiest[0])) setCity(busiest[0]);
}

function setCity(cityId) {
  const city = (state.geo.cities || []).find((c) => c.id === cityId);
  state.cityId = city ? city.id : null;
  document.getElementById("city-select").value = state.cityId || "";
  document.getElementById("map-city").textContent = city ? city.name : "";
  map.setCity(city || null);
  renderIndicators(document.getElementById("pane-indicators"), state.kpis, state.cityId);
  refreshMapFeatures();
}

function districtName(districtId) {
  for (const city of state.geo.cities || []) {
    const d = city.districts.find((x) => x.id === districtId);
    if (d && (city.id === state.cityId || !state.cityId)) return d.name;
  }
  for (const city of state.geo.cities || []) {
    const d = city.districts.find((x) => x.id === districtId);
    if (d) return `${d.name} · ${city.name}`;
  }
  return districtId;
}

// ---- interaction ------------------------------------------------------------------------------

function selectAlert(id, { scroll = false, fromDrawer = false } = {}) {
  state.selectedId = id;
  board.select(id, { scroll });
  map.select(id);
  if (id) drawer.open(id);
  else if (!fromDrawer) drawer.close();
}

function readFilters() {
  const form = document.getElementById("filters");
  const previousState = state.filters.state;
  state.filters = {
    ...state.filters,
    state: form.elements.state.value || "active",
    domain: form.elements.domain.value,
    min_severity: form.elements.min_severity.value,
    district: form.elements.district.value,
    q: form.elements.q.value,
  };
  if (state.filters.state !== "active" || previousState !== state.filters.state) {
    if (state.filters.state !== "active") board.setLoading(true);
    loadAlertsSoon();
  }
  renderAll();
}
const loadAlertsSoon = debounce(loadAlerts, 250);

function setGroupFilter(key) {
  state.filters = { ...state.filters, group_key: key };
  document.getElementById("group-filter").hidden = !key;
  document.getElementById("group-filter-key").textContent = key;
  renderGroupPane();
  renderAll();
}

function showTab(name) {
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) {
    const selected = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(selected));
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
  }
}

function wireControls() {
  const form = document.getElementById("filters");
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", readFilters);
  form.elements.q.addEventListener("input", debounce(readFilters, 120));
  document.getElementById("sort-select").addEventListener("change", (event) => {
    state.sort = event.target.value;
    renderAll();
  });
  document.getElementById("group-filter-clear").addEventListener("click", () => setGroupFilter(""));
  document.getElementById("city-select").addEventListener("change", (event) => {
    state.cityChosen = true;
    localStorage.setItem(CITY_KEY, event.target.value);
    setCity(event.target.value);
  });
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) {
    tab.addEventListener("click", () => showTab(tab.id.replace("tab-", "")));
  }
  document.getElementById("signout").addEventListener("click", () => {
    storeToken(null);
    signIn("");
  });
  // "/" jumps to search, as in most operator consoles.
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && !event.target.closest("input, textarea, select, dialog")) {
      event.preventDefault();
      form.elements.q.focus();
    }
  });
}

function tickClock() {
  const now = new Date();
  document.getElementById("clock-local").textContent = clockTime(now);
  document.getElementById("clock-utc").textContent =
    `${String(now.getUTCHours()).padStart(2, "0")}:${String(now.getUTCMinutes()).padStart(2, "0")} UTC`;
}

// ---- lifecycle --------------------------------------------------------------------------------

function start(token) {
  state.token = token;
  storeToken(token);
  state.running = true;
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  board.setLoading(true);
  live.start();
  loadGeo();
  loadAlerts();
  refreshAggregates();
  silences.refresh().catch((error) => {
    if (error.status !== 401) toast("error", "Could not load silences", error.message);
  });
  state.timers.push(
    setInterval(refreshAggregates, AGGREGATES_EVERY_MS),
    setInterval(refreshMapFeatures, MAP_FEATURES_EVERY_MS),
    setInterval(() => silences.refresh().catch(() => {}), SILENCES_EVERY_MS),
    setInterval(() => { board.tickTimes(); silences.render(); }, 15_000),
  );
}

function stop() {
  state.running = false;
  state.loadGeneration += 1;
  live.stop();
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  drawer.close();
  store.clear();
}

let signingIn = null;
/** Stop everything and wait for a token; concurrent 401s share one sign-in. */
function signIn(message) {
  if (signingIn) return signingIn;
  stop();
  state.token = null;
  storeToken(null);
  signingIn = askForToken(message).then((token) => {
    signingIn = null;
    start(token);
  });
  return signingIn;
}

function boot() {
  wireControls();
  tickClock();
  setInterval(tickClock, 1000);
  const token = takeTokenFromFragment() || storedToken();
  if (token) start(token);
  else signIn("");
}

boot();
