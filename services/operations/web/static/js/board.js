// The alert board: one keyed row per alert, updated in place so focus, hover and scroll survive
// the live stream. Rows carry the hooks tests rely on: data-alert-id, data-status and buttons
// with data-action="ack|assign|comment|resolve".

import { ACTION_KINDS, actionEnabled, actionLabel } from "./actions.js";
import { severityBadge, statusBadge } from "./badges.js";
import { fill, h } from "./dom.js";
import { absoluteTime, duration, relativeTime, shortTime, titleCase, value } from "./format.js";
import { icon } from "./icons.js";
import { STATUS_LABEL, compareAlerts, isAcknowledged, matchesFilters } from "./model.js";

const ACTION_ICON = { ack: "check", assign: "user", comment: "comment", resolve: "resolve" };

export function createBoard({ store, actions, getView, onSelect }) {
  const tbody = document.getElementById("alert-rows");
  const board = document.getElementById("alert-board");
  const empty = document.getElementById("board-empty");
  const count = document.getElementById("board-count");
  const rows = new Map(); // alert_id -> {tr, signature}
  let selectedId = null;
  let loading = true;

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const tr = event.target.closest("tr[data-alert-id]");
    if (!tr) return;
    if (button) {
      event.stopPropagation();
      actions.run(button.dataset.action, tr.dataset.alertId);
      return;
    }
    onSelect(tr.dataset.alertId);
  });
  tbody.addEventListener("animationend", (event) => {
    if (event.animationName === "row-flash") event.target.closest("tr")?.classList.remove("flash");
  });
  tbody.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr[data-alert-id]");
    if (!tr || event.target !== tr) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect(tr.dataset.alertId);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next) next.focus();
    }
  });

  function visibleAlerts() {
    const { filters, sort } = getView();
    const now = Date.now();
    return [...store.values()]
      .filter((alert) => matchesFilters(alert, filters, store.isLingering(alert.alert_id, now)))
      .sort(compareAlerts(sort));
  }

  function render(flash = []) {
    const list = visibleAlerts();
    const keep = new Set(list.map((alert) => alert.alert_id));
    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    let cursor = tbody.firstElementChild;
    for (const alert of list) {
      const tr = upsertRow(alert);
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(tr, cursor);
    }
    for (const id of flash) {
      const row = rows.get(id);
      if (!row) continue;
      row.tr.classList.remove("flash");
      void row.tr.offsetWidth; // restart the animation when updates come in quick succession
      row.tr.classList.add("flash");
    }
    renderSummary(list);
  }

  function renderSummary(list) {
    const active = list.filter((a) => a.active).length;
    const unacked = list.filter((a) => a.active && !isAcknowledged(a)).length;
    const { filters } = getView();
    count.textContent = filters.state === "cleared"
      ? `${list.length} cleared`
      : `${active} active · ${unacked} unacked${list.length > active ? ` · ${list.length - active} cleared` : ""}`;
    board.setAttribute("aria-busy", loading ? "true" : "false");
    empty.hidden = list.length > 0;
    if (!list.length) {
      fill(empty, loading
        ? h("span", { class: "spinner", "aria-hidden": "true" })
        : icon("check", "empty-icon"),
      h("div", { class: "empty-text" }, loading ? "Loading alerts…" : emptyText(filters)));
    }
  }

  function emptyText(filters) {
    const narrowed = filters.domain || filters.min_severity || filters.district || filters.q || filters.group_key;
    if (filters.state === "active") return narrowed ? "No active alerts match these filters." : "All clear — no active alerts.";
    return narrowed ? "No alerts match these filters." : "No alerts.";
  }

  function upsertRow(alert) {
    const pendingKinds = ACTION_KINDS.filter((kind) => actions.isPending(alert.alert_id, kind));
    const lingering = !alert.active && getView().filters.state === "active" && store.isLingering(alert.alert_id);
    const signature = JSON.stringify([alert, pendingKinds, selectedId === alert.alert_id, lingering]);
    let row = rows.get(alert.alert_id);
    if (row && row.signature === signature) return row.tr;
    if (!row) {
      row = { tr: h("tr", { tabindex: "0" }), signature: "" };
      rows.set(alert.alert_id, row);
    }
    fillRow(row.tr, alert, pendingKinds, lingering);
    row.signature = signature;
    return row.tr;
  }

  function fillRow(tr, alert, pendingKinds, lingering) {
    tr.dataset.alertId = alert.alert_id;
    tr.dataset.status = alert.status;
    tr.dataset.severity = alert.severity;
    tr.dataset.active = String(Boolean(alert.active));
    tr.className = [
      "alert-row", `sev-${alert.severity}`, `row-${alert.status}`,
      alert.silenced ? "is-silenced" : "", lingering ? "is-lingering" : "",
      selectedId === alert.alert_id ? "is-selected" : "",
    ].filter(Boolean).join(" ");
    tr.setAttribute("aria-selected", String(selectedId === alert.alert_id));
    const hadFocus = tr.contains(document.activeElement) && document.activeElement !== tr;
    fill(tr,
      h("td", { class: "c-sev" }, severityBadge(alert.severity)),
      statusCell(alert),
      alertCell(alert),
      districtCell(alert),
      valueCell(alert),
      timeCell(alert),
      assigneeCell(alert),
      h("td", { class: "c-actions" }, actionButtons(alert, pendingKinds)),
    );
    if (hadFocus) tr.focus({ preventScroll: true });
  }

  function alertCell(alert) {
    const source = alert.source || {};
    const comments = (alert.comments || []).length;
    return h("td", { class: "c-alert" },
      h("div", { class: "alert-message", title: alert.message || "" }, alert.message || alert.rule_id),
      h("div", { class: "alert-meta" },
        h("span", { class: "domain-chip" }, alert.domain),
        h("span", { class: "mono rule", title: "Rule" }, alert.rule_id),
        h("span", { class: "sep", "aria-hidden": "true" }, "·"),
        h("span", { class: "source mono", title: `Source: ${source.domain || ""} ${source.kind || ""} ${source.entity_id || ""}`.trim() },
          source.entity_id || "—"),
        alert.silenced ? h("span", { class: "flag flag--silenced", title: "Silenced: matched by an active silence" },
          icon("mute"), "Silenced") : null,
        comments ? h("span", { class: "flag", title: `${comments} comment${comments > 1 ? "s" : ""}` },
          icon("comment"), String(comments)) : null,
        alert.group_key ? h("span", { class: "group-key mono", title: `Group ${alert.group_key}` },
          icon("layers"), alert.group_key) : null));
  }

  // Two facts, two lines: whether it is still happening, and whether someone has seen it.
  function statusCell(alert) {
    const acked = isAcknowledged(alert);
    return h("td", { class: "c-status", title: STATUS_LABEL[alert.status] || alert.status },
      h("div", { class: "cell-main" }, statusBadge(alert.status, alert.active ? "Active" : "Cleared")),
      h("div", { class: ["cell-sub", acked ? "" : "unacked"] },
        acked ? `ack ${alert.acknowledged_by || ""}`.trim() : "unacked"));
  }

  function districtCell(alert) {
    const d = alert.district;
    return h("td", { class: "c-district" },
      d ? h("div", { class: "cell-main", title: d.display_name }, d.display_name || titleCase(d.district_id)) : h("span", { class: "muted" }, "—"),
      d ? h("div", { class: "cell-sub" }, titleCase(d.city_id)) : null);
  }

  function valueCell(alert) {
    const unit = alert.unit ? ` ${alert.unit}` : "";
    return h("td", { class: "c-value num" },
      h("div", { class: "cell-main" },
        h("span", { class: "observed" }, value(alert.observed_value)),
        h("span", { class: "unit" }, unit)),
      h("div", { class: "cell-sub", title: "Threshold" }, `limit ${value(alert.threshold_value)}${unit}`));
  }

  function timeCell(alert) {
    return h("td", { class: "c-time" },
      h("div", { class: "cell-main", "data-rel-time": alert.raise_time, title: `Raised ${absoluteTime(alert.raise_time)}` },
        relativeTime(alert.raise_time)),
      h("div", { class: "cell-sub" }, alert.clear_time ? `cleared ${shortTime(alert.clear_time)}` : shortTime(alert.raise_time)));
  }

  function assigneeCell(alert) {
    return h("td", { class: "c-assignee" },
      alert.assignee ? h("div", { class: "cell-main", title: alert.assignee }, alert.assignee)
        : h("div", { class: "cell-main muted" }, "Unassigned"),
      alert.acknowledge_time ? h("div", { class: "cell-sub", title: `Acknowledged ${absoluteTime(alert.acknowledge_time)}` },
        `ack after ${duration(alert.time_to_acknowledge_s)}`) : null);
  }

  function actionButtons(alert, pendingKinds) {
    return h("div", { class: "row-actions" }, ACTION_KINDS.map((kind) => {
      const busy = pendingKinds.includes(kind);
      const enabled = actionEnabled(kind, alert) && !busy;
      return h("button", {
        type: "button",
        class: ["btn", "btn--row", `btn--${kind}`, kind === "ack" && enabled ? "btn--attention" : ""],
        "data-action": kind,
        "aria-label": actionLabel(kind),
        title: actionLabel(kind),
        disabled: !enabled,
        "aria-busy": busy ? "true" : null,
      }, busy ? h("span", { class: "spinner spinner--sm", "aria-hidden": "true" }) : icon(ACTION_ICON[kind]),
      kind === "ack" ? h("span", { class: "btn-text" }, "Ack") : null);
    }));
  }

  /** Keep "4 min ago" honest without re-rendering rows. */
  function tickTimes() {
    const now = Date.now();
    for (const el of tbody.querySelectorAll("[data-rel-time]")) {
      el.textContent = relativeTime(el.dataset.relTime, now);
    }
  }

  return {
    render,
    tickTimes,
    setLoading(value) {
      loading = value;
      render();
    },
    select(alertId, { scroll = false } = {}) {
      selectedId = alertId;
      render();
      const row = alertId && rows.get(alertId);
      if (row && scroll) row.tr.scrollIntoView({ block: "nearest", behavior: "smooth" });
    },
    refreshRow(alertId) {
      const row = rows.get(alertId);
      if (row) row.signature = "";
      render();
    },
  };
}
