// The alert vocabulary of the REST contract, and how the board orders and filters alerts.

export const SEVERITIES = ["info", "warning", "minor", "major", "critical"];

export const SEVERITY_LABEL = {
  info: "Info", warning: "Warning", minor: "Minor", major: "Major", critical: "Critical",
};

export const STATUS_LABEL = {
  active_unacknowledged: "Active · Unacked",
  active_acknowledged: "Active · Acked",
  cleared_unacknowledged: "Cleared · Unacked",
  cleared_acknowledged: "Cleared · Acked",
};

export function severityRank(severity) {
  return SEVERITIES.indexOf(severity);
}

/** The worse of two severities; either may be null. */
export function worse(a, b) {
  if (!a) return b;
  if (!b) return a;
  return severityRank(a) >= severityRank(b) ? a : b;
}

export function isAcknowledged(alert) {
  return alert.status === "active_acknowledged" || alert.status === "cleared_acknowledged";
}

const byRaiseTimeDesc = (a, b) => Date.parse(b.raise_time) - Date.parse(a.raise_time);

/**
 * Board order. Active before cleared, because a cleared alert only lingers for context.
 * "severity": worst first, then unacknowledged first, then newest. "newest": by raise time.
 */
export function compareAlerts(mode) {
  return (a, b) => {
    if (a.active !== b.active) return a.active ? -1 : 1;
    if (mode === "newest") return byRaiseTimeDesc(a, b) || a.alert_id.localeCompare(b.alert_id);
    return (
      severityRank(b.severity) - severityRank(a.severity) ||
      Number(isAcknowledged(a)) - Number(isAcknowledged(b)) ||
      byRaiseTimeDesc(a, b) ||
      a.alert_id.localeCompare(b.alert_id)
    );
  };
}

/** Filters as the form holds them; district is "<city_id>/<district_id>". */
export const DEFAULT_FILTERS = Object.freeze({
  state: "active", domain: "", min_severity: "", district: "", q: "", group_key: "",
});

export function districtKey(district) {
  return district ? `${district.city_id}/${district.district_id}` : "";
}

/**
 * Whether an alert belongs on the board. `lingering` says the alert cleared while the operator
 * was watching; it stays on the active view for a moment so the change is seen, not just a gap.
 */
export function matchesFilters(alert, filters, lingering = false) {
  if (filters.state === "active" && !alert.active && !lingering) return false;
  if (filters.state === "cleared" && alert.active) return false;
  return matchesScope(alert, filters);
}

/** The filters that are not about state: also used by the map, which shows active alerts only. */
export function matchesScope(alert, filters) {
  if (filters.domain && alert.domain !== filters.domain) return false;
  if (filters.min_severity && severityRank(alert.severity) < severityRank(filters.min_severity)) return false;
  if (filters.district && districtKey(alert.district) !== filters.district) return false;
  if (filters.group_key && alert.group_key !== filters.group_key) return false;
  if (filters.q) {
    const needle = filters.q.trim().toLowerCase();
    const source = alert.source || {};
    const haystack = [alert.message, source.entity_id, source.kind, source.domain, alert.rule_id]
      .filter(Boolean).join("\n").toLowerCase();
    if (needle && !haystack.includes(needle)) return false;
  }
  return true;
}
