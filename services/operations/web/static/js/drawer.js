// The detail drawer: everything about one alert, and its history oldest first.
// It deliberately carries no data-alert-id/data-action attributes (it uses data-drawer-*), so a
// test's row locator never matches the drawer as well.

import { ACTION_KINDS, actionEnabled, actionLabel } from "./actions.js";
import { severityBadge, statusBadge } from "./badges.js";
import { debounce, fill, h } from "./dom.js";
import { absoluteTime, duration, relativeTime, titleCase, value } from "./format.js";
import { icon } from "./icons.js";

const ACTION_ICON = { ack: "check", assign: "user", comment: "comment", resolve: "resolve" };

export function createDrawer({ api, store, actions, onClose, onSilenceSimilar }) {
  const drawer = document.getElementById("alert-drawer");
  const badges = document.getElementById("drawer-badges");
  const title = document.getElementById("drawer-title");
  const actionBar = document.getElementById("drawer-actions");
  const body = document.getElementById("drawer-body");
  let alertId = null;
  let detail = null; // {alert, history} from the server
  let historyState = "idle"; // idle | loading | error
  let requestSeq = 0;

  document.getElementById("drawer-close").addEventListener("click", () => close());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && alertId && !document.getElementById("action-dialog").open) close();
  });
  actionBar.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-drawer-action]");
    if (!button || !alertId) return;
    const kind = button.dataset.drawerAction;
    if (kind === "silence") onSilenceSimilar(current());
    else actions.run(kind, alertId);
  });

  function current() {
    return store.get(alertId) || (detail && detail.alert) || null;
  }

  async function loadHistory() {
    const id = alertId;
    const seq = ++requestSeq;
    if (!detail) historyState = "loading";
    render();
    try {
      const reply = await api.get(`/api/v1/alerts/${encodeURIComponent(id)}`);
      if (seq !== requestSeq || id !== alertId) return;
      detail = reply;
      historyState = "idle";
    } catch (error) {
      if (seq !== requestSeq || id !== alertId) return;
      historyState = error.status === 404 ? "missing" : "error";
    }
    render();
  }
  const reloadSoon = debounce(loadHistory, 400);

  function render() {
    const alert = current();
    if (!alertId) return;
    drawer.dataset.drawerAlertId = alertId;
    if (!alert) {
      fill(badges);
      title.textContent = historyState === "missing" ? "Alert not found" : "Loading…";
      fill(actionBar);
      fill(body, historyState === "loading" ? h("div", { class: "spinner" }) : null);
      return;
    }
    drawer.dataset.status = alert.status;
    fill(badges, severityBadge(alert.severity), statusBadge(alert.status),
      alert.silenced ? h("span", { class: "flag flag--silenced" }, icon("mute"), "Silenced") : null);
    title.textContent = alert.message || alert.rule_id;
    fill(actionBar,
      ...ACTION_KINDS.map((kind) => h("button", {
        type: "button", class: ["btn", "btn--sm", kind === "ack" ? "btn--primary" : "btn--secondary"],
        "data-drawer-action": kind, disabled: !actionEnabled(kind, alert) || actions.isPending(alertId, kind),
      }, icon(ACTION_ICON[kind]), actionLabel(kind))),
      h("button", { type: "button", class: "btn btn--sm btn--ghost", "data-drawer-action": "silence",
        title: "Create a silence for this rule in this district" }, icon("mute"), "Silence similar…"),
    );
    fill(body, facts(alert), comments(alert), history());
  }

  function facts(alert) {
    const source = alert.source || {};
    const d = alert.district;
    const loc = alert.location;
    const rows = [
      ["Observed", `${value(alert.observed_value)} ${alert.unit || ""}`.trim(), "strong"],
      ["Threshold", `${value(alert.threshold_value)} ${alert.unit || ""}`.trim()],
      ["Domain", `${alert.domain} / ${alert.category || "—"}`],
      ["Rule", alert.rule_id, "mono"],
      ["Source", `${source.kind || ""} ${source.entity_id || ""}`.trim() || "—", "mono"],
      ["District", d ? `${d.display_name || d.district_id} · ${titleCase(d.city_id)}` : "—"],
      ["Location", loc ? `${Number(loc.lat).toFixed(5)}, ${Number(loc.lon).toFixed(5)}` : "—", "mono"],
      ["Standard", alert.standard_reference || "—"],
      ["Raised", timeValue(alert.raise_time)],
      ["Last event", timeValue(alert.event_time)],
      ["Cleared", alert.clear_time ? timeValue(alert.clear_time) : "—"],
      ["State", `${alert.state} · revision ${alert.revision}`],
      ["Acknowledged", alert.acknowledged_by ? `${alert.acknowledged_by}, ${relativeTime(alert.acknowledge_time)}` : "—"],
      ["Time to ack", duration(alert.time_to_acknowledge_s)],
      ["Time to clear", duration(alert.time_to_clear_s)],
      ["Assignee", alert.assignee || "Unassigned"],
      ["Group", alert.group_key || "—", "mono"],
      ["Alert id", alert.alert_id, "mono"],
    ];
    const labels = Object.entries(alert.labels || {});
    return h("section", { class: "drawer-section" },
      h("dl", { class: "facts" }, rows.map(([label, text, cls]) => [
        h("dt", {}, label),
        h("dd", { class: cls || null, title: typeof text === "string" ? text : null }, text),
      ])),
      labels.length ? h("div", { class: "labels" },
        labels.map(([k, v]) => h("span", { class: "label-chip mono" }, h("span", { class: "muted" }, `${k}=`), v))) : null);
  }

  function timeValue(iso) {
    return h("span", { title: absoluteTime(iso) }, relativeTime(iso));
  }

  function comments(alert) {
    const list = alert.comments || [];
    if (!list.length) return null;
    return h("section", { class: "drawer-section" },
      h("h3", { class: "section-title" }, `Comments (${list.length})`),
      h("ul", { class: "comments" }, list.map((c) => h("li", { class: "comment" },
        h("div", { class: "comment-head" }, h("strong", {}, c.actor || "—"),
          h("span", { class: "muted", title: absoluteTime(c.time) }, relativeTime(c.time))),
        h("div", { class: "comment-text" }, c.text)))));
  }

  function history() {
    const items = detail && detail.alert && detail.alert.alert_id === alertId ? [...(detail.history || [])] : [];
    items.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    let content;
    if (historyState === "loading") content = h("div", { class: "muted pad" }, h("span", { class: "spinner spinner--sm" }), " Loading history…");
    else if (historyState === "error") content = h("div", { class: "form-error" }, "Could not load the history.");
    else if (!items.length) content = h("div", { class: "muted pad" }, "No history yet.");
    else {
      content = h("ol", { class: "timeline", id: "alert-history" }, items.map((item) => {
        const entries = Object.entries(item.detail || {}).filter(([, v]) => v !== null && v !== "" && v !== undefined);
        return h("li", { class: `tl-item tl-${item.kind}`, "data-history-seq": item.seq, "data-history-kind": item.kind },
          h("span", { class: "tl-icon", "aria-hidden": "true" }, icon(item.kind === "action" ? "user" : "event")),
          h("div", { class: "tl-body" },
            h("div", { class: "tl-head" },
              h("span", { class: "tl-kind" }, item.kind === "action" ? "Action" : "Event"),
              h("span", { class: "tl-time", title: absoluteTime(item.time) }, absoluteTime(item.time).split(" · ")[0])),
            h("div", { class: "tl-summary" }, item.summary || ""),
            entries.length ? h("details", { class: "tl-detail" },
              h("summary", {}, "Details"),
              h("dl", { class: "facts facts--compact" }, entries.map(([k, v]) => [
                h("dt", {}, k),
                h("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v)),
              ]))) : null));
      }));
    }
    return h("section", { class: "drawer-section" }, h("h3", { class: "section-title" }, "History"), content);
  }

  function open(id) {
    if (alertId !== id) {
      alertId = id;
      detail = null;
      historyState = "loading";
    }
    drawer.hidden = false;
    drawer.classList.add("is-open");
    render();
    loadHistory();
  }

  function close() {
    if (!alertId) return;
    alertId = null;
    detail = null;
    requestSeq++;
    drawer.hidden = true;
    drawer.classList.remove("is-open");
    delete drawer.dataset.drawerAlertId;
    onClose();
  }

  return {
    open,
    close,
    get alertId() {
      return alertId;
    },
    /** The alert changed: show it now, and fetch its history again once the burst is over. */
    alertChanged(id) {
      if (id !== alertId) return;
      render();
      reloadSoon();
    },
    render,
  };
}
