// Severity and status badges, shared by the board, the drawer, the map tooltip and the panels.

import { h } from "./dom.js";
import { SEVERITY_LABEL, STATUS_LABEL } from "./model.js";

export function severityBadge(severity) {
  return h("span", { class: `sev-badge sev-${severity}`, "data-severity": severity },
    SEVERITY_LABEL[severity] || severity || "—");
}

/** `label` overrides the text (the board shows a short one); the colour always follows status. */
export function statusBadge(status, label = null) {
  const kind = String(status || "").replace("_", "-");
  return h("span", { class: `status-badge st-${kind}`, "data-status-badge": status },
    h("i", { class: "status-dot", "aria-hidden": "true" }),
    label || STATUS_LABEL[status] || status || "—");
}
