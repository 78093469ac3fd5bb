// Correlated alerts (same rule across a district or circuit) from /api/v1/groups.
// Clicking a group narrows the board to it.

import { severityBadge } from "./badges.js";
import { fill, h } from "./dom.js";
import { titleCase } from "./format.js";
import { icon } from "./icons.js";

/** Groups with active alerts first; within each half, the server's order is kept. */
export function orderGroups(groups) {
  return [...(groups || [])].sort((a, b) => Number(b.active_count > 0) - Number(a.active_count > 0));
}

export function renderGroups(container, groups, { districtName, activeKey, onPick }) {
  const list = orderGroups(groups);
  if (!list.length) {
    fill(container, h("div", { class: "empty empty--small" }, "No correlated alerts."));
    return;
  }
  fill(container, h("ul", { class: "group-list" }, list.map((group) => {
    const size = (group.alert_ids || []).length;
    const item = h("li", {
      class: ["group-row", group.active_count ? "" : "is-quiet", group.group_key === activeKey ? "is-active" : ""],
      "data-group-key": group.group_key, tabindex: "0", role: "button",
      title: `Show the alerts of ${group.group_key}`,
    },
    group.max_severity ? severityBadge(group.max_severity) : h("span", { class: "sev-badge sev-none" }, "Cleared"),
    h("div", { class: "group-main" },
      h("div", { class: "group-title" }, h("span", { class: "mono" }, group.rule_id),
        h("span", { class: "muted" }, ` · ${titleCase(group.domain)}`)),
      h("div", { class: "group-sub" }, icon("pin"), districtName(group.district_id) || group.group_key)),
    h("div", { class: "group-count", title: `${group.active_count} active of ${size}` },
      h("strong", {}, String(group.active_count)), h("span", { class: "muted" }, ` / ${size}`)));
    const pick = () => onPick(group.group_key === activeKey ? "" : group.group_key);
    item.addEventListener("click", pick);
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        pick();
      }
    });
    return item;
  })));
}
